/**
 * HubSpot connector: nock unit tests for mapping and protocol edge cases (a file of its own:
 * nock intercepts global fetch too, which the sandboxes' webhook senders use).
 */
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHubSpotConnector, hubspotSettings } from '../../connectors/hubspot/index.js';
import { classifyHubSpotError } from '../../connectors/hubspot/client.js';
import { mapContact, type SubStatus } from '../../connectors/hubspot/mapping.js';
import { decodeCursor, encodeCursor } from '../../connectors/hubspot/pull.js';
import type { Connector, PullPage, WebhookEvent } from '../../src/connectors/contract.js';
import { pullAll, kitChange } from '../kit/connector-kit.js';
import { testCtx } from '../kit/harnesses/hubspot.js';

// ------------------------------------------------------------------------------------------
// nock unit tests

const BASE = 'https://api.hubapi.com';

function nockConnector(extra: Record<string, unknown> = {}): Connector {
  const s = hubspotSettings.parse({ accessToken: 'pat-test', appSecret: 'secret', subscriptions: { '1001': 'newsletter', '1002': 'product_updates' }, commPrefs: 'v4', ...extra });
  return createHubSpotConnector(s, testCtx(), { readAttempts: 1 });
}

const status = (subscriptionId: number, st: string, legalBasis: string | null, timestamp = '2025-01-02T03:04:05.000Z'): Record<string, unknown> => ({ subscriptionId, status: st, legalBasis, legalBasisExplanation: legalBasis ? 'why' : null, source: 'FORM', timestamp, channel: 'EMAIL' });

describe('hubspot mapping', () => {
  const subs = new Map([
    ['1001', 'newsletter'],
    ['1002', 'product_updates'],
  ]);
  const contact = (props: Record<string, string | null>): { id: string; properties: Record<string, string | null> } => ({ id: '501', properties: { email: ' Jane@Example.com ', lastmodifieddate: '2025-02-01T00:00:00.000Z', ...props } });
  const st = (id: string, s: SubStatus['status'], legalBasis: string | null): SubStatus => ({ subscriptionId: id, status: s, legalBasis, legalBasisExplanation: 'told', source: 'FORM', timestamp: '2025-01-01T00:00:00.000Z' });

  it('grants explicitly only with a consent legal basis; NOT_SPECIFIED and opt-out false are never granted', () => {
    for (const [basis, strength] of [
      ['CONSENT_WITH_NOTICE', 'explicit'],
      ['LEGITIMATE_INTEREST_PQL', 'implicit'],
      ['LEGITIMATE_INTEREST_OTHER', 'implicit'],
      ['PERFORMANCE_OF_CONTRACT', 'implicit'],
      ['NON_GDPR', 'implicit'],
      [null, 'implicit'],
    ] as const) {
      const m = mapContact(contact({ hs_email_optout: 'false' }), { connectorId: 'hs', subscriptions: subs, statuses: new Map([['1001', st('1001', 'SUBSCRIBED', basis)], ['1002', st('1002', 'NOT_SPECIFIED', null)]]), how: 'pull' });
      if (!m.ok) throw new Error('expected a record');
      expect(m.record.subject).toBe('jane@example.com');
      expect(m.record.meta).toEqual({ email: ' Jane@Example.com ' });
      const news = m.observations.find((o) => o.purpose === 'newsletter');
      expect(news).toMatchObject({ state: 'granted', strength, statedAt: '2025-01-01T00:00:00.000Z' });
      expect(news?.evidence).toContain(`legal basis ${basis ?? 'none'}`);
      expect(m.observations.find((o) => o.purpose === 'product_updates')).toMatchObject({ state: 'unknown', strength: 'implicit' });
      expect(m.observations.find((o) => o.purpose === '*')).toMatchObject({ state: 'unknown' });
      expect(m.record.consent).toEqual({ 'email:*': 'unknown', 'email:newsletter': 'granted', 'email:product_updates': 'unknown' });
    }
  });

  it('opt-out of all is an explicit denial at lastmodifieddate; unsubscribed keeps its own time', () => {
    const m = mapContact(contact({ hs_email_optout: 'true' }), { connectorId: 'hs', subscriptions: subs, statuses: new Map([['1001', st('1001', 'UNSUBSCRIBED', null)]]), how: 'pull' });
    if (!m.ok) throw new Error('expected a record');
    expect(m.observations.find((o) => o.purpose === '*')).toMatchObject({ state: 'denied', strength: 'explicit', statedAt: '2025-02-01T00:00:00.000Z' });
    expect(m.observations.find((o) => o.purpose === 'newsletter')).toMatchObject({ state: 'denied', strength: 'explicit', statedAt: '2025-01-01T00:00:00.000Z' });
    // No v4 answer for 1002 while statuses were read: unknown, not the property.
    expect(m.record.consent['email:product_updates']).toBe('unknown');
  });

  it('without v4 statuses the hs_email_optout_<id> flags stand in; a "false" flag is only an implicit grant', () => {
    const m = mapContact(contact({ hs_email_optout_1001: 'false', hs_email_optout_1002: 'true' }), { connectorId: 'hs', subscriptions: subs, statuses: undefined, how: 'pull' });
    if (!m.ok) throw new Error('expected a record');
    expect(m.observations.find((o) => o.purpose === 'newsletter')).toMatchObject({ state: 'granted', strength: 'implicit' });
    expect(m.observations.find((o) => o.purpose === 'product_updates')).toMatchObject({ state: 'denied', strength: 'explicit' });
  });

  it('reads bounce flags as suppressions and rejects contacts without a valid email', () => {
    const m = mapContact(contact({ hs_email_hard_bounce_reason_enum: 'BAD_MAILBOX', hs_email_bad_address: 'true', hs_email_quarantined: 'true' }), { connectorId: 'hs', subscriptions: new Map(), statuses: undefined, how: 'pull' });
    if (!m.ok) throw new Error('expected a record');
    expect(m.observations.filter((o) => o.kind === 'suppression').map((o) => o.reason)).toEqual(['hard_bounce', 'invalid_address', 'blocked']);
    expect(m.record.suppressed).toEqual({ email: true });
    expect(mapContact({ id: '9', properties: { email: null } }, { connectorId: 'hs', subscriptions: subs, statuses: undefined, how: 'pull' })).toEqual({ ok: false, reject: { where: 'hubspot contact 9', reason: 'contact has no email' } });
    const bad = mapContact({ id: '10', properties: { email: 'not-an-email' } }, { connectorId: 'hs', subscriptions: subs, statuses: undefined, how: 'pull' });
    expect(bad.ok).toBe(false);
  });

  it('classifies HubSpot errors', () => {
    expect(classifyHubSpotError({ code: 429, body: { policyName: 'TEN_SECONDLY_ROLLING', message: 'limit' }, headers: { 'x-hubspot-ratelimit-remaining': '0', 'x-hubspot-ratelimit-interval-milliseconds': '10000' } })).toMatchObject({ retry: true, retryAfterMs: 1_000 });
    expect(classifyHubSpotError({ code: 429, body: { message: 'You have reached your secondly limit.' }, headers: {} })).toMatchObject({ retry: true, retryAfterMs: 1_000 });
    expect(classifyHubSpotError({ code: 429, body: {}, headers: { 'retry-after': '3' } })).toMatchObject({ retry: true, retryAfterMs: 3_000 });
    expect(classifyHubSpotError({ code: 502, body: { message: 'Bad Gateway' }, headers: {} })).toMatchObject({ retry: true });
    expect(classifyHubSpotError({ code: 400, body: { category: 'VALIDATION_ERROR', message: 'bad' }, headers: {} })).toMatchObject({ retry: false, category: 'VALIDATION_ERROR' });
    expect(classifyHubSpotError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toMatchObject({ retry: true });
  });
});

describe('hubspot protocol (nock)', () => {
  beforeAll(() => nock.disableNetConnect());
  afterEach(() => nock.cleanAll());
  afterAll(() => nock.enableNetConnect());

  it('full pull: one getPage and one v4 batch read per page; NOT_SPECIFIED is never granted', async () => {
    const scope = nock(BASE)
      .get('/crm/v3/objects/contacts')
      .query(true)
      .reply(200, { results: [{ id: '1', properties: { email: 'a@example.com', lastmodifieddate: '2025-01-01T00:00:00Z', hs_email_optout: 'false' } }, { id: '2', properties: { email: '', lastmodifieddate: '2025-01-01T00:00:00Z' } }] })
      .post('/communication-preferences/v4/statuses/batch/read', { inputs: ['a@example.com'] })
      .query({ channel: 'EMAIL' })
      .reply(200, { status: 'COMPLETE', results: [{ subscriberIdString: 'a@example.com', statuses: [status(1001, 'NOT_SPECIFIED', null), status(1002, 'SUBSCRIBED', 'LEGITIMATE_INTEREST_CLIENT')] }] });
    const pages = await pullAll(nockConnector(), null);
    expect(scope.isDone()).toBe(true);
    expect(pages).toHaveLength(1);
    const page = pages[0] as PullPage;
    expect(page.rejects).toEqual([{ where: 'hubspot contact 2', reason: 'contact has no email' }]);
    expect(page.cursor).not.toBeNull();
    expect(page.observations.filter((o) => o.state === 'granted').map((o) => [o.purpose, o.strength])).toEqual([['product_updates', 'implicit']]);
    expect(page.records[0]?.consent).toEqual({ 'email:*': 'unknown', 'email:newsletter': 'unknown', 'email:product_updates': 'granted' });
  });

  it('incremental pull restarts the search from the last contact before the 10,000 cap', async () => {
    const contacts = (from: number, n: number, ms: number): unknown[] => Array.from({ length: n }, (_, i) => ({ id: String(from + i), properties: { email: `c${from + i}@example.com`, lastmodifieddate: String(ms) } }));
    const bodies: unknown[] = [];
    const scope = nock(BASE);
    // 50 pages of 200 share one millisecond; then the restart continues after the last id seen.
    for (let p = 0; p < 50; p++) {
      scope
        .post('/crm/v3/objects/contacts/search', (b: Record<string, unknown>) => {
          bodies.push(b);
          return true;
        })
        .reply(200, { total: 10_100, results: contacts(1 + p * 200, 200, 5_000), paging: { next: { after: String((p + 1) * 200) } } });
    }
    scope.post('/crm/v3/objects/contacts/search', (b: Record<string, unknown>) => {
      bodies.push(b);
      return b['after'] === undefined;
    }).reply(200, { total: 100, results: contacts(10_001, 100, 5_000) });
    const c = nockConnector({ subscriptions: {}, limits: { searchPerSecond: 1_000, tenSecondly: 100_000 } });
    const pages = await pullAll(c, encodeCursor({ lastmodifieddate: 4_000, id: '0' }));
    expect(scope.isDone()).toBe(true);
    const ids = pages.flatMap((p) => p.records.map((r) => r.recordId));
    expect(ids).toHaveLength(10_100);
    expect(new Set(ids).size).toBe(10_100);
    const restart = bodies.at(-1) as { filterGroups: unknown; after?: string };
    expect(restart.after).toBeUndefined();
    expect(restart.filterGroups).toEqual([
      { filters: [{ propertyName: 'lastmodifieddate', operator: 'EQ', value: '5000' }, { propertyName: 'hs_object_id', operator: 'GT', value: '10000' }] },
      { filters: [{ propertyName: 'lastmodifieddate', operator: 'GT', value: '5000' }] },
    ]);
    expect(decodeCursor(pages.at(-1)?.cursor ?? '')).toEqual({ lastmodifieddate: 5_000, id: '10100' });
  });

  it('webhook: resolves objectIds with one batch read and the legal basis with one v4 read', async () => {
    const scope = nock(BASE)
      .post('/crm/v3/objects/contacts/batch/read', (b: { inputs: Array<{ id: string }> }) => b.inputs.map((i) => i.id).join(',') === '11,12')
      .query(true)
      .reply(200, { status: 'COMPLETE', results: [{ id: '11', properties: { email: 'X@example.com', lastmodifieddate: '2025-01-01T00:00:00Z' } }, { id: '12', properties: { email: 'y@example.com', lastmodifieddate: '2025-01-01T00:00:00Z' } }] })
      .post('/communication-preferences/v4/statuses/batch/read')
      .query({ channel: 'EMAIL' })
      .reply(200, { status: 'COMPLETE', results: [{ subscriberIdString: 'x@example.com', statuses: [status(1001, 'SUBSCRIBED', 'CONSENT_WITH_NOTICE')] }, { subscriberIdString: 'y@example.com', statuses: [] }] });
    const at = Date.parse('2025-05-05T05:05:05.000Z');
    const ev = (eventId: number, objectId: number, propertyName: string, propertyValue: string, type = 'contact.propertyChange'): WebhookEvent => ({ id: String(eventId), type, occurredAt: new Date(at).toISOString(), payload: { eventId, objectId, subscriptionType: type, propertyName, propertyValue, occurredAt: at, changeSource: 'FORM' } });
    const c = nockConnector();
    const t = await c.webhook?.toObservations([
      ev(1, 11, 'hs_email_optout_1001', 'false'),
      ev(2, 12, 'hs_email_optout', 'true'),
      ev(3, 12, 'hs_email_hard_bounce_reason_enum', 'BAD_MAILBOX'),
      ev(4, 12, 'firstname', 'Y'),
      ev(5, 12, 'hs_email_optout_9999', 'true'),
      ev(6, 12, 'x', 'y', 'contact.someNewThing'),
    ]);
    expect(scope.isDone()).toBe(true);
    expect(t?.observations.map((o) => [o.subject, o.purpose, o.state, o.strength, o.kind, o.reference, o.statedAt])).toEqual([
      ['x@example.com', 'newsletter', 'granted', 'explicit', 'consent', 'event:1', '2025-05-05T05:05:05.000Z'],
      ['y@example.com', '*', 'denied', 'explicit', 'consent', 'event:2', '2025-05-05T05:05:05.000Z'],
      ['y@example.com', '*', 'unknown', 'explicit', 'suppression', 'event:3', '2025-05-05T05:05:05.000Z'],
    ]);
    expect(t?.records?.map((r) => r.recordId).sort()).toEqual(['11', '12']);
  });

  it('push: v4 groups denials per API in one call each; NO_STATUS_CHANGE and partial errors map per key', async () => {
    const writes: unknown[] = [];
    const scope = nock(BASE)
      .post('/communication-preferences/v4/statuses/batch/write', (b: { inputs: unknown[] }) => {
        writes.push(...b.inputs);
        return true;
      })
      .reply(207, {
        status: 'COMPLETE',
        results: [{ subscriberIdString: 'a@example.com', subscriptionId: 1001, status: 'UNSUBSCRIBED', setStatusSuccessReason: 'NO_STATUS_CHANGE' }, { subscriberIdString: 'c@example.com', subscriptionId: 1002, status: 'SUBSCRIBED' }],
        numErrors: 1,
        errors: [{ status: 'error', category: 'VALIDATION_ERROR', message: 'Invalid subscriber', context: { ids: ['b@example.com'] } }],
      })
      .post('/communication-preferences/v4/statuses/batch/unsubscribe-all', { inputs: ['a@example.com', 'd@example.com'] })
      .query({ channel: 'EMAIL' })
      .reply(207, { status: 'COMPLETE', results: [{ subscriberIdString: 'a@example.com', statuses: [] }], numErrors: 1, errors: [{ category: 'INTERNAL_ERROR', message: 'retry', context: { ids: ['d@example.com'] } }] })
      .post('/crm/v3/objects/contacts/gdpr-delete', { objectId: '77' })
      .reply(404, { status: 'error', category: 'OBJECT_NOT_FOUND', message: 'not found' });
    const rec = (id: string, email: string): Parameters<typeof kitChange>[0] => ({ connectorId: 'hubspot', recordId: id, subject: email, consent: {}, suppressed: {}, meta: {} });
    const changes = [
      kitChange(rec('1', 'a@example.com'), { op: 'set_consent', channel: 'email', purpose: 'newsletter', target: 'denied' }),
      kitChange(rec('2', 'b@example.com'), { op: 'set_consent', channel: 'email', purpose: 'newsletter', target: 'denied' }),
      kitChange(rec('3', 'c@example.com'), { op: 'set_consent', channel: 'email', purpose: 'product_updates', target: 'granted', rule: 'R1-later-explicit-grant', decidedBy: 'obs-1' }),
      kitChange(rec('1', 'a@example.com'), { op: 'set_consent', channel: 'email', purpose: '*', target: 'denied' }),
      kitChange(rec('4', 'd@example.com'), { op: 'set_consent', channel: 'email', purpose: '*', target: 'denied' }),
      kitChange(rec('77', 'e@example.com'), { op: 'erase', channel: 'email', purpose: '*', target: null }),
      kitChange(rec('5', 'f@example.com'), { op: 'set_consent', channel: 'email', purpose: 'events', target: 'denied' }),
    ];
    const results = await nockConnector().push(changes);
    expect(scope.isDone()).toBe(true);
    expect(results.map((r) => [r.key, r.status])).toEqual(changes.map((c, i) => [c.key, ['ok', 'failed', 'ok', 'ok', 'retry', 'ok', 'failed'][i]]));
    expect(results[1]).toMatchObject({ reason: expect.stringContaining('Invalid subscriber') as unknown, code: 'VALIDATION_ERROR' });
    // a@example.com's newsletter denial rides on its unsubscribe-all (which sets every type
    // UNSUBSCRIBED): it is not written on its own, and takes that call's outcome.
    expect(writes).not.toContainEqual(expect.objectContaining({ subscriberIdString: 'a@example.com' }));
    expect(writes).toHaveLength(2); // b@ and c@ (f@'s purpose is not mapped)
    expect(writes).toContainEqual({ subscriberIdString: 'c@example.com', subscriptionId: 1002, statusState: 'SUBSCRIBED', channel: 'EMAIL', legalBasis: 'CONSENT_WITH_NOTICE', legalBasisExplanation: 'consentd: R1-later-explicit-grant (decided by observation obs-1)' });
  });

  it('push: a 429 answers retry with the wait HubSpot asked for', async () => {
    const scope = nock(BASE)
      .post('/communication-preferences/v4/statuses/batch/unsubscribe-all')
      .query(true)
      .reply(429, { status: 'error', message: 'You have reached your ten_secondly_rolling limit.', errorType: 'RATE_LIMIT', policyName: 'TEN_SECONDLY_ROLLING' }, { 'X-HubSpot-RateLimit-Remaining': '0', 'X-HubSpot-RateLimit-Interval-Milliseconds': '10000' });
    const c = kitChange({ connectorId: 'hubspot', recordId: '1', subject: 'a@example.com', consent: {}, suppressed: {}, meta: {} }, { op: 'set_consent', channel: 'email', purpose: '*', target: 'denied' });
    const [r] = await nockConnector().push([c]);
    expect(scope.isDone()).toBe(true);
    expect(r).toMatchObject({ key: c.key, status: 'retry', retryAfterMs: 1_000 });
  });

  it('auto falls back to v3 on a v4 404: "already unsubscribed" is ok, grants are not pushable', async () => {
    const scope = nock(BASE)
      .post('/communication-preferences/v4/statuses/batch/read')
      .query(true)
      .reply(404, { status: 'error', category: 'OBJECT_NOT_FOUND', message: 'not found' })
      .post('/communication-preferences/v3/unsubscribe', { emailAddress: 'a@example.com', subscriptionId: '1001' })
      .reply(400, { status: 'error', category: 'VALIDATION_ERROR', message: 'a@example.com is already unsubscribed from subscription 1001' })
      .get('/communication-preferences/v3/definitions')
      .reply(200, { subscriptionDefinitions: [{ id: '1001', name: 'Newsletter', description: '', purpose: '', communicationMethod: 'Email', isActive: true, isDefault: true, isInternal: false, createdAt: '2020-01-01T00:00:00Z', updatedAt: '2020-01-01T00:00:00Z' }] })
      .post('/communication-preferences/v3/unsubscribe', { emailAddress: 'b@example.com', subscriptionId: '1001' })
      .reply(200, { id: '1001', name: 'Newsletter', description: '', status: 'NOT_SUBSCRIBED', sourceOfStatus: 'SUBSCRIPTION_STATUS' });
    const c = nockConnector({ commPrefs: 'auto' });
    expect(c.capabilities.pushGrants).toBe(false);
    const rec = (id: string, email: string): Parameters<typeof kitChange>[0] => ({ connectorId: 'hubspot', recordId: id, subject: email, consent: {}, suppressed: {}, meta: {} });
    const changes = [kitChange(rec('1', 'a@example.com'), { op: 'set_consent', channel: 'email', purpose: 'newsletter', target: 'denied' }), kitChange(rec('2', 'b@example.com'), { op: 'set_consent', channel: 'email', purpose: '*', target: 'denied' })];
    const results = await c.push(changes);
    expect(scope.isDone()).toBe(true);
    expect(results.map((r) => r.status)).toEqual(['ok', 'ok']);
    expect(c.capabilities.pushGrants).toBe(false);
  });

  it('check reports scopes and the comm prefs version; a bad token is not ok', async () => {
    const scope = nock(BASE)
      .get('/crm/v3/objects/contacts')
      .query(true)
      .reply(200, { results: [] })
      .post('/communication-preferences/v4/statuses/batch/read')
      .query(true)
      .reply(404, { message: 'not found', category: 'OBJECT_NOT_FOUND' })
      .get('/communication-preferences/v3/definitions')
      .reply(200, { subscriptionDefinitions: [{ id: '1001', name: 'Newsletter', description: '', purpose: '', communicationMethod: 'Email', isActive: true, isDefault: true, isInternal: false, createdAt: '2020-01-01T00:00:00Z', updatedAt: '2020-01-01T00:00:00Z' }] });
    const r = await nockConnector({ commPrefs: 'auto' }).check();
    expect(scope.isDone()).toBe(true);
    expect(r.details).toContain('crm.objects.contacts.read: ok');
    expect(r.details).toContain('communication_preferences: v4 not available, using v3 (cannot resubscribe)');
    expect(r.details).toContain('subscription 1002 -> product_updates: no such subscription type in this account');
    expect(r.ok).toBe(false);
    const bad = nock(BASE).get('/crm/v3/objects/contacts').query(true).reply(401, { status: 'error', message: 'Authentication credentials not found', category: 'INVALID_AUTHENTICATION' });
    const r2 = await nockConnector().check();
    expect(bad.isDone()).toBe(true);
    expect(r2.ok).toBe(false);
    expect(r2.details[0]).toMatch(/access token rejected/);
  });
});
