/**
 * HubSpot sandbox webhooks v3: emitted on API writes (echoes) and on control actions, signed
 * so that the SDK's Signature.isValid accepts them, retried with the same eventIds.
 */
import { Client, Signature } from '@hubspot/api-client';
import type { IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readBody, startHttpServer, type RunningServer } from '../../src/sandbox/http.js';
import { createHubSpotSandbox, type HubSpotEvent } from '../../connectors/hubspot/sandbox/index.js';
import { hubspotPeople } from '../../connectors/hubspot/sandbox/people.js';

interface Received {
  headers: IncomingHttpHeaders;
  raw: string;
  events: HubSpotEvent[];
}

describe('HubSpot sandbox: webhooks v3', () => {
  const received: Received[] = [];
  /** Statuses the receiver answers, in order; then 204. */
  let answers: number[] = [];
  let receiver: RunningServer;
  let hookUrl = '';
  const sb = createHubSpotSandbox({ tenSecondlyLimit: 100_000, webhookBatchMs: 20, webhookRetryDelaysMs: [50, 50, 50] });
  let hs: Client;

  beforeAll(async () => {
    receiver = await startHttpServer(async (req, res) => {
      const raw = (await readBody(req)).toString('utf8');
      received.push({ headers: req.headers, raw, events: JSON.parse(raw) as HubSpotEvent[] });
      res.writeHead(answers.shift() ?? 204).end();
    });
    hookUrl = `${receiver.url}/hooks/hubspot?tenant=demo`;
    await sb.start();
    sb.setWebhookUrl(hookUrl);
    sb.seed(hubspotPeople(30));
    hs = new Client({ accessToken: sb.credentials.accessToken, basePath: sb.url });
  });
  afterAll(async () => {
    await sb.stop();
    await receiver.close();
  });
  beforeEach(() => {
    received.length = 0;
    answers = [];
  });

  const valid = (r: Received): boolean =>
    Signature.isValid({
      signature: String(r.headers['x-hubspot-signature-v3']),
      clientSecret: sb.credentials.appSecret,
      requestBody: r.raw,
      signatureVersion: 'v3',
      url: hookUrl,
      method: 'POST',
      timestamp: Number(r.headers['x-hubspot-request-timestamp']),
    });

  it('an API update emits a signed contact.propertyChange with changeSource API (an echo)', async () => {
    await hs.crm.contacts.basicApi.update('1001', { properties: { firstname: 'Echo' } });
    await sb.flushWebhooks();
    expect(received).toHaveLength(1);
    const r = received[0] as Received;
    expect(r.headers['content-type']).toBe('application/json');
    expect(r.headers['x-hubspot-signature-version']).toBe('v3');
    expect(valid(r)).toBe(true);
    expect(r.events).toEqual([
      expect.objectContaining({
        subscriptionType: 'contact.propertyChange',
        objectId: 1001,
        propertyName: 'firstname',
        propertyValue: 'Echo',
        changeSource: 'API',
        sourceId: String(sb.credentials.appId),
        portalId: sb.credentials.portalId,
        appId: sb.credentials.appId,
        attemptNumber: 0,
      }),
    ]);
    expect(typeof r.events[0]?.eventId).toBe('number');
    expect(typeof r.events[0]?.occurredAt).toBe('number');
    // A tampered body does not verify.
    expect(valid({ ...r, raw: r.raw.replace('Echo', 'Fake') })).toBe(false);
  });

  it('a control unsubscribe (person clicks the link) emits hs_email_optout and per-type changes', async () => {
    const res = await fetch(`${sb.url}/__sandbox/actions/unsubscribe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'person1@example.com' }) });
    expect(res.status).toBe(200);
    await sb.flushWebhooks();
    const events = received.flatMap((r) => r.events);
    expect(received.every(valid)).toBe(true);
    const optout = events.find((e) => e.propertyName === 'hs_email_optout');
    expect(optout).toMatchObject({ objectId: 1002, propertyValue: 'true', changeSource: 'EMAIL' });
    const perType = events.filter((e) => e.propertyName?.startsWith('hs_email_optout_')).map((e) => e.propertyName);
    // person1's types that were not already UNSUBSCRIBED changed.
    expect(perType.length).toBeGreaterThan(0);
    expect(sb.state.wideStatus('person1@example.com').status).toBe('UNSUBSCRIBED');
    const c = await hs.crm.contacts.basicApi.getById('1002', ['hs_email_optout']);
    expect(c.properties['hs_email_optout']).toBe('true');
  });

  it('an unsubscribe of a duplicated address changes every contact with it', async () => {
    sb.actions.resubscribe('person7@example.com', '1001');
    await sb.flushWebhooks();
    received.length = 0;
    sb.actions.unsubscribe('PERSON7@example.com', '1001');
    await sb.flushWebhooks();
    const events = received.flatMap((r) => r.events);
    const dupIds = sb.state.contactsByEmail('person7@example.com').map((c) => Number(c.id));
    expect(dupIds).toEqual([1008, 1009]);
    // Statuses belong to the address (case-insensitive): both contacts change.
    expect(events.map((e) => [e.objectId, e.propertyName, e.propertyValue])).toEqual([
      [1008, 'hs_email_optout_1001', 'true'],
      [1009, 'hs_email_optout_1001', 'true'],
    ]);
  });

  it('retries a 500 with the same eventIds, re-signed, attemptNumber + 1', async () => {
    answers = [500, 503];
    await hs.crm.contacts.basicApi.update('1003', { properties: { lastname: 'Retried' } });
    await sb.flushWebhooks();
    expect(received).toHaveLength(3);
    const [a, b, c] = received as [Received, Received, Received];
    expect(a.events.map((e) => e.eventId)).toEqual(c.events.map((e) => e.eventId));
    expect(b.events.map((e) => e.eventId)).toEqual(c.events.map((e) => e.eventId));
    expect([a, b, c].map((r) => r.events[0]?.attemptNumber)).toEqual([0, 1, 2]);
    expect([a, b, c].every(valid)).toBe(true);
    expect(Number(c.headers['x-hubspot-request-timestamp'])).toBeGreaterThan(Number(a.headers['x-hubspot-request-timestamp']));
    const log = sb.webhooks.log.at(-1);
    expect(log).toMatchObject({ attempts: 3, status: 204 });
  });

  it('batches up to 100 events per request', async () => {
    const inputs = Array.from({ length: 30 }, (_, i) => ({ id: String(1001 + i), properties: { firstname: `Batch${i}`, lastname: `Many${i}` } }));
    await hs.crm.contacts.batchApi.update({ inputs });
    await hs.crm.contacts.batchApi.update({ inputs: inputs.map((x) => ({ ...x, properties: { firstname: `Again${x.id}`, lastname: `More${x.id}` } })) });
    await sb.flushWebhooks();
    const counts = received.map((r) => r.events.length);
    expect(counts.reduce((s, n) => s + n, 0)).toBe(120);
    expect(Math.max(...counts)).toBeLessThanOrEqual(100);
    expect(received.length).toBeLessThan(5);
  });

  it('privacy deletion and archive emit contact.privacyDeletion and contact.deletion', async () => {
    const ids = sb.actions.privacyDeletion('person2@example.com');
    await hs.crm.contacts.basicApi.archive('1005');
    await sb.flushWebhooks();
    const events = received.flatMap((r) => r.events);
    expect(events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ subscriptionType: 'contact.privacyDeletion', objectId: Number(ids[0]) }),
        expect.objectContaining({ subscriptionType: 'contact.deletion', objectId: 1005, changeSource: 'API' }),
      ]),
    );
    const gone = await hs.crm.contacts.basicApi.getById(String(ids[0])).catch((e: { code: number }) => e.code);
    expect(gone).toBe(404);
    expect(sb.state.statuses('person2@example.com').every((s) => s.status === 'NOT_SPECIFIED')).toBe(true);
  });

  it('control resubscribe (form, explicit) and bounce emit changes; merge emits contact.merge', async () => {
    sb.actions.unsubscribe('person3@example.com', '1002');
    await sb.flushWebhooks();
    received.length = 0;
    sb.actions.resubscribe('person3@example.com', '1002');
    sb.actions.bounce('person6@example.com');
    const m = await fetch(`${sb.url}/__sandbox/actions/merge`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ primaryEmail: 'person8@example.com', mergeEmail: 'person9@example.com' }),
    });
    expect(m.status).toBe(200);
    await sb.flushWebhooks();
    const events = received.flatMap((r) => r.events);
    expect(events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ propertyName: 'hs_email_optout', propertyValue: 'false', changeSource: 'FORM', objectId: 1004 }),
        expect.objectContaining({ propertyName: 'hs_email_optout_1002', propertyValue: 'false', changeSource: 'FORM' }),
        expect.objectContaining({ propertyName: 'hs_email_hard_bounce_reason_enum', propertyValue: 'BAD_MAILBOX' }),
        expect.objectContaining({ subscriptionType: 'contact.merge', objectId: 1010, mergedObjectIds: [1010, 1011] }),
      ]),
    );
    expect(sb.state.statuses('person3@example.com')[1]).toMatchObject({ status: 'SUBSCRIBED', legalBasis: 'CONSENT_WITH_NOTICE', source: 'FORM' });
    // The merged-away id now resolves to the survivor.
    const merged = await hs.crm.contacts.basicApi.getById('1011', ['email']);
    expect(merged.id).toBe('1010');
  });

  it('seeded erasure requests are performed on demand', async () => {
    const pending = sb.state.pendingPrivacyDeletions();
    expect(pending).toEqual(['1013']); // person 11 (person 7 has two contacts)
    const res = await fetch(`${sb.url}/__sandbox/actions/process-privacy-deletions`, { method: 'POST' });
    expect(((await res.json()) as { ids: string[] }).ids).toEqual(['1013']);
    await sb.flushWebhooks();
    expect(received.flatMap((r) => r.events)).toEqual([expect.objectContaining({ subscriptionType: 'contact.privacyDeletion', objectId: 1013 })]);
  });
});
