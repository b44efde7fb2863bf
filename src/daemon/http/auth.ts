import { createHash, timingSafeEqual } from 'node:crypto';

/*
 * Bearer token check of the admin API. Both sides are hashed (SHA-256) first, so the compared
 * buffers always have the same length and the comparison leaks neither the token's length nor
 * where it differs; every configured token is compared (no early exit).
 */

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string') return null;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m?.[1] ?? null;
}

/** A checker over the configured tokens (hashed once). */
export function createTokenChecker(tokens: readonly string[]): (presented: string | null) => boolean {
  const hashes = tokens.filter((t) => t.length > 0).map(digest);
  return (presented) => {
    const h = digest(presented ?? '');
    let ok = false;
    for (const t of hashes) ok = timingSafeEqual(h, t) || ok;
    return ok && presented !== null;
  };
}
