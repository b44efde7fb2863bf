import type { IncomingMessage } from 'node:http';

/**
 * The API key a request presents: HTTP Basic (any user, the key as password) or
 * `Authorization: Bearer <key>` (OAuth tokens are used the same way). null when absent.
 */
export function presentedKey(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const [scheme, value] = h.split(/\s+/, 2);
  if (!scheme || !value) return null;
  if (/^bearer$/i.test(scheme) || /^apikey$/i.test(scheme)) return value;
  if (/^basic$/i.test(scheme)) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : null;
  }
  return null;
}

/** The data centre is the key's suffix: "abc123...-us14" -> "us14". */
export function dcOf(apiKey: string): string {
  const i = apiKey.lastIndexOf('-');
  return i >= 0 ? apiKey.slice(i + 1) : 'us1';
}
