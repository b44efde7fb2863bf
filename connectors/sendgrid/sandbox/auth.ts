import type { IncomingMessage } from 'node:http';

/** `Authorization: Bearer <key>`; null when absent or another scheme. */
export function bearerKey(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  const m = h ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
  return m?.[1] ?? null;
}
