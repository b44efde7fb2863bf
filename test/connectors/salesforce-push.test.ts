/**
 * Salesforce connector push / erase / auth against the sandbox through the real jsforce:
 * collection batching, per-record results, injected faults with a retry loop, purpose consents,
 * session expiry, the API reserve, check().
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PushResult } from '../../src/connectors/contract.js';
import type { Change } from '../../src/model/types.js';
import { createSalesforceSandbox, type SalesforceSandbox } from '../../connectors/salesforce/sandbox/index.js';
import { API, callsTo, change, collect, makeConnector, person } from './salesforce-helpers.js';

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

/** n Contacts (indexes k*5) with addresses p{k}@example.com; returns [id, email] pairs. */
function seedContacts(n: number, extra: Parameters<typeof person>[2] = {}): [string, string][] {
  sb.seed(Array.from({ length: n }, (_, k) => person(k * 5, `p${k}@example.com`, extra)));
  return Array.from({ length: n }, (_, k) => {
    const email = `p${k}@example.com`;
    return [String(sb.state.contactsByEmail(email)[0]?.['Id']), email];
  });
}

const denial = ([id, email]: [string, string]): Change => change(id, email, 'set_consent', 'email', '*', 'denied', { type: 'Contact', individualId: null });

describe('salesforce push', () => {
  it('450 denials go out in ceil(450/200) = 3 collection calls, all ok', async () => {
    const people = seedContacts(450);
    const { connector } = makeConnector(sb, { privacy: 'off' });
    const results = await connector.push(people.map(denial));
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(results.map((r) => r.key)).toEqual(people.map(denial).map((c) => c.key));
    expect(callsTo(sb, `PATCH ${API}/composite/sobjects 200`)).toBe(3);
    expect(people.every(([id]) => sb.state.contact(id)?.['HasOptedOutOfEmail'] === true)).toBe(true);
    // Idempotent: the same changes again are harmless.
    expect((await connector.push(people.slice(0, 10).map(denial))).every((r) => r.status === 'ok')).toBe(true);
  });

  it('one record update carries all its field changes', async () => {
    const [p] = seedContacts(1);
    if (!p) throw new Error('seed');
    const { connector } = makeConnector(sb, { privacy: 'off', faxChannel: 'post' });
    const meta = { type: 'Contact', individualId: null };
    const changes = [change(p[0], p[1], 'set_consent', 'email', '*', 'denied', meta), change(p[0], p[1], 'set_consent', 'phone', '*', 'denied', meta), change(p[0], p[1], 'set_consent', 'post', '*', 'denied', meta)];
    const results = await connector.push(changes);
    expect(results.map((r) => r.status)).toEqual(['ok', 'ok', 'ok']);
    expect(callsTo(sb, `PATCH ${API}/composite/sobjects 200`)).toBe(1);
    expect(sb.state.contact(p[0])).toMatchObject({ HasOptedOutOfEmail: true, DoNotCall: true, HasOptedOutOfFax: true });
  });

  it('maps partial failures per key: lock errors retry, deleted / bad ids fail with the message', async () => {
    const people = seedContacts(200);
    const gone = people[0] as [string, string];
    sb.state.raw.delete(sb.state.raw.contacts, sb.state.raw.contacts.get(gone[0]) ?? (() => { throw new Error('row'); })());
    sb.faults.set({ partialFailureRate: 0.3 });
    const { connector } = makeConnector(sb, { privacy: 'off' });
    const changes = [...people.map(denial), change('003XXXXXXXXXXXXXXX', 'bad@example.com', 'set_consent', 'email', '*', 'denied', { type: 'Contact' })];
    const results = await connector.push(changes);
    const by = (s: PushResult['status']): PushResult[] => results.filter((r) => r.status === s);
    expect(results[0]).toMatchObject({ status: 'failed', code: 'ENTITY_IS_DELETED', reason: expect.stringContaining('entity is deleted') as string });
    expect(results[results.length - 1]).toMatchObject({ status: 'failed' });
    expect(by('retry').length).toBeGreaterThan(20);
    expect(by('retry').every((r) => r.status === 'retry' && r.reason.startsWith('UNABLE_TO_LOCK_ROW'))).toBe(true);
    expect(by('ok').length).toBeGreaterThan(100);
    for (const [i, r] of results.entries()) {
      const id = changes[i]?.recordId ?? '';
      if (r.status === 'ok') expect(sb.state.contact(id)?.['HasOptedOutOfEmail']).toBe(true);
      if (r.status === 'retry') expect(sb.state.contact(id)?.['HasOptedOutOfEmail']).toBe(false);
    }
  });

  it('30% injected faults with a retry loop: every change applied exactly once', async () => {
    const people = seedContacts(300);
    sb.state.raw.purpose('newsletter');
    const { connector } = makeConnector(sb, { requestRetries: 1 });
    // Denials for all; newsletter grants for a third (an Individual and a consent each).
    const changes: Change[] = people.flatMap((p, k) => [denial(p), ...(k % 3 === 0 ? [change(p[0], p[1], 'set_consent', 'email', 'newsletter', 'granted', { type: 'Contact', individualId: null })] : [])]);
    sb.faults.set({ errorRate: 0.1, rateLimitRate: 0.1, resetRate: 0.1, partialFailureRate: 0.05 });
    let pending = changes;
    const done = new Map<string, number>();
    for (let round = 0; round < 60 && pending.length > 0; round++) {
      const results = await connector.push(pending);
      expect(results.map((r) => r.key)).toEqual(pending.map((c) => c.key));
      for (const r of results) {
        expect(r.status === 'failed' ? r.reason : 'not failed').toBe('not failed');
        if (r.status === 'ok') done.set(r.key, (done.get(r.key) ?? 0) + 1);
      }
      pending = pending.filter((_, i) => results[i]?.status === 'retry');
    }
    sb.faults.set({ errorRate: 0, rateLimitRate: 0, resetRate: 0, partialFailureRate: 0 });
    expect(pending).toEqual([]);
    expect([...done.values()].every((n) => n === 1)).toBe(true);
    expect(done.size).toBe(changes.length);
    expect(people.every(([id]) => sb.state.contact(id)?.['HasOptedOutOfEmail'] === true)).toBe(true);
    const granted = people.filter((_, k) => k % 3 === 0);
    const consents = sb.state.consents();
    const individuals = sb.state.individuals();
    expect(individuals).toHaveLength(granted.length);
    expect(consents).toHaveLength(granted.length);
    for (const [id] of granted) {
      const ind = sb.state.contact(id)?.['IndividualId'];
      expect(consents.filter((c) => c['PartyId'] === ind && c['PrivacyConsentStatus'] === 'OptIn')).toHaveLength(1);
    }
  });

  it('purpose grants and denials write ContactPointTypeConsents that a pull reads back (convergence)', async () => {
    const people = seedContacts(2);
    const [a, b] = people as [[string, string], [string, string]];
    sb.state.raw.purpose('newsletter');
    sb.state.raw.purpose('events');
    const { connector } = makeConnector(sb);
    const meta = { type: 'Contact', individualId: null };
    const results = await connector.push([
      change(a[0], a[1], 'set_consent', 'email', 'newsletter', 'granted', meta),
      change(a[0], a[1], 'set_consent', 'email', '*', 'granted', meta),
      change(b[0], b[1], 'set_consent', 'email', 'events', 'denied', meta),
    ]);
    expect(results.map((r) => r.status)).toEqual(['ok', 'ok', 'ok']);
    const pages = await collect(connector.pull(null));
    const recs = pages.flatMap((p) => p.records);
    expect(recs.find((r) => r.recordId === a[0])?.consent).toMatchObject({ 'email:newsletter': 'granted', 'email:*': 'granted' });
    expect(recs.find((r) => r.recordId === b[0])?.consent).toMatchObject({ 'email:events': 'denied', 'email:*': 'unknown' });
    // Our own grants echo as snapshot state only, never as new grant observations; the denial is recorded.
    const obs = pages.flatMap((p) => p.observations);
    expect(obs.filter((o) => o.state === 'granted')).toEqual([]);
    expect(obs).toContainEqual(expect.objectContaining({ subject: b[1], purpose: 'events', state: 'denied' }));
    expect(connector.capabilities.pushGrants).toBe(true);
    expect(connector.capabilities.consent).toContainEqual({ channel: 'email', purpose: 'newsletter' });
  });

  it("one person's changes split over two concurrent pushes land on one Individual (no orphaned consents)", async () => {
    const [a] = seedContacts(1) as [[string, string]];
    sb.state.raw.purpose('newsletter');
    sb.state.raw.purpose('events');
    const { connector } = makeConnector(sb);
    const meta = { type: 'Contact', individualId: null };
    // The outbox may hand one person's changes to two pushes; they must not race to create Individuals.
    const [r1, r2] = await Promise.all([
      connector.push([change(a[0], a[1], 'set_consent', 'email', 'newsletter', 'granted', meta)]),
      connector.push([change(a[0], a[1], 'set_consent', 'email', 'events', 'granted', meta)]),
    ]);
    expect([...(r1 ?? []), ...(r2 ?? [])].map((r) => r.status)).toEqual(['ok', 'ok']);
    expect(sb.state.individuals()).toHaveLength(1);
    const rec = (await collect(connector.pull(null))).flatMap((p) => p.records).find((r) => r.recordId === a[0]);
    expect(rec?.consent).toMatchObject({ 'email:newsletter': 'granted', 'email:events': 'granted' });
  });

  it('whole opt-outs of 450 records (1350 changes) take one push: 1 retrieve, then full 200-record calls', async () => {
    const people = seedContacts(450);
    sb.state.raw.purpose('newsletter');
    sb.state.raw.purpose('events');
    const { connector } = makeConnector(sb);
    // An email opt-out (email:* and both mapped purposes) of 2000 records per push.
    expect(connector.limits.batchSize).toBe(2000 * 3);
    const meta = { type: 'Contact', individualId: null };
    const changes = people.flatMap(([id, email]) => [
      change(id, email, 'set_consent', 'email', '*', 'denied', meta),
      change(id, email, 'set_consent', 'email', 'newsletter', 'denied', meta),
      change(id, email, 'set_consent', 'email', 'events', 'denied', meta),
    ]);
    sb.calls.reset();
    const results = await connector.push(changes);
    expect(results.map((r) => r.key)).toEqual(changes.map((c) => c.key));
    expect(results.filter((r) => r.status !== 'ok')).toEqual([]);
    // One retrieve of the 450 Contacts' IndividualId; 3 creates of Individuals + 5 of 900
    // consents (200 a call); 3 updates carrying the flag and the Individual link together.
    expect(callsTo(sb, `POST ${API}/composite/sobjects/Contact 200`)).toBe(1);
    expect(callsTo(sb, `POST ${API}/composite/sobjects 200`)).toBe(3 + 5);
    expect(callsTo(sb, `PATCH ${API}/composite/sobjects 200`)).toBe(3);
    const recs = (await collect(connector.pull(null))).flatMap((p) => p.records);
    expect(recs).toHaveLength(450);
    expect(recs.filter((r) => r.consent['email:*'] !== 'denied' || r.consent['email:newsletter'] !== 'denied' || r.consent['email:events'] !== 'denied')).toEqual([]);
  });

  it('unsupported changes fail with a reason; suppressions are never written', async () => {
    const [p] = seedContacts(1);
    if (!p) throw new Error('seed');
    const { connector } = makeConnector(sb, { privacy: 'off' });
    const results = await connector.push([
      change(p[0], p[1], 'suppress', 'email', '*', null),
      change(p[0], p[1], 'set_consent', 'email', 'newsletter', 'denied'),
      change(p[0], p[1], 'set_consent', 'email', '*', 'granted'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['failed', 'failed', 'failed']);
    expect(connector.capabilities).toMatchObject({ suppression: [], pushGrants: false, erase: true, acceptsUnknownAddresses: false });
  });

  it('erase deletes the record and its Individual in one collection call; again is ok', async () => {
    sb.seed([person(1, 'erase@example.com', { erasureRequested: true }), person(2, 'keep@example.com')]);
    const { connector } = makeConnector(sb);
    const rec = (await collect(connector.pull(null))).flatMap((p) => p.records).find((r) => r.subject === 'erase@example.com');
    if (!rec) throw new Error('no record');
    const c = change(rec.recordId, rec.subject, 'erase', 'email', '*', null, rec.meta);
    expect(await connector.push([c])).toEqual([{ key: c.key, status: 'ok' }]);
    expect(callsTo(sb, `DELETE ${API}/composite/sobjects 200`)).toBe(1);
    expect(sb.state.contactsByEmail('erase@example.com')).toEqual([]);
    expect(sb.state.individuals()).toEqual([]);
    expect(sb.state.contactsByEmail('keep@example.com')).toHaveLength(1);
    expect(await connector.push([c])).toEqual([{ key: c.key, status: 'ok' }]);
  });

  it('the API reserve makes push retry later, without calling', async () => {
    const people = seedContacts(3);
    const { connector } = makeConnector(sb, { privacy: 'off', apiReserve: 100 });
    expect((await connector.push([denial(people[0] as [string, string])]))[0]?.status).toBe('ok');
    sb.limits.setUsed(14_950);
    expect((await connector.push([denial(people[1] as [string, string])]))[0]?.status).toBe('ok'); // learns the usage
    const before = sb.calls.total;
    const [r] = await connector.push([denial(people[2] as [string, string])]);
    expect(r).toMatchObject({ status: 'retry', retryAfterMs: 3_600_000, reason: expect.stringContaining('14,951/15,000 reached the reserve of 100 calls') as string });
    expect(sb.calls.total).toBe(before);
  });

  it('a call that never answers times out (timeoutMs) and the batch retries', async () => {
    const people = seedContacts(2);
    const { connector } = makeConnector(sb, { privacy: 'off', timeoutMs: 300 });
    expect((await collect(connector.pull(null))).flatMap((p) => p.records)).toHaveLength(2);
    sb.faults.set({ timeoutRate: 1 });
    const started = Date.now();
    const results = await connector.push(people.map(denial));
    sb.faults.set({ timeoutRate: 0 });
    expect(results.map((r) => r.status)).toEqual(['retry', 'retry']);
    expect(results[0]).toMatchObject({ reason: expect.stringMatching(/^timeout: /) as string });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('a daily limit exhausted at Salesforce (403 REQUEST_LIMIT_EXCEEDED) retries later', async () => {
    const people = seedContacts(1);
    sb.limits.setUsed(15_000);
    const { connector } = makeConnector(sb, { privacy: 'off', apiReserve: 0 });
    const [r] = await connector.push([denial(people[0] as [string, string])]);
    expect(r).toMatchObject({ status: 'retry', retryAfterMs: 3_600_000 });
  });
});

describe('salesforce auth', () => {
  const flows: [string, (s: SalesforceSandbox) => Record<string, unknown>][] = [
    ['password via SOAP login', (s) => ({ auth: { flow: 'password', username: s.credentials.username, password: s.credentials.password } })],
    ['password via OAuth 2.0', (s) => ({ auth: { flow: 'password', username: s.credentials.username, password: s.credentials.password, clientId: s.credentials.clientId, clientSecret: s.credentials.clientSecret } })],
    ['client credentials', (s) => ({ instanceUrl: s.url, auth: { flow: 'client_credentials', clientId: s.credentials.clientId, clientSecret: s.credentials.clientSecret } })],
  ];
  for (const [name, auth] of flows) {
    it(`${name}: an expired session re-authorizes once and the call goes through`, async () => {
      const people = seedContacts(2);
      const { connector } = makeConnector(sb, { privacy: 'off', ...auth(sb) });
      const logins = sb.logins;
      expect((await collect(connector.pull(null))).flatMap((p) => p.records)).toHaveLength(2);
      expect(sb.logins).toBe(logins + 1);
      sb.expireSessions();
      expect((await connector.push([denial(people[0] as [string, string])]))[0]?.status).toBe('ok');
      expect(sb.logins).toBe(logins + 2);
      expect(callsTo(sb, `PATCH ${API}/composite/sobjects 401`)).toBe(1);
      sb.expireSessions();
      expect((await collect(connector.pull(null))).flatMap((p) => p.records)).toHaveLength(2);
      expect(sb.logins).toBe(logins + 3);
    });
  }

  it('wrong credentials: check() says so', async () => {
    const { connector } = makeConnector(sb, { auth: { flow: 'password', username: sb.credentials.username, password: 'wrong' } });
    const res = await connector.check();
    expect(res.ok).toBe(false);
    expect(res.details[0]).toMatch(/^login failed \(password at http:\/\/127\.0\.0\.1:\d+\): INVALID_LOGIN/);
  });

  it('check(): login, version, usage, privacy, fields, purposes', async () => {
    sb.seed([person(7, 'c@example.com', { purposes: { newsletter: 'granted' }, subscribedAt: '2024-01-01T00:00:00.000Z' })]);
    const { connector } = makeConnector(sb, { purposes: { newsletter: 'newsletter' } });
    const res = await connector.check();
    expect(res.details.join('\n')).toMatch(/logged in \(password, SOAP login\)/);
    expect(res.details).toContain('API version 59.0 available (newest 59.0)');
    expect(res.details.some((l) => /^daily API usage \d+\/15,000 used, reserve 1,500 \(10%\): runs stop at 13,500$/.test(l))).toBe(true);
    expect(res.details.some((l) => l.startsWith('privacy objects (Individual, ContactPointTypeConsent, DataUsePurpose) available'))).toBe(true);
    expect(res.details).toContain('Contact: fields readable and writable as needed');
    expect(res.details).toContain('purpose newsletter <- DataUsePurpose "newsletter"');
    expect(res.ok).toBe(true);
  });

  it('check(): privacy on where the org has none, and a missing purpose, are actionable failures', async () => {
    const plain = createSalesforceSandbox({ privacyFeatures: false });
    await plain.start();
    try {
      const { connector } = makeConnector(plain, { privacy: 'on' });
      const res = await connector.check();
      expect(res.ok).toBe(false);
      expect(res.details.some((l) => l.startsWith('privacy: on, but Individual / ContactPointTypeConsent / DataUsePurpose are not available'))).toBe(true);
      expect(res.details).toContain('Contact.IndividualId not readable: check field-level security');
    } finally {
      await plain.stop();
    }
  });
});
