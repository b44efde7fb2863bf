import eventwebhook from '@sendgrid/eventwebhook';
import axios, { type AxiosInstance } from 'axios';
import { afterEach, describe, expect, it } from 'vitest';
import { createSendGridSandbox, SIGNATURE_HEADER, TIMESTAMP_HEADER, type SendGridSandbox, type SendGridSandboxOptions, type SgEvent } from '../../connectors/sendgrid/sandbox/index.js';
import { readBody, startHttpServer, type RunningServer } from '../../src/sandbox/http.js';
import { generatePeople } from '../../src/sandbox/seed.js';

const { EventWebhook } = eventwebhook;
const NOW = '2025-06-01T00:00:00.000Z';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.();
});

async function sandbox(opts: SendGridSandboxOptions = {}): Promise<{ sb: SendGridSandbox; api: AxiosInstance; control: AxiosInstance }> {
  const sb = createSendGridSandbox(opts);
  await sb.start();
  cleanup.push(() => sb.stop());
  const api = axios.create({ baseURL: sb.url, headers: { Authorization: `Bearer ${sb.credentials.apiKey}` }, validateStatus: () => true });
  const control = axios.create({ baseURL: `${sb.rootUrl}/__sandbox`, validateStatus: () => true });
  return { sb, api, control };
}

interface Post {
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

async function listener(): Promise<{ server: RunningServer; posts: Post[] }> {
  const posts: Post[] = [];
  const server = await startHttpServer(async (req, res) => {
    posts.push({ body: (await readBody(req)).toString('utf8'), headers: req.headers });
    res.writeHead(200);
    res.end();
  });
  cleanup.push(() => server.close());
  return { server, posts };
}

describe('SendGrid sandbox: auth', () => {
  it('needs the Bearer key', async () => {
    const { sb, api } = await sandbox();
    expect((await api.get('/asm/groups')).status).toBe(200);
    const bad = await axios.get(`${sb.url}/asm/groups`, { headers: { Authorization: 'Bearer SG.wrong' }, validateStatus: () => true });
    expect(bad.status).toBe(401);
    expect(bad.data).toEqual({ errors: [{ field: null, message: 'authorization required' }] });
    expect((await axios.get(`${sb.url}/asm/groups`, { validateStatus: () => true })).status).toBe(401);
  });
});

describe('SendGrid sandbox: suppressions', () => {
  it('adds, reads and deletes global unsubscribes', async () => {
    const { api } = await sandbox();
    const add = await api.post('/asm/suppressions/global', { recipient_emails: ['a@example.com', 'b@example.com'] });
    expect(add.status).toBe(201);
    expect(add.data).toEqual({ recipient_emails: ['a@example.com', 'b@example.com'] });
    expect((await api.get('/asm/suppressions/global/a@example.com')).data).toEqual({ recipient_email: 'a@example.com' });
    expect((await api.get('/asm/suppressions/global/A@Example.com')).data).toEqual({ recipient_email: 'a@example.com' });
    expect((await api.get('/asm/suppressions/global/c@example.com')).data).toEqual({});
    expect((await api.delete('/asm/suppressions/global/a@example.com')).status).toBe(204);
    expect((await api.get('/asm/suppressions/global/a@example.com')).data).toEqual({});
    const list = await api.get('/suppression/unsubscribes');
    expect(list.data.map((e: { email: string }) => e.email)).toEqual(['b@example.com']);
    expect(typeof list.data[0].created).toBe('number');
    expect((await api.post('/asm/suppressions/global', { recipient_emails: ['nope'] })).status).toBe(400);
  });

  it('manages group suppressions', async () => {
    const { api } = await sandbox();
    const groups = await api.get('/asm/groups');
    expect(groups.data.map((g: { id: number }) => g.id)).toEqual([101, 102, 103]);
    expect(groups.data[0]).toMatchObject({ name: 'Newsletter', is_default: true });
    const add = await api.post('/asm/groups/102/suppressions', { recipient_emails: ['x@example.com', 'y@example.com'] });
    expect(add.status).toBe(201);
    expect(add.data).toEqual({ recipient_emails: ['x@example.com', 'y@example.com'] });
    expect((await api.get('/asm/groups/102/suppressions')).data).toEqual(['x@example.com', 'y@example.com']);
    const of = await api.get('/asm/suppressions/x@example.com');
    expect(of.data.suppressions).toEqual([
      { id: 101, name: 'Newsletter', description: 'Our monthly newsletter', is_default: true, suppressed: false },
      { id: 102, name: 'Product updates', description: 'News about the product', is_default: false, suppressed: true },
      { id: 103, name: 'Events', description: 'Invitations to events and webinars', is_default: false, suppressed: false },
    ]);
    expect((await api.delete('/asm/groups/102/suppressions/x@example.com')).status).toBe(204);
    expect((await api.get('/asm/groups/102/suppressions')).data).toEqual(['y@example.com']);
    const unknown = await api.post('/asm/groups/999/suppressions', { recipient_emails: ['x@example.com'] });
    expect(unknown.status).toBe(404);
    expect(unknown.data.errors[0]).toHaveProperty('message');
    expect((await api.get('/asm/groups/999/suppressions')).status).toBe(404);
  });

  it('lists bounces, blocks, spam reports and invalid emails by time window and page', async () => {
    let clock = Date.parse(NOW);
    const { api, control } = await sandbox({ now: () => clock });
    for (let i = 0; i < 30; i++) {
      clock = Date.parse(NOW) + i * 3600_000;
      await control.post('/actions/bounce', { email: `bounce.${i}@example.com` });
    }
    await control.post('/actions/block', { email: 'blocked@example.com' });
    await control.post('/actions/spam-report', { email: 'spam@example.com' });
    await control.post('/actions/invalid', { email: 'invalid@example.com' });
    const start = Date.parse(NOW) / 1000;
    const all = await api.get('/suppression/bounces');
    expect(all.data).toHaveLength(30);
    expect(all.data[0]).toMatchObject({ email: 'bounce.29@example.com', status: '5.1.1' });
    expect(all.data[0].reason).toContain('550');
    const windowed = await api.get('/suppression/bounces', { params: { start_time: start + 10 * 3600, end_time: start + 19 * 3600 } });
    expect(windowed.data.map((b: { email: string }) => b.email).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `bounce.${i + 10}@example.com`).sort());
    const seen = new Set<string>();
    for (let offset = 0; ; offset += 7) {
      const page = await api.get('/suppression/bounces', { params: { limit: 7, offset } });
      for (const b of page.data) seen.add(b.email);
      if (page.data.length < 7) break;
    }
    expect(seen.size).toBe(30);
    expect((await api.get('/suppression/bounces', { params: { limit: 501 } })).status).toBe(400);
    expect((await api.get('/suppression/blocks')).data[0]).toMatchObject({ email: 'blocked@example.com' });
    expect((await api.get('/suppression/spam_reports')).data[0]).toMatchObject({ email: 'spam@example.com' });
    expect((await api.get('/suppression/invalid_emails')).data[0]).toMatchObject({ email: 'invalid@example.com' });
    expect((await api.get('/suppression/bounces/bounce.3@example.com')).data).toHaveLength(1);
    expect((await api.delete('/suppression/bounces/bounce.3@example.com')).status).toBe(204);
    expect((await api.get('/suppression/bounces/bounce.3@example.com')).data).toEqual([]);
    expect((await api.delete('/suppression/bounces', { data: { emails: ['bounce.4@example.com', 'bounce.5@example.com'] } })).status).toBe(204);
    expect((await api.get('/suppression/bounces')).data).toHaveLength(27);
    expect((await api.delete('/suppression/bounces', { data: { delete_all: true } })).status).toBe(204);
    expect((await api.get('/suppression/bounces')).data).toEqual([]);
    expect((await api.get('/suppression/nonsense')).status).toBe(404);
  });
});

describe('SendGrid sandbox: rate limits and faults', () => {
  it('sends rate-limit headers on every answer and 429s past the limit, per endpoint', async () => {
    const { api } = await sandbox({ rateLimit: { limit: 3, windowMs: 60_000 } });
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await api.get('/asm/groups');
      expect(r.status).toBe(200);
      expect(r.headers['x-ratelimit-limit']).toBe('3');
      remaining.push(String(r.headers['x-ratelimit-remaining']));
      expect(Number(r.headers['x-ratelimit-reset'])).toBeGreaterThan(Date.now() / 1000);
    }
    expect(remaining).toEqual(['2', '1', '0']);
    const limited = await api.get('/asm/groups');
    expect(limited.status).toBe(429);
    expect(limited.data).toEqual({ errors: [{ field: null, message: 'too many requests' }] });
    expect(limited.headers['x-ratelimit-remaining']).toBe('0');
    // another endpoint has its own budget
    expect((await api.get('/suppression/bounces')).status).toBe(200);
  });

  it('injects 5xx and 429 with SendGrid bodies', async () => {
    const { sb, api } = await sandbox();
    sb.faults.set({ errorRate: 1 });
    const r = await api.get('/asm/groups');
    expect([500, 503]).toContain(r.status);
    expect(r.data.errors[0].message).toBeTruthy();
    sb.faults.set({ errorRate: 0, rateLimitRate: 1 });
    const l = await api.get('/asm/groups');
    expect(l.status).toBe(429);
    expect(l.headers['x-ratelimit-remaining']).toBe('0');
  });
});

describe('SendGrid sandbox: signed Event Webhook', () => {
  it('signs each POST so @sendgrid/eventwebhook verifies it, and fails on an altered body; API writes are not events', async () => {
    const hook = await listener();
    const { sb, api, control } = await sandbox({ eventWebhookUrl: `${hook.server.url}/events` });
    await control.post('/actions/unsubscribe', { email: 'u@example.com' });
    await control.post('/actions/group-unsubscribe', { email: 'g@example.com', groupId: 101 });
    await control.post('/actions/group-resubscribe', { email: 'g@example.com', groupId: 101 });
    // What API callers write is not something a recipient did: no event (consentd's own pushes do not echo).
    await api.post('/asm/suppressions/global', { recipient_emails: ['api@example.com'] });
    await api.post('/asm/groups/101/suppressions', { recipient_emails: ['api@example.com'] });
    await api.delete('/asm/groups/101/suppressions/api@example.com');
    await control.post('/actions/bounce', { email: 'b@example.com' });
    await control.post('/actions/block', { email: 'bl@example.com' });
    await control.post('/actions/spam-report', { email: 's@example.com' });
    await sb.events.idle();
    const ew = new EventWebhook();
    const key = ew.convertPublicKeyToECDSA(sb.credentials.publicKey);
    const events: SgEvent[] = [];
    expect(hook.posts.length).toBeGreaterThan(0);
    for (const post of hook.posts) {
      const signature = String(post.headers[SIGNATURE_HEADER.toLowerCase()]);
      const timestamp = String(post.headers[TIMESTAMP_HEADER.toLowerCase()]);
      expect(ew.verifySignature(key, post.body, signature, timestamp)).toBe(true);
      expect(ew.verifySignature(key, post.body.replace('example.com', 'example.org'), signature, timestamp)).toBe(false);
      expect(ew.verifySignature(key, post.body, signature, String(Number(timestamp) + 1))).toBe(false);
      events.push(...(JSON.parse(post.body) as SgEvent[]));
    }
    const brief = events.map((e) => [e.event, e.email, e.asm_group_id ?? e.type ?? null]);
    expect(brief).toEqual([
      ['unsubscribe', 'u@example.com', null],
      ['group_unsubscribe', 'g@example.com', 101],
      ['group_resubscribe', 'g@example.com', 101],
      ['bounce', 'b@example.com', 'bounce'],
      ['bounce', 'bl@example.com', 'blocked'],
      ['spamreport', 's@example.com', null],
    ]);
    for (const e of events) {
      expect(typeof e.timestamp).toBe('number');
      expect(e.sg_event_id).toBeTruthy();
      expect(e.sg_message_id).toBeTruthy();
    }
    expect(new Set(events.map((e) => e.sg_event_id)).size).toBe(events.length);
  });

  it('delivers duplicates (same sg_event_id, later POST) and shuffles when configured', async () => {
    const hook = await listener();
    const { sb, control } = await sandbox({ eventWebhookUrl: hook.server.url, duplicateRate: 1, outOfOrder: true });
    for (let i = 0; i < 20; i++) await control.post('/actions/unsubscribe', { email: `d${i}@example.com` });
    await sb.events.idle();
    const posts = hook.posts.map((p) => JSON.parse(p.body) as SgEvent[]);
    const ids = posts.flat().map((e) => e.sg_event_id);
    expect(ids).toHaveLength(40);
    expect(new Set(ids).size).toBe(20);
    // a duplicate never shares a POST with its original
    for (const p of posts) expect(new Set(p.map((e) => e.sg_event_id)).size).toBe(p.length);
    const firstSeen = [...new Set(ids)];
    expect(firstSeen).not.toEqual(sb.events.emitted.map((e) => e.sg_event_id));
  });
});

describe('SendGrid sandbox: seed', () => {
  it('turns seed people into suppressions', async () => {
    const { sb, api } = await sandbox();
    const people = [...generatePeople(3000, 5, { now: NOW, rates: { presence: { salesforce: 0, hubspot: 0, mailchimp: 0, sendgrid: 1 }, hardBounce: 0.02, complaint: 0.02 } })];
    sb.seed(people);
    for (const p of people) {
      const pr = p.presence.sendgrid;
      if (!pr) continue;
      const email = pr.emails[0] ?? '';
      if (pr.optedOut) {
        const g = await api.get(`/asm/suppressions/global/${encodeURIComponent(email)}`);
        expect(g.data).toEqual({ recipient_email: email });
        expect(sb.state.global.get(email)?.created).toBe(Date.parse(pr.optedOutAt ?? '') / 1000);
      } else expect(sb.state.global.has(email)).toBe(false);
      expect(sb.state.lists.bounces.has(email)).toBe(pr.hardBounced);
      expect(sb.state.lists.spam_reports.has(email)).toBe(pr.complained);
      expect(sb.state.groups.get(102)?.suppressions.has(email)).toBe(pr.purposes['product_updates'] === 'denied');
    }
    expect(sb.state.global.size).toBeGreaterThan(0);
    expect(sb.state.lists.bounces.size).toBeGreaterThan(0);
    expect(sb.events.emitted).toHaveLength(0);
  });
});

describe('SendGrid sandbox: scale', () => {
  it('pulls 200k seeded people from every list', async () => {
    const { sb, api } = await sandbox({ rateLimit: { limit: 100_000 } });
    const t0 = performance.now();
    const addresses = sb.seed(generatePeople(200_000, 99, { now: NOW }));
    const t1 = performance.now();
    let rows = 0;
    let pages = 0;
    for (const path of ['/suppression/unsubscribes', '/suppression/bounces', '/suppression/spam_reports']) {
      for (let offset = 0; ; offset += 500) {
        const r = await api.get(path, { params: { limit: 500, offset } });
        rows += r.data.length;
        pages++;
        if (r.data.length < 500) break;
      }
    }
    for (const id of [101, 102, 103]) rows += (await api.get(`/asm/groups/${id}/suppressions`)).data.length;
    const t2 = performance.now();
    expect(rows).toBeGreaterThan(0);
    console.log(`sendgrid: seeded 200k people -> ${addresses} addresses in ${(t1 - t0).toFixed(0)} ms; pulled ${rows} suppressions in ${pages + 3} requests in ${(t2 - t1).toFixed(0)} ms`);
  }, 60_000);
});
