/**
 * Salesforce connector pull against the sandbox through the real jsforce: field mapping, rejects,
 * converted Leads, the (SystemModstamp, Id) cursor across 5,000 records sharing one timestamp,
 * Individual / consent changes in incremental runs, and the daily API reserve.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ObservationInput, RecordSnapshot } from '../../src/model/types.js';
import { createSalesforceSandbox, type SalesforceSandbox } from '../../connectors/salesforce/sandbox/index.js';
import { collect, makeConnector, person } from './salesforce-helpers.js';

let sb: SalesforceSandbox;

beforeAll(async () => {
  sb = createSalesforceSandbox();
  await sb.start();
});
afterAll(async () => {
  await sb.stop();
});
beforeEach(() => {
  sb.reset();
  sb.faults.set({ errorRate: 0, resetRate: 0, timeoutRate: 0, partialFailureRate: 0, rateLimitRate: 0 });
  sb.limits.max = 15_000;
});

function bySubject<T extends { subject: string }>(items: T[], subject: string): T[] {
  return items.filter((x) => x.subject === subject);
}

describe('salesforce pull: mapping', () => {
  let observations: ObservationInput[];
  let records: RecordSnapshot[];
  let rejects: { where: string; reason: string }[];

  beforeEach(async () => {
    sb.seed([
      person(1, 'optout@example.com', { optedOut: true, optedOutAt: '2025-02-01T00:00:00.000Z', updatedAt: '2025-02-01T00:00:00.000Z' }),
      person(2, 'plain@example.com'),
      person(3, 'solicit@example.com', { optedOut: true, optedOutAt: '2025-03-01T00:00:00.000Z', updatedAt: '2025-03-01T00:00:00.000Z' }),
      person(6, 'forget@example.com', { erasureRequested: true }),
      person(7, 'consent@example.com', { subscribedAt: '2024-05-01T00:00:00.000Z', purposes: { newsletter: 'granted', events: 'denied' }, updatedAt: '2024-06-01T00:00:00.000Z' }),
      person(8, 'bounce@example.com', { hardBounced: true, updatedAt: '2025-04-01T00:00:00.000Z' }),
      person(4, 'converted@example.com', { optedOut: true, optedOutAt: '2025-01-01T00:00:00.000Z' }),
      person(9, 'lead@example.com', { optedOut: true, optedOutAt: '2025-01-01T00:00:00.000Z' }),
      person(11, 'not-an-email'),
      person(12, 'call@example.com'),
      person(13, 'expired@example.com', { subscribedAt: '2024-05-01T00:00:00.000Z', purposes: { newsletter: 'granted' } }),
    ]);
    const raw = sb.state.raw;
    const call = raw.contacts.byEmail('call@example.com')[0];
    if (call) raw.update(raw.contacts, call, { DoNotCall: true });
    const consents = raw.mustTable('ContactPointTypeConsent');
    const expiredInd = sb.state.contactsByEmail('expired@example.com')[0]?.['IndividualId'];
    const consentInd = sb.state.contactsByEmail('consent@example.com')[0]?.['IndividualId'];
    for (const row of consents.rows) {
      const party = consents.idOf(row).length > 0 ? row['PartyId'] : null;
      if (party === expiredInd) raw.update(consents, row, { EffectiveTo: Date.parse('2025-01-01T00:00:00Z') });
      if (party === consentInd && row['PrivacyConsentStatus'] === 'OptIn') raw.update(consents, row, { DoubleConsentCaptureDate: Date.parse('2024-05-02T00:00:00Z') });
    }
    const { connector } = makeConnector(sb, { faxChannel: 'post' });
    const pages = await collect(connector.pull(null));
    observations = pages.flatMap((p) => p.observations);
    records = pages.flatMap((p) => p.records);
    rejects = pages.flatMap((p) => p.rejects ?? []);
  });

  it('HasOptedOutOfEmail true is an explicit (email, *) denial stated at LastModifiedDate', () => {
    const o = bySubject(observations, 'optout@example.com');
    expect(o).toHaveLength(1);
    expect(o[0]).toMatchObject({ kind: 'consent', channel: 'email', purpose: '*', state: 'denied', strength: 'explicit', statedAt: '2025-02-01T00:00:00.000Z', source: 'sf', how: 'pull' });
    const r = bySubject(records, 'optout@example.com')[0];
    expect(r?.consent['email:*']).toBe('denied');
    expect(r?.meta).toMatchObject({ type: 'Contact', individualId: null });
  });

  it('a false flag is unknown, never a grant', () => {
    expect(bySubject(observations, 'plain@example.com')).toEqual([]);
    const r = bySubject(records, 'plain@example.com')[0];
    expect(r?.consent).toEqual({ 'email:*': 'unknown', 'phone:*': 'unknown', 'post:*': 'unknown', 'email:newsletter': 'unknown', 'email:events': 'unknown' });
    expect(observations.filter((o) => o.state === 'granted' && o.purpose === '*')).toEqual([]);
  });

  it('Individual.HasOptedOutSolicit denies email, phone and post', () => {
    const o = bySubject(observations, 'solicit@example.com').filter((x) => x.evidence === 'Individual.HasOptedOutSolicit');
    expect(o.map((x) => x.channel).sort()).toEqual(['email', 'phone', 'post']);
    expect(o.every((x) => x.state === 'denied' && x.purpose === '*' && x.statedAt === '2025-03-01T00:00:00.000Z')).toBe(true);
  });

  it('Individual.ShouldForget is an erasure request', () => {
    const o = bySubject(observations, 'forget@example.com');
    expect(o).toEqual([expect.objectContaining({ kind: 'erasure', evidence: 'Individual.ShouldForget' })]);
  });

  it('ContactPointTypeConsent OptIn is an explicit grant with CaptureDate and evidence; OptOut a denial', () => {
    const o = bySubject(observations, 'consent@example.com');
    const grant = o.find((x) => x.purpose === 'newsletter');
    expect(grant).toMatchObject({ state: 'granted', strength: 'explicit', statedAt: '2024-05-01T00:00:00.000Z', channel: 'email' });
    expect(grant?.evidence).toContain('CaptureSource: Seed import');
    expect(grant?.evidence).toContain('double opt-in 2024-05-02T00:00:00.000Z');
    expect(o.find((x) => x.purpose === 'events')).toMatchObject({ state: 'denied', strength: 'explicit' });
    const r = bySubject(records, 'consent@example.com')[0];
    expect(r?.consent).toMatchObject({ 'email:newsletter': 'granted', 'email:events': 'denied', 'email:*': 'unknown' });
  });

  it('a consent whose EffectiveTo is past is ignored', () => {
    expect(bySubject(observations, 'expired@example.com')).toEqual([]);
    expect(bySubject(records, 'expired@example.com')[0]?.consent['email:newsletter']).toBe('unknown');
  });

  it('a bounce is a hard_bounce suppression at EmailBouncedDate', () => {
    const o = bySubject(observations, 'bounce@example.com');
    expect(o).toEqual([expect.objectContaining({ kind: 'suppression', reason: 'hard_bounce', channel: 'email', statedAt: '2025-04-01T00:00:00.000Z' })]);
    expect(bySubject(records, 'bounce@example.com')[0]?.suppressed).toEqual({ email: true });
  });

  it('DoNotCall denies the phone channel', () => {
    expect(bySubject(observations, 'call@example.com')).toEqual([expect.objectContaining({ channel: 'phone', purpose: '*', state: 'denied', evidence: 'Contact.DoNotCall' })]);
  });

  it('converted Leads are skipped; their Contact carries the person; other Leads are read', () => {
    const conv = bySubject(records, 'converted@example.com');
    expect(conv.map((r) => r.meta['type'])).toEqual(['Contact']);
    expect(bySubject(records, 'lead@example.com').map((r) => r.meta['type'])).toEqual(['Lead']);
    expect(bySubject(observations, 'lead@example.com')[0]).toMatchObject({ state: 'denied', evidence: 'Lead.HasOptedOutOfEmail' });
  });

  it('a record with an invalid email is rejected with its id', () => {
    const id = sb.state.contactsByEmail('not-an-email')[0]?.['Id'];
    expect(rejects).toEqual([{ where: `Contact ${String(id)}`, reason: expect.stringContaining('invalid email') as string }]);
  });
});

describe('salesforce pull: converted Leads included on request', () => {
  it('reads the converted Lead too', async () => {
    sb.seed([person(4, 'converted@example.com')]);
    const { connector } = makeConnector(sb, { convertedLeads: 'include' });
    const records = (await collect(connector.pull(null))).flatMap((p) => p.records);
    expect(records.map((r) => r.meta['type']).sort()).toEqual(['Contact', 'Lead']);
  });
});

describe('salesforce pull: cursor', () => {
  it('5,000 records sharing one SystemModstamp across page boundaries: nothing lost, nothing repeated', async () => {
    // Indexes that are multiples of 5 are Contacts; one shared updatedAt = one SystemModstamp.
    sb.seed(Array.from({ length: 5000 }, (_, k) => person(k * 5, `same${k}@example.com`, { updatedAt: '2025-05-05T05:05:05.000Z' })));
    const { connector } = makeConnector(sb, { pageSize: 2000, privacy: 'off' });
    const first = await collect(connector.pull(null), 1);
    expect(first[0]?.records).toHaveLength(2000);
    const cursor = first[0]?.cursor ?? null;
    expect(cursor).not.toBeNull();
    // Resume from the page boundary inside the shared timestamp.
    const rest = await collect(connector.pull(cursor));
    expect(rest.map((p) => p.records.length)).toEqual([2000, 1000]);
    const ids = [...first, ...rest].flatMap((p) => p.records.map((r) => r.recordId));
    expect(ids).toHaveLength(5000);
    expect(new Set(ids).size).toBe(5000);
    // Nothing changed: an incremental run finds nothing.
    const last = rest[rest.length - 1]?.cursor ?? null;
    expect((await collect(connector.pull(last))).flatMap((p) => p.records)).toEqual([]);
    // One change: exactly that record.
    sb.actions.unsubscribe('same4321@example.com');
    const next = (await collect(connector.pull(last))).flatMap((p) => p.records);
    expect(next.map((r) => r.subject)).toEqual(['same4321@example.com']);
    expect(next[0]?.consent['email:*']).toBe('denied');
  });

  it('an incremental run follows Individual and consent changes to their Contacts', async () => {
    sb.seed([person(1, 'ind@example.com', { subscribedAt: '2024-01-01T00:00:00.000Z' }), person(2, 'other@example.com')]);
    const { connector } = makeConnector(sb);
    const full = await collect(connector.pull(null));
    const cursor = full[full.length - 1]?.cursor ?? null;
    expect((await collect(connector.pull(cursor))).flatMap((p) => p.records)).toEqual([]);
    // ShouldForget set on an existing Individual: the Contact's own SystemModstamp does not move.
    const before = sb.state.contactsByEmail('ind@example.com')[0]?.['SystemModstamp'];
    sb.actions.erasureRequest('ind@example.com');
    expect(sb.state.contactsByEmail('ind@example.com')[0]?.['SystemModstamp']).toBe(before);
    const pages = await collect(connector.pull(cursor));
    expect(pages.flatMap((p) => p.records).map((r) => r.subject)).toEqual(['ind@example.com']);
    expect(pages.flatMap((p) => p.observations)).toContainEqual(expect.objectContaining({ kind: 'erasure', subject: 'ind@example.com' }));
  });

  it('a cursor it does not understand means a full pull', async () => {
    sb.seed([person(1, 'a@example.com'), person(2, 'b@example.com')]);
    const { connector } = makeConnector(sb);
    expect((await collect(connector.pull('garbage'))).flatMap((p) => p.records)).toHaveLength(2);
  });
});

describe('salesforce pull: daily API reserve', () => {
  it('stops with SF_API_RESERVE before eating the reserve; the saved cursor resumes', async () => {
    sb.seed(Array.from({ length: 3000 }, (_, k) => person(k * 5, `r${k}@example.com`, { updatedAt: new Date(Date.parse('2025-01-01T00:00:00Z') + k * 1000).toISOString() })));
    sb.limits.setUsed(13_490);
    const { connector } = makeConnector(sb, { pageSize: 200, privacy: 'off' });
    const pages: { cursor: string | null; n: number }[] = [];
    let error: unknown;
    try {
      for await (const p of connector.pull(null)) pages.push({ cursor: p.cursor, n: p.records.length });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'SF_API_RESERVE' });
    expect((error as Error).message).toMatch(/^Salesforce daily API usage 13,500\/15,000 reached the 10% reserve; stopping; the cursor is saved, the next run resumes$/);
    expect(sb.limits.used()).toBe(13_500);
    expect(pages.length).toBeGreaterThan(0);
    expect(pages.length).toBeLessThan(15);
    // The next day (here: a larger allowance) resumes from the saved cursor.
    sb.limits.max = 100_000;
    const { connector: again } = makeConnector(sb, { pageSize: 200, privacy: 'off' });
    const rest = await collect(again.pull(pages[pages.length - 1]?.cursor ?? null));
    expect(pages.reduce((n, p) => n + p.n, 0) + rest.reduce((n, p) => n + p.records.length, 0)).toBe(3000);
  });
});
