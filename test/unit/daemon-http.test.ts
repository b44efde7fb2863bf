import { createHmac, timingSafeEqual } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { WebhookRejection } from '../../src/connectors/contract.js';
import type { Connector, WebhookRequest } from '../../src/connectors/contract.js';
import { buildApp } from '../../src/daemon/http/app.js';
import type { AdminApi, DaemonHttpDeps, WebhookIntakeFn } from '../../src/daemon/http/types.js';
import { createMetrics } from '../../src/daemon/metrics.js';

const SECRET = 'whsec_0123456789abcdef';
const MC_SECRET = 'mailchimp-url-secret-xyz';
const ADMIN_TOKEN = 'admin-token-7f3a9c2b';

function sign(raw: Buffer): string {
  return createHmac('sha256', SECRET).update(raw).digest('hex');
}

/** A connector whose verify checks an HMAC over the exact raw bytes, and records what it saw. */
function fakeConnector(id: string, seen: WebhookRequest[]): Connector {
  return {
    id,
    kind: 'fake',
    limits: { batchSize: 10, requestsPerInterval: 10, intervalMs: 1000, concurrency: 1 },
    capabilities: { consent: [], suppression: [], pushGrants: false, erase: false, acceptsUnknownAddresses: false },
    // eslint-disable-next-line require-yield
    async *pull() {
      return;
    },
    push: async () => [],
    check: async () => ({ ok: true, details: [] }),
    webhook: {
      async verify(req) {
        seen.push(req);
        const url = new URL(req.url);
        if (req.method === 'GET') {
          if (url.searchParams.get('secret') !== MC_SECRET) throw new WebhookRejection('unauthorized', 'bad url secret');
          return [];
        }
        const sig = req.headers['x-signature'];
        if (typeof sig !== 'string') throw new WebhookRejection('unauthorized', 'no signature');
        const expected = Buffer.from(sign(req.rawBody));
        const given = Buffer.from(sig);
        if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw new WebhookRejection('bad_signature', 'bad signature');
        if (req.headers['x-stale'] === '1') throw new WebhookRejection('stale_timestamp', 'old');
        if (req.rawBody.length === 0) throw new WebhookRejection('malformed', 'empty');
        return [{ id: `ev-${seen.length}`, type: 'unsubscribe', occurredAt: null, payload: null }];
      },
      toObservations: async () => ({ observations: [] }),
    },
  };
}

function noWebhookConnector(id: string): Connector {
  const c = fakeConnector(id, []);
  const { webhook: _w, ...rest } = c;
  return rest as Connector;
}

function adminFake(): AdminApi & { calls: Array<[string, unknown]> } {
  const calls: Array<[string, unknown]> = [];
  return {
    calls,
    explain: vi.fn(async (email: string) => {
      calls.push(['explain', email]);
      return email === 'known@example.com' ? { subject: email, permissions: [] } : null;
    }),
    optOut: vi.fn(async (input) => {
      calls.push(['optOut', input]);
      return { observationIds: ['o1'] };
    }),
    grant: vi.fn(async (input) => {
      calls.push(['grant', input]);
    }),
    erase: vi.fn(async (input) => {
      calls.push(['erase', input]);
    }),
    listRuns: vi.fn(async (limit: number) => {
      calls.push(['listRuns', limit]);
      return [];
    }),
    listDeadLetters: vi.fn(async (limit: number) => {
      calls.push(['listDeadLetters', limit]);
      return [];
    }),
    replayDeadLetter: vi.fn(async (id: number) => {
      calls.push(['replay', id]);
      return id === 7;
    }),
  };
}

interface Harness {
  app: FastifyInstance;
  lines: string[];
  seen: WebhookRequest[];
  intake: ReturnType<typeof vi.fn<WebhookIntakeFn>>;
  admin: ReturnType<typeof adminFake>;
  deps: DaemonHttpDeps;
  state: { draining: boolean; ready: boolean };
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

function harness(over: Partial<DaemonHttpDeps> = {}): Harness {
  const lines: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, dest);
  const seen: WebhookRequest[] = [];
  const intake = vi.fn<WebhookIntakeFn>(async (_id, events) => ({ accepted: events.length, duplicates: 0 }));
  const admin = adminFake();
  const state = { draining: false, ready: true };
  const deps: DaemonHttpDeps = {
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
    connectors: new Map([
      ['hook', fakeConnector('hook', seen)],
      ['plain', noWebhookConnector('plain')],
    ]),
    intake,
    admin,
    readiness: async () => ({ ok: state.ready, checks: { store: { ok: state.ready } } }),
    adminTokens: [ADMIN_TOKEN, 'second-token-abcdef'],
    bodyLimitBytes: 4096,
    isDraining: () => state.draining,
    ...over,
  };
  const app = buildApp(deps);
  apps.push(app);
  return { app, lines, seen, intake, admin, deps, state };
}

async function metricValue(h: Harness, name: string, labels: Record<string, string>): Promise<number> {
  const json = await h.deps.metrics.registry.getSingleMetric(name)?.get();
  const v = json?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

describe('webhooks', () => {
  const bodies: Array<[string, string | Buffer]> = [
    ['application/json', '{ "b":1,   "a" : "caf\u00e9 \u00f1 \ud83d\ude00",\n\t"e":"x@example.com" }  '],
    ['application/x-www-form-urlencoded', 'type=unsubscribe&data%5Bemail%5D=x%40example.com&data[merges][FNAME]=Ren%C3%A9&&'],
    ['text/xml; charset=utf-8', '<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">  <x>é</x></soapenv:Envelope>\r\n'],
    ['application/octet-stream', Buffer.from([0, 255, 10, 13, 32, 0xc3])],
  ];

  for (const [type, body] of bodies) {
    it(`passes the raw bytes unchanged to verify (${type})`, async () => {
      const h = harness();
      const raw = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
      const res = await h.app.inject({ method: 'POST', url: '/webhooks/hook', headers: { 'content-type': type, 'x-signature': sign(raw) }, payload: raw });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ accepted: 1, duplicates: 0 });
      expect(h.seen[0]?.rawBody.equals(raw)).toBe(true);
      expect(h.intake).toHaveBeenCalledTimes(1);
      expect(h.intake.mock.calls[0]?.[0]).toBe('hook');
      expect(await metricValue(h, 'consentd_webhook_events_total', { connector: 'hook', result: 'accepted' })).toBe(1);
    });
  }

  it('accepts a body without content type', async () => {
    const h = harness();
    const raw = Buffer.from('x=1');
    const res = await h.app.inject({ method: 'POST', url: '/webhooks/hook', headers: { 'x-signature': sign(raw) }, payload: raw });
    expect(res.statusCode).toBe(200);
    expect(h.seen[0]?.rawBody.equals(raw)).toBe(true);
  });

  it('hands verify the full URL with query string and headers', async () => {
    const h = harness();
    const raw = Buffer.from('{}');
    await h.app.inject({ method: 'POST', url: '/webhooks/hook?secret=abc&x=1', headers: { host: 'consent.example.com', 'content-type': 'application/json', 'x-signature': sign(raw) }, payload: raw });
    expect(h.seen[0]?.url).toBe('http://consent.example.com/webhooks/hook?secret=abc&x=1');
    expect(h.seen[0]?.headers['x-signature']).toBe(sign(raw));
    expect(h.seen[0]?.receivedAt).toBeInstanceOf(Date);
  });

  it('uses the configured public URL prefix', async () => {
    const h = harness({ publicUrl: 'https://hooks.example.org/' });
    const raw = Buffer.from('{}');
    await h.app.inject({ method: 'POST', url: '/webhooks/hook?k=v', headers: { 'content-type': 'application/json', 'x-signature': sign(raw) }, payload: raw });
    expect(h.seen[0]?.url).toBe('https://hooks.example.org/webhooks/hook?k=v');
  });

  it.each([
    ['bad signature', { 'x-signature': 'f'.repeat(64) }, 401, 'bad_signature'],
    ['missing signature', {}, 401, 'unauthorized'],
    ['stale', { 'x-stale': '1' }, 401, 'stale_timestamp'],
  ])('rejects a %s with its status, counts it, and calls no intake', async (_name, headers, status, reason) => {
    const h = harness();
    const raw = Buffer.from('{"a":1}');
    const hdrs: Record<string, string> = { 'content-type': 'application/json', ...headers };
    if (reason === 'stale_timestamp') hdrs['x-signature'] = sign(raw);
    const res = await h.app.inject({ method: 'POST', url: '/webhooks/hook', headers: hdrs, payload: raw });
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual({ error: reason });
    expect(h.intake).not.toHaveBeenCalled();
    expect(await metricValue(h, 'consentd_webhook_rejections_total', { connector: 'hook', reason })).toBe(1);
  });

  it('rejects a malformed (empty) body with 400', async () => {
    const h = harness();
    const res = await h.app.inject({ method: 'POST', url: '/webhooks/hook', headers: { 'x-signature': sign(Buffer.alloc(0)) } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'malformed' });
    expect(h.intake).not.toHaveBeenCalled();
  });

  it('answers 500 without details when verify throws something else, and calls no intake', async () => {
    const h = harness();
    const conn = h.deps.connectors.get('hook');
    vi.spyOn(conn!.webhook!, 'verify').mockRejectedValueOnce(new Error('boom at /secret/path'));
    const res = await h.app.inject({ method: 'POST', url: '/webhooks/hook', payload: 'x' });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: 'internal' });
    expect(res.body).not.toContain('boom');
    expect(h.intake).not.toHaveBeenCalled();
  });

  it('answers 503 with Retry-After when the intake throws (nothing acknowledged)', async () => {
    const h = harness();
    h.intake.mockRejectedValueOnce(Object.assign(new Error('disk full'), { code: 'SQLITE_FULL' }));
    const raw = Buffer.from('{}');
    const res = await h.app.inject({ method: 'POST', url: '/webhooks/hook', headers: { 'content-type': 'application/json', 'x-signature': sign(raw) }, payload: raw });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json()).toEqual({ error: 'intake_failed' });
    expect(await metricValue(h, 'consentd_webhook_events_total', { connector: 'hook', result: 'failed' })).toBe(1);
  });

  it('answers a rejection the intake raised with its status (no retry storm on malformed payloads)', async () => {
    const h = harness();
    h.intake.mockRejectedValueOnce(new WebhookRejection('malformed', 'unknown event shape'));
    const raw = Buffer.from('{}');
    const res = await h.app.inject({ method: 'POST', url: '/webhooks/hook', headers: { 'content-type': 'application/json', 'x-signature': sign(raw) }, payload: raw });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'malformed' });
    expect(await metricValue(h, 'consentd_webhook_rejections_total', { connector: 'hook', reason: 'malformed' })).toBe(1);
  });

  it('answers only after the intake resolved', async () => {
    const h = harness();
    let release!: () => void;
    h.intake.mockImplementationOnce(() => new Promise((resolve) => (release = () => resolve({ accepted: 0, duplicates: 1 }))));
    const raw = Buffer.from('{}');
    let done = false;
    const p = h.app.inject({ method: 'POST', url: '/webhooks/hook', headers: { 'content-type': 'application/json', 'x-signature': sign(raw) }, payload: raw }).then((r) => {
      done = true;
      return r;
    });
    await vi.waitFor(() => expect(h.intake).toHaveBeenCalled());
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    release();
    const res = await p;
    expect(res.json()).toEqual({ accepted: 0, duplicates: 1 });
    expect(await metricValue(h, 'consentd_webhook_events_total', { connector: 'hook', result: 'duplicate' })).toBe(1);
  });

  it('sends the intake response override (SOAP Ack)', async () => {
    const h = harness();
    const ack = '<soapenv:Envelope><soapenv:Body><notificationsResponse><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>';
    h.intake.mockResolvedValueOnce({ accepted: 1, duplicates: 0, response: { status: 200, contentType: 'text/xml; charset=utf-8', body: ack } });
    const raw = Buffer.from('<xml/>');
    const res = await h.app.inject({ method: 'POST', url: '/webhooks/hook', headers: { 'content-type': 'text/xml', 'x-signature': sign(raw) }, payload: raw });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/xml; charset=utf-8');
    expect(res.body).toBe(ack);
  });

  it('answers 503 with Retry-After while draining, without verifying', async () => {
    const h = harness();
    h.state.draining = true;
    const raw = Buffer.from('{}');
    const res = await h.app.inject({ method: 'POST', url: '/webhooks/hook', headers: { 'content-type': 'application/json', 'x-signature': sign(raw) }, payload: raw });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(h.seen).toHaveLength(0);
    expect(h.intake).not.toHaveBeenCalled();
  });

  it('answers 413 to an oversize body and counts it', async () => {
    const h = harness();
    const raw = Buffer.alloc(5000, 'a');
    const res = await h.app.inject({ method: 'POST', url: '/webhooks/hook', headers: { 'content-type': 'application/json', 'x-signature': sign(raw) }, payload: raw });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({ error: 'too_large' });
    expect(h.intake).not.toHaveBeenCalled();
    expect(await metricValue(h, 'consentd_webhook_rejections_total', { connector: 'hook', reason: 'too_large' })).toBe(1);
  });

  it('answers 404 to an unknown connector and to one without webhooks', async () => {
    const h = harness();
    for (const id of ['nope', 'plain']) {
      const res = await h.app.inject({ method: 'POST', url: `/webhooks/${id}`, headers: { 'content-type': 'application/json' }, payload: '{}' });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({ error: 'unknown_connector' });
    }
    expect(h.intake).not.toHaveBeenCalled();
  });

  it('answers a GET handshake through verify (200) and rejects a bad one', async () => {
    const h = harness();
    const ok = await h.app.inject({ method: 'GET', url: `/webhooks/hook?secret=${MC_SECRET}` });
    expect(ok.statusCode).toBe(200);
    expect(h.seen[0]?.method).toBe('GET');
    const bad = await h.app.inject({ method: 'GET', url: '/webhooks/hook?secret=wrong' });
    expect(bad.statusCode).toBe(401);
    expect(h.intake).not.toHaveBeenCalled();
  });
});

describe('request logs', () => {
  it('contain method, route pattern, status and duration, and no email, token or query secret', async () => {
    const h = harness();
    const raw = Buffer.from('{"email":"person@example.com"}');
    await h.app.inject({ method: 'POST', url: `/webhooks/hook?secret=${MC_SECRET}`, headers: { 'content-type': 'application/json', 'x-signature': sign(raw) }, payload: raw });
    await h.app.inject({ method: 'GET', url: `/webhooks/hook?secret=${MC_SECRET}` });
    await h.app.inject({ method: 'GET', url: '/v1/subjects/known%40example.com', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    await h.app.inject({ method: 'POST', url: '/v1/optouts', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, payload: { email: 'person@example.com' } });
    await h.app.inject({ method: 'GET', url: '/v1/subjects/bad', headers: { authorization: 'Bearer wrong-token-123' } });
    await h.app.inject({ method: 'GET', url: `/nowhere?secret=${MC_SECRET}&e=person@example.com` });
    h.intake.mockRejectedValueOnce(new Error('db down'));
    await h.app.inject({ method: 'POST', url: `/webhooks/hook?secret=${MC_SECRET}`, headers: { 'content-type': 'application/json', 'x-signature': sign(raw) }, payload: raw });

    const all = h.lines.join('\n');
    expect(all).not.toContain(MC_SECRET);
    expect(all).not.toContain(ADMIN_TOKEN);
    expect(all).not.toContain('wrong-token-123');
    expect(all).not.toMatch(/example\.com/);
    expect(all).not.toContain('secret=');
    const requests = h.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'request' || l['msg'] === 'request errored');
    expect(requests.length).toBe(7);
    expect(requests[0]).toMatchObject({ method: 'POST', route: '/webhooks/:connectorId', status: 200 });
    expect(requests[2]).toMatchObject({ method: 'GET', route: '/v1/subjects/:email', status: 200 });
    expect(requests[5]).toMatchObject({ method: 'GET', route: '(unmatched)', status: 404 });
    expect(typeof requests[0]?.['ms']).toBe('number');
    for (const r of requests) expect(Object.keys(r)).not.toContain('url');
  });
});

describe('health, readiness, metrics', () => {
  it('/healthz is 200', async () => {
    const h = harness();
    const res = await h.app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('/readyz follows readiness and draining', async () => {
    const h = harness();
    let res = await h.app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready', checks: { store: { ok: true } } });
    h.state.ready = false;
    res = await h.app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ status: 'not_ready', checks: { store: { ok: false } } });
    h.state.ready = true;
    h.state.draining = true;
    res = await h.app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ checks: { draining: { ok: false } } });
  });

  it('/readyz is 503 when readiness throws', async () => {
    const h = harness({ readiness: () => Promise.reject(new Error('x')) });
    const res = await h.app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
  });

  it('/metrics exposes the metric names in Prometheus text', async () => {
    const h = harness({ metrics: createMetrics() });
    h.deps.metrics.setQueueCollector(async () => ({ outboxDepth: { hook: 3 }, oldestPendingAgeSeconds: { '*': 12 }, deadLetters: 2, staleGrants: 4 }));
    h.deps.metrics.pushes('hook', 'ok', 2);
    h.deps.metrics.propagation('stated', 1.5);
    h.deps.metrics.apiCall('hook', 'contacts.update', 429);
    h.deps.metrics.rateLimitWait('hook', 1500);
    h.deps.metrics.driftFound('hook', 3);
    h.deps.metrics.driftFixed('hook', 2);
    h.deps.metrics.run('pull_full', 'ok', 1000);
    h.deps.metrics.webhookRejected('hook', 'bad_signature');
    h.deps.metrics.webhookEvents('hook', 'accepted');
    const res = await h.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    for (const name of [
      'consentd_webhook_events_total',
      'consentd_webhook_rejections_total',
      'consentd_propagation_seconds_bucket',
      'consentd_pushes_total',
      'consentd_outbox_depth{connector="hook"} 3',
      'consentd_outbox_oldest_age_seconds{connector="*"} 12',
      'consentd_dead_letters 2',
      'consentd_stale_grants 4',
      'consentd_drift_found_total',
      'consentd_drift_fixed_total',
      'consentd_api_calls_total{connector="hook",endpoint="contacts.update",status="429"} 1',
      'consentd_rate_limit_wait_seconds_total{connector="hook"} 1.5',
      'consentd_runs_total{kind="pull_full",status="ok"} 1',
      'consentd_run_last_success_timestamp_seconds',
      'consentd_process_cpu_seconds_total',
    ]) {
      expect(res.body).toContain(name);
    }
  });
});

describe('admin API', () => {
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

  it('is absent (404) when no tokens are configured', async () => {
    const h = harness({ adminTokens: [] });
    for (const [method, url] of [
      ['GET', '/v1/runs'],
      ['POST', '/v1/optouts'],
      ['GET', '/v1/subjects/a%40b.co'],
    ] as const) {
      const res = await h.app.inject(method === 'POST' ? { method, url, headers: auth, payload: { email: 'a@b.co' } } : { method, url, headers: auth });
      expect(res.statusCode).toBe(404);
    }
    expect(h.admin.calls).toHaveLength(0);
  });

  it.each([
    ['missing', undefined],
    ['wrong', 'Bearer nope'],
    ['wrong scheme', `Basic ${ADMIN_TOKEN}`],
    ['prefix of a token', `Bearer ${ADMIN_TOKEN.slice(0, -1)}`],
    ['empty', 'Bearer '],
  ])('answers 401 to a %s token', async (_n, header) => {
    const h = harness();
    const headers: Record<string, string> = header === undefined ? {} : { authorization: header };
    const res = await h.app.inject({ method: 'POST', url: '/v1/optouts', headers, payload: { email: 'a@example.com' } });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ error: 'unauthorized' });
    expect(h.admin.calls).toHaveLength(0);
  });

  it('accepts any configured token', async () => {
    const h = harness();
    const res = await h.app.inject({ method: 'GET', url: '/v1/runs', headers: { authorization: 'bearer second-token-abcdef' } });
    expect(res.statusCode).toBe(200);
  });

  it('explains a subject (normalized), 404 when unknown, 400 with the reason when invalid', async () => {
    const h = harness();
    let res = await h.app.inject({ method: 'GET', url: '/v1/subjects/%20Known%40Example.COM', headers: auth });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ subject: 'known@example.com', permissions: [] });
    res = await h.app.inject({ method: 'GET', url: '/v1/subjects/other%40example.com', headers: auth });
    expect(res.statusCode).toBe(404);
    res = await h.app.inject({ method: 'GET', url: '/v1/subjects/not-an-email', headers: auth });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'invalid_email', reason: 'email has no @' });
  });

  it('records an opt-out with defaults and answers 202 after it resolved', async () => {
    const h = harness();
    const res = await h.app.inject({ method: 'POST', url: '/v1/optouts', headers: auth, payload: { email: 'Ann@Example.com' } });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ status: 'accepted', observationIds: ['o1'] });
    expect(h.admin.calls).toEqual([['optOut', { email: 'ann@example.com', channel: 'email', purpose: '*', evidence: null }]]);
  });

  it('records a grant; evidence is required', async () => {
    const h = harness();
    let res = await h.app.inject({ method: 'POST', url: '/v1/grants', headers: auth, payload: { email: 'a@example.com', purpose: 'newsletter' } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'bad_request', field: 'evidence' });
    res = await h.app.inject({ method: 'POST', url: '/v1/grants', headers: auth, payload: { email: 'a@example.com', purpose: 'newsletter', channel: 'sms', evidence: 'signed form #12' } });
    expect(res.statusCode).toBe(202);
    expect(h.admin.calls).toEqual([['grant', { email: 'a@example.com', purpose: 'newsletter', channel: 'sms', evidence: 'signed form #12' }]]);
  });

  it('validates bodies naming the field', async () => {
    const h = harness();
    const cases: Array<[string, unknown, string]> = [
      ['/v1/optouts', { email: 'a@example.com', channel: 'fax' }, 'channel'],
      ['/v1/optouts', { email: 'a@example.com', purpose: 'Bad Purpose' }, 'purpose'],
      ['/v1/optouts', {}, 'email'],
      ['/v1/grants', { email: 'a@example.com', evidence: 'x' }, 'purpose'],
      ['/v1/erasures', { email: 'a@example.com', extra: 1 }, 'extra'],
    ];
    for (const [url, payload, field] of cases) {
      const res = await h.app.inject({ method: 'POST', url, headers: auth, payload: payload as object });
      expect(res.statusCode, url).toBe(400);
      expect(res.json(), JSON.stringify(payload)).toMatchObject({ error: 'bad_request', field });
    }
    const res = await h.app.inject({ method: 'POST', url: '/v1/optouts', headers: { ...auth, 'content-type': 'application/json' }, payload: '{not json' });
    expect(res.statusCode).toBe(400);
    expect(res.body).not.toContain('at ');
    const inv = await h.app.inject({ method: 'POST', url: '/v1/erasures', headers: auth, payload: { email: 'a@@example.com' } });
    expect(inv.statusCode).toBe(400);
    expect(inv.json()).toEqual({ error: 'invalid_email', reason: 'email has more than one @' });
    expect(h.admin.calls).toHaveLength(0);
  });

  it('erases, lists runs and dead letters, replays', async () => {
    const h = harness();
    expect((await h.app.inject({ method: 'POST', url: '/v1/erasures', headers: auth, payload: { email: 'Gone@example.com' } })).statusCode).toBe(202);
    const runs = await h.app.inject({ method: 'GET', url: '/v1/runs?limit=5', headers: auth });
    expect(runs.json()).toEqual({ runs: [] });
    const dl = await h.app.inject({ method: 'GET', url: '/v1/dead-letters', headers: auth });
    expect(dl.json()).toEqual({ deadLetters: [] });
    expect((await h.app.inject({ method: 'POST', url: '/v1/dead-letters/7/replay', headers: auth })).statusCode).toBe(202);
    expect((await h.app.inject({ method: 'POST', url: '/v1/dead-letters/8/replay', headers: auth })).statusCode).toBe(404);
    expect((await h.app.inject({ method: 'POST', url: '/v1/dead-letters/x/replay', headers: auth })).statusCode).toBe(400);
    expect((await h.app.inject({ method: 'GET', url: '/v1/runs?limit=0', headers: auth })).statusCode).toBe(400);
    expect(h.admin.calls).toEqual([
      ['erase', { email: 'gone@example.com' }],
      ['listRuns', 5],
      ['listDeadLetters', 100],
      ['replay', 7],
      ['replay', 8],
    ]);
  });

  it('answers 503 to writes while draining, and 500 without a stack when the admin function fails', async () => {
    const h = harness();
    h.state.draining = true;
    let res = await h.app.inject({ method: 'POST', url: '/v1/optouts', headers: auth, payload: { email: 'a@example.com' } });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    h.state.draining = false;
    vi.mocked(h.admin.optOut).mockRejectedValueOnce(new Error('secret internals'));
    res = await h.app.inject({ method: 'POST', url: '/v1/optouts', headers: auth, payload: { email: 'a@example.com' } });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: 'internal' });
    vi.mocked(h.admin.optOut).mockRejectedValueOnce(Object.assign(new Error('closed'), { code: 'STORE_CLOSED' }));
    res = await h.app.inject({ method: 'POST', url: '/v1/optouts', headers: auth, payload: { email: 'a@example.com' } });
    expect(res.statusCode).toBe(503);
  });
});
