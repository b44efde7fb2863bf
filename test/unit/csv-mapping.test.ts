import { describe, expect, it } from 'vitest';
import { interpretRow, parseHeader, parseStatedAt, purposeMap, stateMeaning } from '../../connectors/csv/mapping.js';
import type { HeaderMap } from '../../connectors/csv/mapping.js';

describe('csv header', () => {
  it('accepts synonyms case-insensitively, keeps extra columns', () => {
    const h = parseHeader(['\uFEFFE-Mail', 'Status', 'Topic', 'Updated At', 'Proof', 'Medium', 'Notes']);
    expect(h).toEqual({ ok: true, width: 7, columns: { email: 0, state: 1, purpose: 2, stated_at: 3, evidence: 4, channel: 5 } });
    expect(parseHeader(['email_address', 'state', 'timestamp', 'source'])).toMatchObject({ ok: true, columns: { email: 0, state: 1, stated_at: 2, evidence: 3 } });
    expect(parseHeader(['EMAIL', 'date'])).toMatchObject({ ok: false, reason: expect.stringContaining('no state column') });
    expect(parseHeader(['email', 'e-mail', 'state'])).toMatchObject({ ok: false, reason: expect.stringContaining('both mean "email"') });
  });
});

describe('csv state words', () => {
  it.each([
    ['granted', ['subscribed', 'Opted_In', 'opt-in', 'optin', 'YES', 'true', 'consent', 'granted']],
    ['denied', ['unsubscribed', 'opted_out', 'Opt-Out', 'optout', 'no', 'false', 'denied', 'do_not_email', 'DNE']],
    ['unknown', ['pending', 'unknown', '', '  ']],
  ] as const)('%s', (state, words) => {
    for (const w of words) expect(stateMeaning(w), w).toEqual({ kind: 'consent', state });
  });
  it('suppressions and erasure', () => {
    expect(stateMeaning('bounced')).toEqual({ kind: 'suppression', reason: 'hard_bounce' });
    expect(stateMeaning('hard_bounce')).toEqual({ kind: 'suppression', reason: 'hard_bounce' });
    expect(stateMeaning('invalid')).toEqual({ kind: 'suppression', reason: 'invalid_address' });
    for (const w of ['complained', 'spam', 'spam_report']) expect(stateMeaning(w)).toEqual({ kind: 'suppression', reason: 'complaint' });
    for (const w of ['erase', 'forget', 'erasure']) expect(stateMeaning(w)).toEqual({ kind: 'erasure' });
    expect(stateMeaning('maybe')).toBeUndefined();
  });
});

describe('stated_at', () => {
  it.each([
    ['2024-03-01', '2024-03-01T00:00:00.000Z'],
    ['2024-03-01T10:20:30Z', '2024-03-01T10:20:30.000Z'],
    ['2024-03-01T10:20:30+02:00', '2024-03-01T08:20:30.000Z'],
    ['2024-03-01T10:20:30.5-0130', '2024-03-01T11:50:30.500Z'],
    ['2024-03-01 10:20', '2024-03-01T10:20:00.000Z'],
    ['2024-02-29', '2024-02-29T00:00:00.000Z'],
    ['', null],
  ])('%j -> %j', (raw, iso) => expect(parseStatedAt(raw)).toBe(iso));
  it.each(['2023-02-29', '2024-13-01', '2024-01-01T25:00', '01/02/2024', 'yesterday', '2024-1-1'])('rejects %j', (raw) => {
    expect(parseStatedAt(raw)).toBeUndefined();
  });
});

describe('row interpretation', () => {
  const columns: HeaderMap = { email: 0, state: 1, purpose: 2, stated_at: 3, evidence: 4 };
  const ctx = { columns, purposes: purposeMap({ Weekly: 'newsletter' }), channels: new Set(['email'] as const) };
  const row = (...f: string[]) => interpretRow(f, 7, ctx);

  it('a grant is explicit only with a date and evidence (policy rule 2)', () => {
    expect(row('A@X.com', 'yes', 'weekly', '2024-01-01', 'form')).toMatchObject({ ok: true, fact: { email: 'a@x.com', purpose: 'newsletter', state: 'granted', strength: 'explicit' } });
    expect(row('a@x.com', 'yes', '', '2024-01-01', '')).toMatchObject({ ok: true, fact: { purpose: '*', state: 'granted', strength: 'implicit' } });
    expect(row('a@x.com', 'yes', '', '', 'form')).toMatchObject({ ok: true, fact: { state: 'granted', strength: 'implicit', statedAt: null } });
    expect(row('a@x.com', 'no', '', '', '')).toMatchObject({ ok: true, fact: { state: 'denied', strength: 'explicit' } });
    expect(row('a@x.com', 'pending', '', '', '')).toMatchObject({ ok: true, fact: { state: 'unknown', strength: 'implicit' } });
  });

  it('suppressions, complaints, erasure and consentd markers', () => {
    expect(row('a@x.com', 'bounced', 'whatever', '', '')).toMatchObject({ ok: true, fact: { kind: 'suppression', reason: 'hard_bounce', purpose: '*', state: 'unknown' } });
    expect(row('a@x.com', 'complained', '', '', '')).toMatchObject({ ok: true, fact: { kind: 'suppression', reason: 'complaint', state: 'denied' } });
    expect(row('a@x.com', 'forget', '', '', '')).toMatchObject({ ok: true, fact: { kind: 'erasure' } });
    expect(row('a@x.com', 'unsubscribed', '', '', 'consentd:suppressed')).toMatchObject({ ok: true, fact: { kind: 'marker' } });
  });

  it('malformed rows carry a reason', () => {
    expect(row('nope', 'yes', '', '', '')).toMatchObject({ ok: false, reason: expect.stringContaining('invalid email') });
    expect(row('a@x.com', 'perhaps', '', '', '')).toMatchObject({ ok: false, reason: 'unknown state "perhaps"', email: 'a@x.com' });
    expect(row('a@x.com', 'yes', 'Monthly', '', '')).toMatchObject({ ok: false, reason: expect.stringContaining('purpose "Monthly" is not mapped') });
    expect(row('a@x.com', 'yes', '', '31/12/2024', '')).toMatchObject({ ok: false, reason: expect.stringContaining('unparseable stated_at') });
    expect(row('', '', '', '', '')).toEqual({ ok: 'blank' });
  });
});

describe('purposeMap', () => {
  it("maps native names case-insensitively; '*', 'all' and '' mean '*'", () => {
    const m = purposeMap({ Weekly: 'newsletter', Promo: 'offers', 'Promo 2': 'offers' });
    expect(m.canonical(' WEEKLY ')).toBe('newsletter');
    expect(m.canonical('all')).toBe('*');
    expect(m.canonical('')).toBe('*');
    expect(m.canonical('other')).toBeUndefined();
    expect(m.native('offers')).toBe('Promo');
    expect(m.native('*')).toBe('*');
    expect(m.native('events')).toBeUndefined();
    expect(m.mapped()).toEqual(['newsletter', 'offers']);
  });
});
