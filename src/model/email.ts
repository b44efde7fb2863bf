import { createHash, createHmac } from 'node:crypto';

/** Result of normalizing an email: the canonical subject key, or why it was refused. */
export type EmailResult = { ok: true; email: string } | { ok: false; reason: string };

// Deliberately pragmatic: RFC 5322 allows far more than any mailing platform accepts.
// Local part: dot-atom of the printable characters platforms accept (Unicode letters allowed, SMTPUTF8).
const LOCAL_ATOM = /^[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+$/u;
const DOMAIN_LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u;

/**
 * Subject key for a person: trim, Unicode NFC, lowercase (DESIGN.md section 1).
 * Rejects what no platform would deliver to, with a reason a person can act on.
 */
export function normalizeEmail(raw: unknown): EmailResult {
  if (typeof raw !== 'string') return { ok: false, reason: 'email is not a string' };
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
  return createHash('sha256').update(text).digest('base64url').slice(0, 32);
}
