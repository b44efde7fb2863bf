import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeEmail, type EmailResult } from '../../src/model/email.js';

/** normalizeEmail as first written (regular expressions only): the fast ASCII path must agree with it. */
const LOCAL_ATOM = /^[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+$/u;
const DOMAIN_LABEL = /^[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?$/u;
function reference(raw: unknown): EmailResult {
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

const chars = fc.constantFrom('a', 'Z', 'q', '0', '9', '.', '.', '@', '@', '-', '_', '+', "'", '`', '~', ' ', '\t', '\u000b', '"', '(', ',', 'é', 'É', 'İ', '\u00a0', '\u0301', 'x');
describe('normalizeEmail fast path', () => {
  it('agrees with the regular-expression definition', () => {
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 30 }).map((a) => a.join('')), (s) => {
        expect(normalizeEmail(s)).toEqual(reference(s));
      }),
      { numRuns: 20_000 },
    );
    const long = (n: number, c = 'a') => c.repeat(n);
    for (const s of [`${long(64)}@x.io`, `${long(65)}@x.io`, `a@${long(63)}.io`, `a@${long(64)}.io`, `a@x.${long(250)}`, 'a@1.23', 'a@b.c1', ' A.B@Example.COM ', 'a@-b.io', 'a@b-.io', 'a@b..io', '.a@b.io', 'a.@b.io', 'a..b@c.io', 'a@b', '@b.io', 'a@']) {
      expect(normalizeEmail(s)).toEqual(reference(s));
    }
  });
});
