import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import axios, { type AxiosInstance } from 'axios';
import { afterEach, describe, expect, it } from 'vitest';
import { createMailchimpSandbox, type MailchimpSandbox, type MailchimpSandboxOptions } from '../../connectors/mailchimp/sandbox/index.js';
import { readBody, startHttpServer, type RunningServer } from '../../src/sandbox/http.js';
import { generatePeople } from '../../src/sandbox/seed.js';

const NOW = '2025-06-01T00:00:00.000Z';
const LIST = 'a1b2c3d4e5';
const md5 = (s: string): string => createHash('md5').update(s.toLowerCase()).digest('hex');

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.();
});

async function sandbox(opts: MailchimpSandboxOptions = {}): Promise<{ sb: MailchimpSandbox; api: AxiosInstance; control: AxiosInstance }> {
  const sb = createMailchimpSandbox(opts);
  await sb.start();
  cleanup.push(() => sb.stop());
  const api = axios.create({ baseURL: sb.url, auth: { username: 'anystring', password: sb.credentials.apiKey }, validateStatus: () => true });
  const control = axios.create({ baseURL: `${sb.rootUrl}/__sandbox`, validateStatus: () => true });
  return { sb, api, control };
}

interface Received {
  method: string;
  url: string;
  body: string;
  headers: IncomingMessage['headers'];
}

async function listener(answer: (n: number) => number = () => 200): Promise<{ server: RunningServer; received: Received[]; waitFor(n: number): Promise<void> }> {
  const received: Received[] = [];
  let n = 0;
  const server = await startHttpServer(async (req, res) => {
    const body = (await readBody(req)).toString('utf8');
    received.push({ method: req.method ?? '', url: req.url ?? '', body, headers: req.headers });
    res.writeHead(answer(n++));
    res.end('ok');
  });
  cleanup.push(() => server.close());
  return {
    server,
    received,
    async waitFor(count) {
      const until = Date.now() + 5000;
      while (received.length < count && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    },
  };
}

const onlyMailchimp = { rates: { presence: { salesforce: 0, hubspot: 0, mailchimp: 1, sendgrid: 0 } }, now: NOW } as const;

describe('Mailchimp sandbox: auth', () => {
  it('accepts Basic (any user) and Bearer; refuses a wrong key with problem+json', async () => {
    const { sb, api } = await sandbox();
    expect(sb.credentials.dc).toBe('us14');
    expect((await api.get('/lists')).status).toBe(200);
    const bearer = await axios.get(`${sb.url}/lists`, { headers: { Authorization: `Bearer ${sb.credentials.apiKey}` } });
    expect(bearer.data.lists[0].id).toBe(LIST);
    const bad = await axios.get(`${sb.url}/lists`, { auth: { username: 'x', password: 'nope-us14' }, validateStatus: () => true });
    expect(bad.status).toBe(401);
    expect(bad.headers['content-type']).toContain('application/problem+json');
    expect(bad.data).toMatchObject({ title: 'API Key Invalid', status: 401 });
    expect(typeof bad.data.type).toBe('string');
    expect(typeof bad.data.detail).toBe('string');
    expect(typeof bad.data.instance).toBe('string');
    const none = await axios.get(`${sb.url}/lists`, { validateStatus: () => true });
    expect(none.status).toBe(401);
  });
});

describe('Mailchimp sandbox: members', () => {
  it('pages with count<=1000 and returns every member exactly once; 1001 is rejected', async () => {
    const { sb, api } = await sandbox();
    const created = sb.seed(generatePeople(2500, 11, onlyMailchimp));
    expect(created).toBe(2500); // case variants and duplicates collapse to one member per person
    const ids = new Set<string>();
    let total = -1;
    for (let offset = 0; ; offset += 1000) {
      const r = await api.get(`/lists/${LIST}/members`, { params: { count: 1000, offset } });
      expect(r.status).toBe(200);
      total = r.data.total_items;
      for (const m of r.data.members) {
        expect(m.id).toBe(md5(m.email_address));
        expect(m.marketing_permissions).toHaveLength(3);
        ids.add(m.id);
      }
      if (r.data.members.length < 1000) break;
    }
    const archivedOrNot = sb.state.lists.get(LIST)?.order.length;
    expect(total).toBe(archivedOrNot);
    expect(ids.size).toBe(total);
    const tooMany = await api.get(`/lists/${LIST}/members`, { params: { count: 1001 } });
    expect(tooMany.status).toBe(400);
    expect(tooMany.headers['content-type']).toContain('application/problem+json');
    // fields are honoured
    const slim = await api.get(`/lists/${LIST}/members`, { params: { count: 2, fields: 'members.email_address,total_items' } });
    expect(Object.keys(slim.data).sort()).toEqual(['members', 'total_items']);
    expect(Object.keys(slim.data.members[0])).toEqual(['email_address']);
    // status filter
    const unsub = await api.get(`/lists/${LIST}/members`, { params: { count: 1000, status: 'unsubscribed' } });
    expect(unsub.data.members.every((m: { status: string }) => m.status === 'unsubscribed')).toBe(true);
    expect(unsub.data.total_items).toBeGreaterThan(0);
  });

  it('filters by since_last_changed', async () => {
    const { sb, api } = await sandbox();
    sb.seed(generatePeople(500, 3, onlyMailchimp));
    const all = (await api.get(`/lists/${LIST}/members`, { params: { count: 1000 } })).data.members as { last_changed: string }[];
    const cut = '2025-01-01T00:00:00+00:00';
    const expected = all.filter((m) => Date.parse(m.last_changed) >= Date.parse(cut)).length;
    const since = await api.get(`/lists/${LIST}/members`, { params: { count: 1000, since_last_changed: cut } });
    expect(since.data.total_items).toBe(expected);
    expect(expected).toBeGreaterThan(0);
    expect(expected).toBeLessThan(all.length);
    const before = new Date(Date.now() - 1000).toISOString();
    const put = await api.put(`/lists/${LIST}/members/${md5('new.person@example.com')}`, { email_address: 'new.person@example.com', status_if_new: 'subscribed' });
    expect(put.status).toBe(200);
    const recent = await api.get(`/lists/${LIST}/members`, { params: { since_last_changed: before } });
    expect(recent.data.members.map((m: { email_address: string }) => m.email_address)).toEqual(['new.person@example.com']);
    expect((await api.get(`/lists/${LIST}/members`, { params: { since_last_changed: 'garbage' } })).status).toBe(400);
  });

  it('upserts with PUT and updates with PATCH', async () => {
    const { api } = await sandbox();
    const email = 'Jane.Doe@Example.com';
    const hash = md5(email);
    const created = await api.put(`/lists/${LIST}/members/${hash}`, {
      email_address: email,
      status_if_new: 'subscribed',
      marketing_permissions: [{ marketing_permission_id: '7f3c9b2a1d', enabled: true }],
    });
    expect(created.status).toBe(200);
    expect(created.data).toMatchObject({ id: hash, email_address: email, status: 'subscribed', list_id: LIST });
    expect(created.data.timestamp_opt).not.toBe('');
    expect(created.data.marketing_permissions).toContainEqual({ marketing_permission_id: '7f3c9b2a1d', text: 'Newsletter', enabled: true });
    // PUT again with status_if_new does not change an existing member's status
    const again = await api.put(`/lists/${LIST}/members/${hash}`, { email_address: email, status_if_new: 'pending' });
    expect(again.data.status).toBe('subscribed');
    const patched = await api.patch(`/lists/${LIST}/members/${hash}`, { marketing_permissions: [{ marketing_permission_id: '4e8d2c6b0a', enabled: true }], status: 'unsubscribed' });
    expect(patched.status).toBe(200);
    expect(patched.data.status).toBe('unsubscribed');
    expect(patched.data.marketing_permissions.filter((p: { enabled: boolean }) => p.enabled)).toHaveLength(2);
    const got = await api.get(`/lists/${LIST}/members/${encodeURIComponent(email)}`);
    expect(got.data.id).toBe(hash);
    expect((await api.patch(`/lists/${LIST}/members/${md5('nobody@example.com')}`, { status: 'subscribed' })).status).toBe(404);
    const badPerm = await api.patch(`/lists/${LIST}/members/${hash}`, { marketing_permissions: [{ marketing_permission_id: 'nope', enabled: true }] });
    expect(badPerm.status).toBe(400);
    expect((await api.put(`/lists/${LIST}/members/${md5('x@example.com')}`, { email_address: 'x@example.com' })).status).toBe(400);
    expect((await api.get(`/lists/nolist/members`)).status).toBe(404);
  });

  it('refuses to resubscribe a member in compliance state; pending is allowed until confirmed', async () => {
    const { api, control } = await sandbox();
    const email = 'opted.out@example.com';
    const hash = md5(email);
    await api.put(`/lists/${LIST}/members/${hash}`, { email_address: email, status_if_new: 'unsubscribed' });
    const refused = await api.patch(`/lists/${LIST}/members/${hash}`, { status: 'subscribed' });
    expect(refused.status).toBe(400);
    expect(refused.headers['content-type']).toContain('application/problem+json');
    expect(refused.data.title).toBe('Member In Compliance State');
    expect(refused.data.detail).toBe(
      `${email} is already a list member in compliance state due to unsubscribe, bounce, or compliance review. Please try again with a status of pending.`,
    );
    const pending = await api.put(`/lists/${LIST}/members/${hash}`, { email_address: email, status: 'pending' });
    expect(pending.status).toBe(200);
    expect(pending.data.status).toBe('pending');
    expect((await api.get(`/lists/${LIST}/members/${hash}`)).data.status).toBe('pending');
    const confirmed = await control.post('/actions/confirm', { email });
    expect(confirmed.data.status).toBe('subscribed');
    expect(confirmed.data.timestamp_opt).not.toBe('');
    expect(confirmed.data.ip_opt).not.toBe('');
    // cleaned members are in compliance state too
    await control.post('/actions/bounce', { email });
    expect((await api.put(`/lists/${LIST}/members/${hash}`, { email_address: email, status: 'subscribed' })).data.title).toBe('Member In Compliance State');
  });

  it('archives with DELETE; delete-permanent forgets and a later re-add is refused', async () => {
    const { api, control } = await sandbox();
    const email = 'forget.me@example.com';
    const hash = md5(email);
    await api.put(`/lists/${LIST}/members/${hash}`, { email_address: email, status_if_new: 'subscribed' });
    expect((await api.delete(`/lists/${LIST}/members/${hash}`)).status).toBe(204);
    expect((await api.get(`/lists/${LIST}/members/${hash}`)).data.status).toBe('archived');
    expect((await api.get(`/lists/${LIST}/members`)).data.total_items).toBe(0);
    expect((await api.get(`/lists/${LIST}/members`, { params: { status: 'archived' } })).data.total_items).toBe(1);
    const del = await api.post(`/lists/${LIST}/members/${hash}/actions/delete-permanent`);
    expect(del.status).toBe(204);
    expect((await api.get(`/lists/${LIST}/members/${hash}`)).status).toBe(404);
    const readd = await api.put(`/lists/${LIST}/members/${hash}`, { email_address: email, status_if_new: 'subscribed' });
    expect(readd.status).toBe(400);
    expect(readd.data.title).toBe('Forgotten Email Not Subscribed');
    expect((await api.post(`/lists/${LIST}/members`, { email_address: email, status: 'pending' })).data.title).toBe('Forgotten Email Not Subscribed');
    expect((await control.get('/state/members', { params: { email } })).data).toEqual({ members: [], forgottenIn: [LIST] });
  });
});

describe('Mailchimp sandbox: bulk and batches', () => {
  it('bulk-upserts 500, rejects 501, reports per-member errors', async () => {
    const { api, control } = await sandbox();
    const members = Array.from({ length: 500 }, (_, i) => ({ email_address: `bulk.${i}@example.com`, status: 'subscribed' }));
    const ok = await api.post(`/lists/${LIST}`, { members, update_existing: false });
    expect(ok.status).toBe(200);
    expect(ok.data).toMatchObject({ total_created: 500, total_updated: 0, error_count: 0 });
    expect(ok.data.new_members).toHaveLength(500);
    const tooMany = await api.post(`/lists/${LIST}`, { members: [...members, { email_address: 'one.more@example.com', status: 'subscribed' }] });
    expect(tooMany.status).toBe(400);
    expect(tooMany.headers['content-type']).toContain('application/problem+json');

    await control.post('/actions/unsubscribe', { email: 'bulk.1@example.com' });
    const mixed = await api.post(`/lists/${LIST}`, {
      members: [
        { email_address: 'bulk.0@example.com', status: 'subscribed', marketing_permissions: [{ marketing_permission_id: '1a5f7e3c9b', enabled: true }] },
        { email_address: 'bulk.1@example.com', status: 'subscribed' },
        { email_address: 'not-an-email', status: 'subscribed' },
        { email_address: 'fresh@example.com', status: 'subscribed' },
      ],
      update_existing: true,
    });
    expect(mixed.status).toBe(200);
    expect(mixed.data.total_created).toBe(1);
    expect(mixed.data.total_updated).toBe(1);
    expect(mixed.data.error_count).toBe(2);
    expect(mixed.data.errors[0]).toMatchObject({ email_address: 'bulk.1@example.com', error_code: 'ERROR_GENERIC' });
    expect(mixed.data.errors[0].error).toContain('compliance state');
    const noUpdate = await api.post(`/lists/${LIST}`, { members: [{ email_address: 'bulk.2@example.com', status: 'unsubscribed' }], update_existing: false });
    expect(noUpdate.data.errors[0].error_code).toBe('ERROR_CONTACT_EXISTS');
  });

  it('runs /batches asynchronously and serves the results', async () => {
    const { api } = await sandbox();
    const operations = [
      { method: 'PUT', path: `/lists/${LIST}/members/${md5('a@example.com')}`, body: JSON.stringify({ email_address: 'a@example.com', status_if_new: 'subscribed' }), operation_id: 'op-a' },
      { method: 'PATCH', path: `/lists/${LIST}/members/${md5('a@example.com')}`, body: JSON.stringify({ status: 'unsubscribed' }), operation_id: 'op-b' },
      { method: 'PATCH', path: `/lists/${LIST}/members/${md5('a@example.com')}`, body: JSON.stringify({ status: 'subscribed' }), operation_id: 'op-c' },
      { method: 'GET', path: `/lists/${LIST}/members/${md5('ghost@example.com')}`, operation_id: 'op-d' },
    ];
    const submitted = await api.post('/batches', { operations });
    expect(submitted.status).toBe(200);
    expect(submitted.data).toMatchObject({ status: 'pending', total_operations: 4 });
    let batch = submitted.data;
    for (let i = 0; i < 100 && batch.status !== 'finished'; i++) {
      await new Promise((r) => setTimeout(r, 10));
      batch = (await api.get(`/batches/${submitted.data.id}`)).data;
    }
    expect(batch).toMatchObject({ status: 'finished', finished_operations: 4, errored_operations: 2 });
    const results = await axios.get(batch.response_body_url);
    const byOp = Object.fromEntries((results.data as { operation_id: string; status_code: number; response: string }[]).map((r) => [r.operation_id, r]));
    expect(byOp['op-a']?.status_code).toBe(200);
    expect(JSON.parse(byOp['op-b']?.response ?? '{}').status).toBe('unsubscribed');
    expect(byOp['op-c']?.status_code).toBe(400);
    expect(JSON.parse(byOp['op-c']?.response ?? '{}').title).toBe('Member In Compliance State');
    expect(byOp['op-d']?.status_code).toBe(404);
  });
});

describe('Mailchimp sandbox: limits and faults', () => {
  it('answers 429 to the 11th simultaneous request', async () => {
    const { sb, api } = await sandbox();
    sb.faults.set({ latencyMs: 300 });
    const answers = await Promise.all(Array.from({ length: 11 }, () => api.get('/lists')));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    const limited = answers.find((a) => a.status === 429);
    expect(limited?.data).toMatchObject({ title: 'Too Many Requests', detail: 'You have exceeded the limit of 10 simultaneous connections.' });
    expect(limited?.headers['x-ratelimit-limit']).toBeUndefined();
    // and once they are done, requests go through again
    expect((await api.get('/lists')).status).toBe(200);
    expect(sb.calls.snapshot()['GET /3.0/lists 429']).toBe(1);
  });

  it('injects errors as problem+json', async () => {
    const { sb, api } = await sandbox();
    sb.faults.set({ errorRate: 1 });
    const r = await api.get('/lists');
    expect([500, 503]).toContain(r.status);
    expect(r.headers['content-type']).toContain('application/problem+json');
    sb.faults.set({ errorRate: 0, rateLimitRate: 1 });
    expect((await api.get('/lists')).status).toBe(429);
  });
});

describe('Mailchimp sandbox: webhooks', () => {
  it('posts form-encoded events for API changes and control actions', async () => {
    const hook = await listener();
    const { api, control, sb } = await sandbox({ webhookUrl: `${hook.server.url}/hooks/mailchimp?token=s3cret` });
    const email = 'hooked@example.com';
    await api.put(`/lists/${LIST}/members/${md5(email)}`, { email_address: email, status_if_new: 'subscribed', merge_fields: { FNAME: 'Hook' } });
    await control.post('/actions/unsubscribe', { email, reason: 'abuse' });
    await hook.waitFor(2);
    await sb.webhooks.idle();
    expect(hook.received).toHaveLength(2);
    const [sub, unsub] = hook.received.map((r) => ({ ...r, form: new URLSearchParams(r.body) }));
    expect(sub?.url).toBe('/hooks/mailchimp?token=s3cret');
    expect(sub?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(sub?.form.get('type')).toBe('subscribe');
    expect(sub?.form.get('fired_at')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(sub?.body).toContain('fired_at=');
    expect(sub?.body).toContain('data%5Bemail%5D=hooked%40example.com');
    expect(sub?.form.get('data[list_id]')).toBe(LIST);
    expect(sub?.form.get('data[merges][FNAME]')).toBe('Hook');
    expect(unsub?.form.get('type')).toBe('unsubscribe');
    expect(unsub?.form.get('data[reason]')).toBe('abuse');
    expect(unsub?.form.get('data[action]')).toBe('unsub');
    expect(unsub?.form.get('data[email]')).toBe(email);
    expect(unsub?.form.get('data[merges][EMAIL]')).toBe(email);

    await control.post('/actions/change-email', { old: email, new: 'moved@example.com' });
    await control.post('/actions/bounce', { email: 'moved@example.com' });
    await hook.waitFor(4);
    const types = hook.received.map((r) => new URLSearchParams(r.body).get('type'));
    expect(types).toContain('upemail');
    expect(types).toContain('cleaned');
    const up = hook.received.map((r) => new URLSearchParams(r.body)).find((f) => f.get('type') === 'upemail');
    expect(up?.get('data[old_email]')).toBe(email);
    expect(up?.get('data[new_email]')).toBe('moved@example.com');
    const cleaned = hook.received.map((r) => new URLSearchParams(r.body)).find((f) => f.get('type') === 'cleaned');
    expect(cleaned?.get('data[reason]')).toBe('hard');
  });

  it('leaves API changes out when the webhook sources omit api', async () => {
    const hook = await listener();
    const { api, control, sb } = await sandbox({ webhookUrl: hook.server.url, webhookSources: ['user', 'admin'] });
    const email = 'quiet@example.com';
    await api.put(`/lists/${LIST}/members/${md5(email)}`, { email_address: email, status_if_new: 'subscribed' });
    await api.patch(`/lists/${LIST}/members/${md5(email)}`, { status: 'unsubscribed' });
    await control.post('/actions/resubscribe', { email });
    await hook.waitFor(1);
    await sb.webhooks.idle();
    expect(hook.received.map((r) => new URLSearchParams(r.body).get('type'))).toEqual(['subscribe']);
  });

  it('validates a new webhook with a GET and retries deliveries that fail', async () => {
    const hook = await listener((n) => (n === 1 ? 500 : 200));
    const { api, control, sb } = await sandbox({ webhookRetryDelaysMs: [50, 50] });
    const created = await control.post('/actions/create-webhook', { url: `${hook.server.url}/mc?token=t` });
    expect(created.status).toBe(200);
    expect(hook.received[0]).toMatchObject({ method: 'GET', url: '/mc?token=t' });
    expect((await api.get(`/lists/${LIST}/webhooks`)).data.webhooks).toHaveLength(1);
    await api.put(`/lists/${LIST}/members/${md5('r@example.com')}`, { email_address: 'r@example.com', status_if_new: 'subscribed' });
    await hook.waitFor(3);
    await sb.webhooks.idle();
    expect(hook.received.map((r) => r.method)).toEqual(['GET', 'POST', 'POST']);
    expect(hook.received[1]?.body).toBe(hook.received[2]?.body);
    expect(sb.webhooks.log.at(-1)).toMatchObject({ attempts: 2, status: 200 });
    // an unreachable URL is refused, via control and via the API
    const closed = await startHttpServer((_q, s) => {
      s.writeHead(404);
      s.end();
    });
    await closed.close();
    expect((await control.post('/actions/create-webhook', { url: closed.url })).status).toBe(400);
    const viaApi = await api.post(`/lists/${LIST}/webhooks`, { url: closed.url, events: { subscribe: true }, sources: { user: true } });
    expect(viaApi.status).toBe(400);
  });
});

describe('Mailchimp sandbox: seed', () => {
  it('maps seed people to member statuses and marketing permissions', async () => {
    const { sb, api } = await sandbox();
    const people = [...generatePeople(3000, 8, { now: NOW, rates: { presence: { salesforce: 0, hubspot: 0, mailchimp: 1, sendgrid: 0 }, hardBounce: 0.02, complaint: 0.02, caseVariant: 0.2, duplicate: 0.2 } })];
    expect(sb.seed(people)).toBe(3000);
    const byId = new Map<string, Record<string, unknown> & { status: string; timestamp_opt: string; last_changed: string; marketing_permissions: { marketing_permission_id: string; enabled: boolean }[] }>();
    for (let offset = 0; offset < 3000; offset += 1000) {
      const r = await api.get(`/lists/${LIST}/members`, { params: { count: 1000, offset } });
      for (const m of r.data.members) byId.set(m.id, m);
    }
    expect((await api.get(`/lists/${LIST}/members`, { params: { status: 'archived' } })).data.total_items).toBe(0);
    expect(byId.size).toBe(3000);
    const statuses = new Set<string>();
    for (const p of people) {
      const pr = p.presence.mailchimp;
      if (!pr) continue;
      const m = byId.get(md5(p.email));
      if (!m) throw new Error(`no member for ${p.email}`);
      statuses.add(m.status);
      expect(m.email_address).toBe(pr.emails[0]);
      if (pr.hardBounced) expect(m.status).toBe('cleaned');
      else if (pr.complained) expect(m).toMatchObject({ status: 'unsubscribed', unsubscribe_reason: 'Abuse (spam complaint)' });
      else if (pr.optedOut) expect(m.status).toBe('unsubscribed');
      else if (pr.subscribedAt) {
        expect(m.status).toBe('subscribed');
        expect(Date.parse(m.timestamp_opt)).toBe(Date.parse(pr.subscribedAt));
        expect(m.ip_opt).not.toBe('');
      } else {
        expect(['subscribed', 'pending']).toContain(m.status);
        expect(m.timestamp_opt).toBe('');
      }
      expect(Date.parse(m.last_changed)).toBe(Date.parse(pr.updatedAt));
      const newsletter = m.marketing_permissions.find((x) => x.marketing_permission_id === '7f3c9b2a1d');
      expect(newsletter?.enabled).toBe(pr.purposes['newsletter'] === 'granted');
    }
    expect([...statuses].sort()).toEqual(['cleaned', 'pending', 'subscribed', 'unsubscribed']);
    expect(sb.sentWebhooks).toHaveLength(0);
  });
});

describe('Mailchimp sandbox: scale', () => {
  it('pulls 200k seeded people with count=1000 pages', async () => {
    const { sb, api } = await sandbox();
    const t0 = performance.now();
    const members = sb.seed(generatePeople(200_000, 99, { now: NOW }));
    const t1 = performance.now();
    let seen = 0;
    let pages = 0;
    for (let offset = 0; ; offset += 1000) {
      const r = await api.get(`/lists/${LIST}/members`, { params: { count: 1000, offset } });
      seen += r.data.members.length;
      pages++;
      if (r.data.members.length < 1000) break;
    }
    const t2 = performance.now();
    expect(seen).toBe(sb.state.lists.get(LIST)?.query({}).length);
    console.log(`mailchimp: seeded 200k people -> ${members} members in ${(t1 - t0).toFixed(0)} ms; pulled ${seen} in ${pages} pages in ${(t2 - t1).toFixed(0)} ms`);
  }, 60_000);
});
