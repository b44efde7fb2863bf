/**
 * HubSpot connector against its sandbox: the shared connector kit, the 10,000-result search cap
 * and privacy deletions. Mapping and protocol edge cases (nock) are in hubspot-nock.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHubSpotConnector } from '../../connectors/hubspot/index.js';
import { decodeCursor, encodeCursor } from '../../connectors/hubspot/pull.js';
import type { HubSpotWebhookTranslation } from '../../connectors/hubspot/webhook.js';
import { createHubSpotSandbox } from '../../connectors/hubspot/sandbox/index.js';
import type { PullPage, WebhookEvent } from '../../src/connectors/contract.js';
import type { Change } from '../../src/model/types.js';
import type { SeedPerson } from '../../src/sandbox/seed-types.js';
import { kitChange, pullAll, runConnectorKit } from '../kit/connector-kit.js';
import { hubspotHarness, settingsFor, testCtx } from '../kit/harnesses/hubspot.js';

runConnectorKit({ name: 'hubspot', setup: () => hubspotHarness() });

describe('hubspot incremental pull past the 10,000-result search cap (sandbox)', () => {
  const sb = createHubSpotSandbox({ tenSecondlyLimit: 100_000, searchPerSecond: 1_000 });
  const T = Date.parse('2025-03-01T00:00:00.000Z');
  beforeAll(async () => {
    await sb.start();
    const people: SeedPerson[] = [];
    // 10,500 contacts share one millisecond, 1,500 more follow.
    for (let i = 0; i < 12_000; i++) {
      const updatedAt = new Date(i < 10_500 ? T : T + 1_000 + i).toISOString();
      people.push({ index: i, email: `p${i}@example.com`, firstName: 'A', lastName: 'B', phone: null, presence: { hubspot: { emails: [`p${i}@example.com`], optedOut: i % 7 === 0, optedOutAt: null, subscribedAt: null, purposes: {}, hardBounced: false, complained: false, erasureRequested: false, updatedAt } } });
    }
    sb.seed(people);
  });
  afterAll(() => sb.stop());

  it('loses nothing and reads nothing twice when more than 10,000 contacts share a timestamp', async () => {
    const c = createHubSpotConnector(settingsFor(sb, { subscriptions: {} }), testCtx());
    const pages: PullPage[] = await pullAll(c, encodeCursor({ lastmodifieddate: T - 1, id: '0' }));
    const ids = pages.flatMap((p) => p.records.map((r) => r.recordId));
    expect(ids.length).toBe(12_000);
    expect(new Set(ids).size).toBe(12_000);
    // 60 pages of 200, one restart before the cap: no page was read twice.
    expect(sb.calls.snapshot()['POST /crm/v3/objects/contacts/search 200']).toBe(60);
    expect(Object.keys(sb.calls.snapshot()).some((k) => / 400$/.test(k))).toBe(false);
    const last = decodeCursor(pages.at(-1)?.cursor ?? '');
    expect(last.lastmodifieddate).toBe(T + 1_000 + 11_999);
    // Resuming from the last cursor finds nothing new.
    expect((await pullAll(c, pages.at(-1)?.cursor ?? null)).flatMap((p) => p.records)).toEqual([]);
    // Resuming from the middle of the tie continues after it.
    const mid = pages.find((p) => p.cursor !== null && decodeCursor(p.cursor).lastmodifieddate === T)?.cursor ?? null;
    const rest = (await pullAll(c, mid)).flatMap((p) => p.records.map((r) => r.recordId));
    expect(rest.length).toBeLessThan(12_000);
    expect(new Set([...ids.slice(0, 12_000 - rest.length), ...rest]).size).toBe(12_000);
    await c.close?.();
  });

  it('answers contact.privacyDeletion with an erasure, or a pending resolution once the contact is gone', async () => {
    const c = createHubSpotConnector(settingsFor(sb), testCtx());
    const id = sb.state.contactsByEmail('p3@example.com')[0]?.id ?? '';
    const ev = (objectId: string, eventId: string): WebhookEvent => ({ id: eventId, type: 'contact.privacyDeletion', occurredAt: new Date().toISOString(), payload: { eventId, objectId, subscriptionType: 'contact.privacyDeletion', changeSource: 'CRM_UI' } });
    const before = (await c.webhook?.toObservations([ev(id, '1')])) as HubSpotWebhookTranslation;
    expect(before.observations).toMatchObject([{ subject: 'p3@example.com', kind: 'erasure', recordId: id, reference: 'event:1', how: 'webhook' }]);
    sb.actions.privacyDeletion('p3@example.com');
    const after = (await c.webhook?.toObservations([ev(id, '2')])) as HubSpotWebhookTranslation;
    expect(after.observations).toEqual([]);
    expect(after.erasuresByRecord).toEqual([{ recordId: id, reference: 'event:2', statedAt: expect.any(String) as unknown }]);
    await c.close?.();
  });
});


describe('hubspot push of whole opt-outs (sandbox)', () => {
  const sb = createHubSpotSandbox({ tenSecondlyLimit: 100_000, searchPerSecond: 1_000 });
  const N = 250;
  beforeAll(async () => {
    await sb.start();
    const people: SeedPerson[] = [];
    for (let i = 0; i < N; i++) {
      const email = `o${i}@example.com`;
      people.push({ index: i, email, firstName: 'A', lastName: 'B', phone: null, presence: { hubspot: { emails: [email], optedOut: false, optedOutAt: null, subscribedAt: '2024-01-01T00:00:00.000Z', purposes: { newsletter: 'granted', product_updates: 'granted' }, hardBounced: false, complained: false, erasureRequested: false, updatedAt: '2024-01-01T00:00:00.000Z' } } });
    }
    sb.seed(people);
  });
  afterAll(() => sb.stop());

  it('carries each address\'s purpose denials in its unsubscribe-all: ceil(250/100) = 3 calls for 750 changes', async () => {
    const c = createHubSpotConnector(settingsFor(sb), testCtx());
    const records = (await pullAll(c, null)).flatMap((p) => p.records);
    expect(records).toHaveLength(N);
    expect(records.every((r) => r.consent['email:newsletter'] === 'granted')).toBe(true);
    // One push holds them all: every scope of 100 addresses, times 10 full calls.
    expect(c.limits.batchSize).toBe(100 * 3 * 10);
    const changes: Change[] = records.flatMap((r) => [
      kitChange(r, { op: 'set_consent', channel: 'email', purpose: '*', target: 'denied' }),
      kitChange(r, { op: 'set_consent', channel: 'email', purpose: 'newsletter', target: 'denied' }),
      kitChange(r, { op: 'set_consent', channel: 'email', purpose: 'product_updates', target: 'denied' }),
    ]);
    sb.calls.reset();
    const results = await c.push(changes);
    expect(results.map((r) => r.key)).toEqual(changes.map((x) => x.key));
    expect(results.filter((r) => r.status !== 'ok')).toEqual([]);
    expect(sb.calls.snapshot()).toEqual({ 'POST /communication-preferences/v4/statuses/batch/unsubscribe-all 200': 3 });
    // What a fresh pull reads agrees with every change: nothing would be planned again.
    const after = (await pullAll(c, null)).flatMap((p) => p.records);
    expect(after.filter((r) => r.consent['email:*'] !== 'denied' || r.consent['email:newsletter'] !== 'denied' || r.consent['email:product_updates'] !== 'denied')).toEqual([]);
    // Idempotent: the same push again is ok.
    expect((await c.push(changes.slice(0, 30))).every((r) => r.status === 'ok')).toBe(true);
    await c.close?.();
  });

  it('a purpose denial without an unsubscribe-all of its address is written, and its outcome is its own', async () => {
    const c = createHubSpotConnector(settingsFor(sb), testCtx());
    const rec = (email: string): Parameters<typeof kitChange>[0] => ({ connectorId: 'hubspot', recordId: sb.state.contactsByEmail(email)[0]?.id ?? '', subject: email, consent: {}, suppressed: {}, meta: {} });
    const changes = [kitChange(rec('o1@example.com'), { op: 'set_consent', channel: 'email', purpose: 'newsletter', target: 'denied' })];
    sb.calls.reset();
    expect((await c.push(changes)).map((r) => r.status)).toEqual(['ok']);
    // (A fresh connector first probes v4 with one batch/read.)
    expect(sb.calls.snapshot()).toEqual({ 'POST /communication-preferences/v4/statuses/batch/read 200': 1, 'POST /communication-preferences/v4/statuses/batch/write 200': 1 });
    await c.close?.();
  });
});
