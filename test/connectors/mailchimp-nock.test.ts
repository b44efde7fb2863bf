import nock from 'nock';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Connector, PullPage } from '../../src/connectors/contract.js';
import { changeKey, type Change } from '../../src/model/types.js';
import { createMailchimpConnector, mailchimpSettings } from '../../connectors/mailchimp/index.js';

const BASE = 'https://us14.api.mailchimp.com';
const LIST = 'l1';

function connector(extra: Record<string, unknown> = {}): Connector {
  const settings = mailchimpSettings.parse({
    apiKey: '0123456789abcdef0123456789abcdef-us14',
    lists: [{ id: LIST, purposes: { mp1: 'newsletter', int1: 'events' } }],
    pageSize: 2,
    ...extra,
  });
  return createMailchimpConnector(settings, { id: 'mc', purposes: ['newsletter', 'events'], logger: pino({ level: 'silent' }), baseDir: '.' }, { http: { getAttempts: 1 } });
}

async function pullAll(c: Connector, cursor: string | null): Promise<PullPage[]> {
  const out: PullPage[] = [];
  for await (const p of c.pull(cursor)) out.push(p);
  return out;
}

const member = (id: string, email: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  id,
  email_address: email,
  status: 'subscribed',
  timestamp_opt: '',
  ip_opt: '',
  last_changed: '2025-02-01T10:00:00+00:00',
  marketing_permissions: [{ marketing_permission_id: 'mp1', text: 'Newsletter', enabled: false }],
  interests: { int1: false },
  ...extra,
});

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());
afterAll(() => nock.enableNetConnect());

describe('mailchimp connector (nock): mapping edge cases', () => {
  it('derives the base URL from the key, authenticates with Basic, pages to total_items and maps edge members', async () => {
    const scope = nock(BASE)
      .get('/3.0/lists/l1/members')
      .basicAuth({ user: 'consentd', pass: '0123456789abcdef0123456789abcdef-us14' })
      .query((q) => q['offset'] === '0' && q['count'] === '2' && q['since_last_changed'] === undefined)
      .reply(200, {
        total_items: 3,
        members: [
          // Subscribed without opt-in time but with the GDPR box on: both implicit.
          member('h1', 'NoOptIn@Example.com', { marketing_permissions: [{ marketing_permission_id: 'mp1', enabled: true }] }),
          // Unsubscribed for abuse: a complaint, not a plain denial; interest on stays implicit.
          member('h2', 'abuse@example.com', { status: 'unsubscribed', unsubscribe_reason: 'Abuse (spam complaint)', interests: { int1: true } }),
        ],
      })
      .get('/3.0/lists/l1/members')
      .query((q) => q['offset'] === '2')
      .reply(200, { total_items: 3, members: [member('h3', 'tx@example.com', { status: 'transactional', marketing_permissions: [{ marketing_permission_id: 'mp1', enabled: true }] })] });
    const pages = await pullAll(connector(), null);
    expect(scope.isDone()).toBe(true);
    expect(pages).toHaveLength(2);
    const recs = pages.flatMap((p) => p.records);
    const obs = pages.flatMap((p) => p.observations);
    expect(recs.map((r) => r.recordId)).toEqual(['l1:h1', 'l1:h2', 'l1:h3']);
    expect(recs[0]).toMatchObject({ subject: 'nooptin@example.com', consent: { 'email:*': 'granted', 'email:newsletter': 'granted', 'email:events': 'denied' } });
    expect(obs.filter((o) => o.subject === 'nooptin@example.com').map((o) => [o.purpose, o.state, o.strength, o.statedAt])).toEqual([
      ['*', 'granted', 'implicit', '2025-02-01T10:00:00.000Z'],
      ['newsletter', 'granted', 'implicit', '2025-02-01T10:00:00.000Z'],
    ]);
    expect(obs.filter((o) => o.subject === 'abuse@example.com').map((o) => [o.kind, o.purpose, o.state, o.reason, o.strength])).toEqual([
      ['suppression', '*', 'denied', 'complaint', 'explicit'],
      ['consent', 'events', 'granted', null, 'implicit'],
    ]);
    expect(recs[2]).toMatchObject({ consent: { 'email:*': 'unknown', 'email:newsletter': 'granted' }, suppressed: { email: false } });
    expect(obs.filter((o) => o.subject === 'tx@example.com').map((o) => [o.purpose, o.strength])).toEqual([['newsletter', 'implicit']]);
    // No Date header from nock: the cursor falls back to our clock.
    expect(JSON.parse(pages[1]?.cursor ?? 'null')).toMatchObject({ v: 1, lists: { l1: expect.any(String) } });
  });

  it('incremental: asks since_last_changed from the cursor; an empty answer still advances', async () => {
    const since = '2025-03-01T00:00:00.000Z';
    const scope = nock(BASE)
      .get('/3.0/lists/l1/members')
      .query((q) => q['since_last_changed'] === since && q['offset'] === '0')
      .reply(200, { total_items: 0, members: [] }, { Date: 'Sat, 01 Mar 2025 01:00:00 GMT' });
    const pages = await pullAll(connector(), JSON.stringify({ v: 1, lists: { l1: since } }));
    expect(scope.isDone()).toBe(true);
    expect(pages).toHaveLength(1);
    const next = JSON.parse(pages[0]?.cursor ?? 'null') as { lists: Record<string, string> };
    expect(Date.parse(next.lists['l1'] ?? '')).toBeGreaterThan(Date.parse(since));
    // Bounded by the server's clock (Date header + 1 s) minus the slack.
    expect(Date.parse(next.lists['l1'] ?? '')).toBeLessThanOrEqual(Date.parse('2025-03-01T01:00:00Z') + 999 - 5_000);
  });
});

describe('mailchimp connector (nock): push answers', () => {
  const chg = (hash: string, subject: string, body: Pick<Change, 'op' | 'purpose' | 'target'>): Change => {
    const c: Omit<Change, 'key'> = { connectorId: 'mc', recordId: `${LIST}:${hash}`, subject, channel: 'email', rule: null, decidedBy: 'x', meta: {}, ...body };
    return { key: changeKey(c), ...c };
  };

  it('matches bulk errors by address whatever its case; interests and permissions go where they belong', async () => {
    let sent: unknown;
    const scope = nock(BASE)
      .get('/3.0/lists/l1/members')
      .query((q) => q['count'] === '1')
      .reply(200, { members: [member('h0', 'x@example.com')] })
      .post('/3.0/lists/l1', (b: unknown) => {
        sent = b;
        return true;
      })
      .reply(200, { new_members: [], updated_members: [], errors: [{ email_address: 'B@Example.com', error: 'Something odd', error_code: 'ERROR_GENERIC' }], error_count: 1 });
    const a = chg('ha', 'a@example.com', { op: 'set_consent', purpose: 'newsletter', target: 'denied' });
    const a2 = chg('ha', 'a@example.com', { op: 'set_consent', purpose: 'events', target: 'granted' });
    const b = chg('hb', 'b@example.com', { op: 'suppress', purpose: '*', target: null });
    const results = await connector().push([a, a2, b]);
    expect(scope.isDone()).toBe(true);
    expect(sent).toEqual({
      update_existing: true,
      members: [
        { email_address: 'a@example.com', marketing_permissions: [{ marketing_permission_id: 'mp1', enabled: false }], interests: { int1: true } },
        { email_address: 'b@example.com', status: 'unsubscribed' },
      ],
    });
    expect(results).toEqual([
      { key: a.key, status: 'ok' },
      { key: a2.key, status: 'ok' },
      { key: b.key, status: 'failed', reason: expect.stringContaining('Something odd'), code: 'ERROR_GENERIC' },
    ]);
  });

  it('a whole-call 503 with Retry-After is a retry for every change of the call; a 400 is failed', async () => {
    const scope = nock(BASE)
      .post('/3.0/lists/l1')
      .reply(503, { type: 't', title: 'Service Unavailable', status: 503, detail: 'later', instance: 'i' }, { 'Retry-After': '7', 'content-type': 'application/problem+json' })
      .post('/3.0/lists/l1')
      .reply(400, { type: 't', title: 'Invalid Resource', status: 400, detail: 'nope', instance: 'i' });
    const c = connector();
    const d = chg('ha', 'a@example.com', { op: 'set_consent', purpose: '*', target: 'denied' });
    expect(await c.push([d])).toEqual([{ key: d.key, status: 'retry', reason: expect.stringContaining('503'), retryAfterMs: 7000 }]);
    expect(await c.push([d])).toEqual([{ key: d.key, status: 'failed', reason: expect.stringContaining('Invalid Resource: nope'), code: 'HTTP_400' }]);
    expect(scope.isDone()).toBe(true);
  });

  it('upemail to an address Mailchimp no longer has states nothing', async () => {
    const scope = nock(BASE).get(/\/3\.0\/lists\/l1\/members\/[0-9a-f]{32}/).reply(404, { title: 'Resource Not Found', status: 404 });
    const c = connector({ webhookToken: 'tok-0123456789abcdef' });
    const body = 'type=upemail&fired_at=2025-06-01+10%3A00%3A00&data[list_id]=l1&data[new_id]=x&data[new_email]=new%40example.com&data[old_email]=old%40example.com';
    const events = (await c.webhook?.verify({ method: 'POST', url: '/webhooks/mc?token=tok-0123456789abcdef', headers: {}, rawBody: Buffer.from(body), receivedAt: new Date() })) ?? [];
    expect(events[0]?.payload).toMatchObject({ type: 'upemail', email: 'new@example.com', oldEmail: 'old@example.com' });
    // Nothing is stated at the new address; the old address's denials follow it in the engine.
    expect(await c.webhook?.toObservations(events)).toEqual({ observations: [], addressChanges: [{ from: 'old@example.com', to: 'new@example.com', reference: events[0]?.id }] });
    expect(scope.isDone()).toBe(true);
  });
});
