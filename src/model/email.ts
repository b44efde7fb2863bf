import { createHmac, hash } from 'node:crypto';

/** Result of normalizing an email: the canonical subject key, or why it was refused. */
export type EmailResult = { ok: true; email: string } | { ok: false; reason: string };

// Deliberately pragmatic: RFC 5322 allows far more than any mailing platform accepts.
// Local part: dot-atom of the printable characters platforms accept (Unicode letters allowed, SMTPUTF8).
const LOCAL_ATOM = /^[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+$/u;
const DOMAIN_LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u;

// Characters of a local-part atom that are ASCII (LOCAL_ATOM restricted to lower-case ASCII).
const ASCII_LOCAL = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-") ASCII_LOCAL[c.charCodeAt(0)] = 1;
const isAlnum = (c: number): boolean => (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);

/**
 * The common case without regular expressions: a plain ASCII address that is valid. Returns the
 * normalized address only when every rule of normalizeEmail below accepts it (same result); null
 * means "not sure", and the full check runs.
 */
function asciiFast(raw: string): string | null {
  for (let i = 0; i < raw.length; i++) if (raw.charCodeAt(i) > 0x7e) return null;
  const email = raw.trim().toLowerCase(); // NFC is the identity on ASCII
  const n = email.length;
  const at = email.indexOf('@');
  if (n === 0 || n > 254 || at <= 0 || at > 64 || at === n - 1 || email.indexOf('@', at + 1) !== -1) return null;
  // Local part: atoms of allowed characters, no empty dot segment.
  let prev = 0x2e;
  for (let i = 0; i < at; i++) {
    const c = email.charCodeAt(i);
    if (c === 0x2e) {
      if (prev === 0x2e) return null;
    } else if (ASCII_LOCAL[c] !== 1) return null;
    prev = c;
  }
  if (prev === 0x2e) return null;
  // Domain: at least two labels of 1-63 letters, digits and inner hyphens; a TLD not all digits.
  let labels = 0;
  let start = at + 1;
  for (let i = at + 1; i <= n; i++) {
    if (i < n && email.charCodeAt(i) !== 0x2e) continue;
    const len = i - start;
    if (len < 1 || len > 63 || !isAlnum(email.charCodeAt(start)) || !isAlnum(email.charCodeAt(i - 1))) return null;
    let digits = true;
    for (let k = start; k < i; k++) {
      const c = email.charCodeAt(k);
      if (!isAlnum(c) && c !== 0x2d) return null;
      if (c < 0x30 || c > 0x39) digits = false;
    }
    labels++;
    if (i === n && digits) return null;
    start = i + 1;
  }
  return labels >= 2 ? email : null;
}

/**
 * Subject key for a person: trim, Unicode NFC, lowercase (DESIGN.md section 1).
 * Rejects what no platform would deliver to, with a reason a person can act on.
 */
export function normalizeEmail(raw: unknown): EmailResult {
  if (typeof raw !== 'string') return { ok: false, reason: 'email is not a string' };
  const fast = asciiFast(raw);
  if (fast !== null) return { ok: true, email: fast };
  const email = raw.trim().normalize('NFC').toLowerCase();
  if (email === '') return { ok: false, reason: 'email is empty' };
  if (/\s/u.test(email)) return { ok: false, reason: 'email contains whitespace' };
  if (email.length > 254) return { ok: false, reason: 'email is longer than 254 characters' };
  const at = email.lastIndexOf('@');
  if (at === -1) return { ok: false, reason: 'email has no @' };
  if (email.indexOf('@') !== at) return { ok: false, reason: 'email has more than one @' };
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  if (local === '') return { ok: false, reason: 'email has nothing before the @' };
  if (local.length > 64) return { ok: false, reason: 'local part is longer than 64 characters' };
  if (domain === '') return { ok: false, reason: 'email has no domain after the @' };
  const atoms = local.split('.');
  if (atoms.some((a) => a === '')) return { ok: false, reason: 'local part has an empty dot segment' };
  if (!atoms.every((a) => LOCAL_ATOM.test(a))) return { ok: false, reason: 'local part has a character that is not allowed' };
  const labels = domain.split('.');
  if (labels.length < 2) return { ok: false, reason: 'domain has no dot' };
  if (!labels.every((l) => DOMAIN_LABEL.test(l))) return { ok: false, reason: `domain "${domain}" is not a valid host name` };
  if (/^\d+$/.test(labels[labels.length - 1] ?? '')) return { ok: false, reason: 'top-level domain is numeric' };
  return { ok: true, email };
}

/** Throwing variant for trusted call sites (CLI arguments, tests). */
export function mustNormalizeEmail(raw: string): string {
  const r = normalizeEmail(raw);
  if (!r.ok) throw new InvalidEmailError(raw, r.reason);
  return r.email;
}

export class InvalidEmailError extends Error {
  readonly code = 'INVALID_EMAIL';
  constructor(readonly input: string, readonly reason: string) {
    super(`invalid email: ${reason}`);
  }
}

/** Hash of a subject for logs and tombstones: keyed, so a log reader cannot brute-force emails. */
export function subjectHash(subject: string, salt: string): string {
  return createHmac('sha256', salt).update(subject).digest('hex').slice(0, 32);
}

/** Stable content hash used for ids and idempotency keys. */
export function stableHash(...parts: ReadonlyArray<string | number | boolean | null | undefined>): string {
  // One update() of the joined text: the same bytes as one update() per part and separator (UTF-8
  // of a concatenation is the concatenation of the UTF-8), without a native call per part.
  let text = '';
  for (const p of parts) text += `${p === null || p === undefined ? '\u0000' : String(p)}\u001f`;
  // crypto.hash: the one-shot digest, same bytes as createHash().update().digest() without the object.
  return hash('sha256', text, 'base64url').slice(0, 32);
}
