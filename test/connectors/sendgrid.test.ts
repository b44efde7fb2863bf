/** SendGrid connector against its sandbox: mapping, pull, push semantics, rate limits, webhook. */
import eventwebhook from '@sendgrid/eventwebhook';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createSendGridConnector, GLOBAL_NEVER_LIFTED, sendgridSettings, type SendGridSettings } from '../../connectors/sendgrid/index.js';
import type { SendGridConnectorOptions } from '../../connectors/sendgrid/index.js';
import { SendGridHttp, SendGridHttpError } from '../../connectors/sendgrid/http.js';
import { createSendGridSandbox, SIGNATURE_HEADER, TIMESTAMP_HEADER, type SendGridSandbox, type SendGridSandboxOptions } from '../../connectors/sendgrid/sandbox/index.js';
import type { Connector, ConnectorContext, PullPage, PushResult, WebhookRequest } from '../../src/connectors/contract.js';
import { WebhookRejection } from '../../src/connectors/contract.js';
import { classifyError, retryDelayMs } from '../../src/engine/retry.js';
import { changeKey, type Change, type ObservationInput, type RecordSnapshot } from '../../src/model/index.js';
import { readBody, startHttpServer } from '../../src/sandbox/http.js';

const { EventWebhook } = eventwebhook;
const PURPOSES = { '101': 'newsletter', '102': 'product_updates' } as const;
const DAY = 86_400;
const nowS = (): number => Math.floor(Date.now() / 1000);

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.();
});

function ctx(extra: Partial<ConnectorContext> = {}): ConnectorContext {
  return { id: 'sg', purposes: ['newsletter', 'product_updates', 'events'], logger: pino({ level: 'silent' }), baseDir: '.', ...extra };
}

interface Setup {
  sb: SendGridSandbox;
  connector: Connector;
  settings: SendGridSettings;
}

async function setup(o: { sandbox?: SendGridSandboxOptions; settings?: Record<string, unknown>; ctx?: Partial<ConnectorContext>; opts?: SendGridConnectorOptions } = {}): Promise<Setup> {
  const sb = createSendGridSandbox({ rateLimit: { limit: 100_000, windowMs: 1_000 }, webhookRetryDelaysMs: [20], ...o.sandbox });
  await sb.start();
  cleanup.push(() => sb.stop());
  const settings = sendgridSettings.parse({ apiKey: sb.credentials.apiKey, baseUrl: sb.url, purposes: PURPOSES, webhookPublicKey: sb.credentials.publicKey, timeoutMs: 5_000, ...o.settings });
  return { sb, settings, connector: createSendGridConnector(settings, ctx(o.ctx), o.opts) };
}

async function pullAll(c: Connector, cursor: string | null): Promise<PullPage[]> {
  const pages: PullPage[] = [];
  for await (const p of c.pull(cursor)) pages.push(p);
  return pages;
}
const recordsOf = (pages: PullPage[]): Map<string, RecordSnapshot> => new Map(pages.flatMap((p) => p.records).map((r) => [r.recordId, r] as const));
const obsOf = (pages: PullPage[]): ObservationInput[] => pages.flatMap((p) => p.observations);
const cursorOf = (pages: PullPage[]): string | null => pages.map((p) => p.cursor).filter((c) => c !== null).pop() ?? null;

function change(email: string, body: Pick<Change, 'op' | 'purpose' | 'target'> & { meta?: Record<string, unknown> }): Change {
  const c: Omit<Change, 'key'> = { connectorId: 'sg', recordId: email, subject: email, op: body.op, channel: 'email', purpose: body.purpose, target: body.target, rule: null, decidedBy: 'test', meta: body.meta ?? {} };
  return { key: changeKey(c), ...c };
}
const denyAll = (e: string): Change => change(e, { op: 'set_consent', purpose: '*', target: 'denied' });

function callsTo(sb: SendGridSandbox, prefix: string): number {
  return Object.entries(sb.calls.snapshot())
    .filter(([k]) => k.startsWith(prefix))
    .reduce((n, [, v]) => n + v, 0);
}

/** Seeds every kind of entry with explicit times. */
function seedLists(sb: SendGridSandbox, t: number): void {
  const s = sb.state;
  s.global.add({ email: 'Multi@Example.com', created: t - 100 });
  s.lists.bounces.add({ email: 'multi@example.com', created: t - 90, status: '5.1.1', reason: '550 no such user' });
  s.groups.get(102)?.suppressions.add({ email: 'multi@example.com', created: t - 80 });
  s.groups.get(101)?.suppressions.add({ email: 'group@example.com', created: t - 70 });
  s.groups.get(103)?.suppressions.add({ email: 'unmapped@example.com', created: t - 60 });
  s.lists.bounces.add({ email: 'soft@example.com', created: t - 50, status: '4.2.2', reason: 'mailbox full' });
  s.lists.blocks.add({ email: 'block@example.com', created: t - 40, status: '5.7.1', reason: 'blocklisted' });
  s.lists.spam_reports.add({ email: 'spam@example.com', created: t - 30 });
  s.lists.invalid_emails.add({ email: 'invalid@example.com', created: t - 20, reason: 'unknown domain' });
  s.lists.invalid_emails.add({ email: 'broken@nodot', created: t - 10 });
  s.lists.bounces.add({ email: 'ancient@example.com', created: t - 900 * DAY, status: '5.1.1' });
}

describe('sendgrid pull', () => {
  it('maps every list and the groups; one merged snapshot per address', async () => {
    const { sb, connector } = await setup({ settings: { pageSize: 2, recordsPerPage: 3 } });
    const t = nowS();
    seedLists(sb, t);
    const pages = await pullAll(connector, null);
    const obs = obsOf(pages);
    const recs = recordsOf(pages);
    const iso = (s: number): string => new Date(s * 1000).toISOString();
    const find = (subject: string, pred: (o: ObservationInput) => boolean): ObservationInput[] => obs.filter((o) => o.subject === subject && pred(o));

    expect(find('multi@example.com', (o) => o.kind === 'consent' && o.purpose === '*')).toEqual([expect.objectContaining({ state: 'denied', strength: 'explicit', statedAt: iso(t - 100), how: 'pull', recordId: 'multi@example.com', source: 'sg' })]);
    expect(find('multi@example.com', (o) => o.kind === 'consent' && o.purpose === 'product_updates')).toEqual([expect.objectContaining({ state: 'denied', strength: 'explicit', statedAt: iso(t - 80) })]);
    expect(find('multi@example.com', (o) => o.kind === 'suppression')).toEqual([expect.objectContaining({ reason: 'hard_bounce', statedAt: iso(t - 90) })]);
    expect(find('group@example.com', () => true)).toEqual([expect.objectContaining({ kind: 'consent', purpose: 'newsletter', state: 'denied' })]);
    expect(find('unmapped@example.com', () => true)).toEqual([]);
    expect(find('soft@example.com', () => true)).toEqual([expect.objectContaining({ kind: 'suppression', reason: 'blocked' })]);
    expect(find('block@example.com', () => true)).toEqual([expect.objectContaining({ kind: 'suppression', reason: 'blocked' })]);
    expect(find('spam@example.com', () => true)).toEqual([expect.objectContaining({ kind: 'suppression', reason: 'complaint', state: 'denied' })]);
    expect(find('invalid@example.com', () => true)).toEqual([expect.objectContaining({ kind: 'suppression', reason: 'invalid_address' })]);
    expect(obs.every((o) => o.state !== 'granted')).toBe(true);
    // Outside the two-year window; unusable address rejected.
    expect(find('ancient@example.com', () => true)).toEqual([]);
    expect(pages.flatMap((p) => p.rejects ?? [])).toEqual([{ where: 'sendgrid invalid_emails: broken@nodot', reason: 'domain has no dot' }]);

    // Snapshots: after every observation page, sorted, at most recordsPerPage, cursor on the last page only.
    const firstRecordPage = pages.findIndex((p) => p.records.length > 0);
    expect(pages.slice(firstRecordPage).every((p) => p.observations.length === 0)).toBe(true);
    expect(pages.every((p) => p.records.length <= 3)).toBe(true);
    expect(pages.slice(0, -1).every((p) => p.cursor === null)).toBe(true);
    expect(JSON.parse(cursorOf(pages) ?? 'null')).toEqual({ v: 1, sinceMs: expect.any(Number) });
    expect([...recs.keys()]).toEqual(['block@example.com', 'group@example.com', 'invalid@example.com', 'multi@example.com', 'soft@example.com', 'spam@example.com', 'unmapped@example.com']);
    expect(recs.get('multi@example.com')).toEqual({
      connectorId: 'sg',
      recordId: 'multi@example.com',
      subject: 'multi@example.com',
      consent: { 'email:*': 'denied', 'email:newsletter': 'denied', 'email:product_updates': 'denied' },
      suppressed: { email: true },
      meta: { lists: ['unsubscribes', 'bounces'], groups: [102] },
    });
    expect(recs.get('group@example.com')).toMatchObject({ consent: { 'email:*': 'granted', 'email:newsletter': 'denied', 'email:product_updates': 'granted' }, suppressed: { email: false } });
    expect(recs.get('unmapped@example.com')).toMatchObject({ consent: { 'email:*': 'granted', 'email:newsletter': 'granted', 'email:product_updates': 'granted' }, suppressed: { email: false }, meta: { groups: [103] } });
    expect(recs.get('block@example.com')).toMatchObject({ suppressed: { email: true }, consent: { 'email:*': 'granted' } });
    // Paging, 2 per page: a full page asks for the next one. bounces (multi, soft) and invalid_emails
    // (invalid, broken) 2 calls each, blocks and spam_reports 1 each; unsubscribes (1 entry) 1.
    expect(sb.calls.snapshot()['GET /v3/suppression/{type} 200']).toBe(6);
    expect(sb.calls.snapshot()['GET /v3/suppression/unsubscribes 200']).toBe(1);
  });

  it('incremental: only entries since the cursor (minus overlap), snapshots only for listed addresses', async () => {
    const { sb, connector } = await setup({ settings: { incrementalOverlapSeconds: 60 } });
    const t = nowS();
    sb.state.global.add({ email: 'old-global@example.com', created: t - 30 * DAY });
    sb.state.lists.bounces.add({ email: 'old-bounce@example.com', created: t - 30 * DAY });
    const full = await pullAll(connector, null);
    expect(recordsOf(full).size).toBe(2);
    const c0 = cursorOf(full);

    sb.state.lists.bounces.add({ email: 'old-global@example.com', created: t, status: '5.1.1' }); // globally unsubscribed long ago
    sb.state.global.add({ email: 'new@example.com', created: t });
    sb.state.groups.get(101)?.suppressions.add({ email: 'grouponly@example.com', created: t });
    sb.state.groups.get(102)?.suppressions.add({ email: 'old-group@example.com', created: t - 30 * DAY });
    const inc = await pullAll(connector, c0);
    const obs = obsOf(inc);
    expect(obs.map((o) => `${o.subject} ${o.kind} ${o.purpose} ${o.reason ?? ''}`).sort()).toEqual([
      'grouponly@example.com consent newsletter ',
      'new@example.com consent * ',
      'old-global@example.com suppression * hard_bounce',
    ]);
    const recs = recordsOf(inc);
    expect([...recs.keys()]).toEqual(['new@example.com', 'old-global@example.com']);
    // Seen on the global list in the window: complete; seen only on the bounce list: '*' not known.
    expect(recs.get('new@example.com')).toMatchObject({ consent: { 'email:*': 'denied', 'email:newsletter': 'denied', 'email:product_updates': 'denied' }, suppressed: { email: true } });
    expect(recs.get('old-global@example.com')).toMatchObject({ consent: { 'email:*': 'unknown', 'email:newsletter': 'unknown' }, suppressed: { email: true } });
    const c1 = cursorOf(inc);
    expect(c1).not.toBe(c0);
    // The calls carried the window.
    const again = await pullAll(connector, c1);
    expect(obsOf(again).every((o) => o.subject !== 'old-bounce@example.com')).toBe(true);
  });
});

describe('sendgrid push', () => {
  it('2500 global denials take ceil(2500/1000) = 3 calls; group denials are batched per group', async () => {
    const { sb, connector } = await setup();
    // Every scope (email:*, newsletter, product_updates) of 1000 addresses, times 10 full calls.
    expect(connector.limits.batchSize).toBe(1000 * 3 * 10);
    const denials = Array.from({ length: 2500 }, (_, i) => denyAll(`d${i}@example.com`));
    sb.calls.reset();
    const results: PushResult[] = [];
    for (let i = 0; i < denials.length; i += connector.limits.batchSize) results.push(...(await connector.push(denials.slice(i, i + connector.limits.batchSize))));
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(sb.calls.snapshot()).toEqual({ 'POST /v3/asm/suppressions/global 201': 3 });
    expect(sb.state.global.size).toBe(2500);

    // 1200 purpose denials + 300 suppressions in one batch of 1500 changes: 2 group calls, 1 global call.
    sb.calls.reset();
    const mixed = [
      ...Array.from({ length: 1200 }, (_, i) => change(`g${i}@example.com`, { op: 'set_consent', purpose: 'product_updates', target: 'denied' })),
      ...Array.from({ length: 300 }, (_, i) => change(`s${i}@example.com`, { op: 'suppress', purpose: '*', target: null })),
    ];
    const r2 = await connector.push(mixed);
    expect(r2.filter((r) => r.status !== 'ok')).toEqual([]);
    expect(sb.calls.snapshot()).toEqual({ 'POST /v3/asm/groups/{group_id}/suppressions 201': 2, 'POST /v3/asm/suppressions/global 201': 1 });
    expect(sb.state.groups.get(102)?.suppressions.size).toBe(1200);
    // Idempotent.
    expect((await connector.push(denials.slice(0, 5))).every((r) => r.status === 'ok')).toBe(true);
    expect(sb.state.global.size).toBe(2800);
  });

  it('purpose denials of an address unsubscribed globally in the same push ride on that call', async () => {
    const { sb, connector } = await setup();
    // 1500 people opting out of all email: (email, *) plus each mapped purpose (rule 4).
    const people = Array.from({ length: 1500 }, (_, i) => `o${i}@example.com`);
    const optOuts = people.flatMap((e) => [denyAll(e), change(e, { op: 'set_consent', purpose: 'newsletter', target: 'denied' }), change(e, { op: 'set_consent', purpose: 'product_updates', target: 'denied' })]);
    // And one purpose denial alone: it still needs its group.
    const alone = change('alone@example.com', { op: 'set_consent', purpose: 'newsletter', target: 'denied' });
    sb.calls.reset();
    const results = await connector.push([...optOuts, alone]);
    expect(results.map((r) => r.key)).toEqual([...optOuts, alone].map((c) => c.key));
    expect(results.filter((r) => r.status !== 'ok')).toEqual([]);
    expect(sb.calls.snapshot()).toEqual({ 'POST /v3/asm/suppressions/global 201': 2, 'POST /v3/asm/groups/{group_id}/suppressions 201': 1 });
    expect(sb.state.global.size).toBe(1500);
    expect(sb.state.groups.get(101)?.suppressions.size).toBe(1);
    // What a pull reads back agrees with every change pushed: nothing left to plan.
    const recs = recordsOf(await pullAll(connector, null));
    for (const e of people.slice(0, 20)) expect(recs.get(e)?.consent).toMatchObject({ 'email:*': 'denied', 'email:newsletter': 'denied', 'email:product_updates': 'denied' });
    expect(recs.get('alone@example.com')?.consent).toMatchObject({ 'email:newsletter': 'denied' });
    // A failed global call fails the purpose denials it carried, too.
    const carried = [denyAll('x@example.com'), change('x@example.com', { op: 'set_consent', purpose: 'newsletter', target: 'denied' })];
    sb.faults.set({ errorRate: 1 });
    const failed = await connector.push(carried);
    sb.faults.set({ errorRate: 0 });
    expect(failed.map((r) => [r.key, r.status])).toEqual(carried.map((c) => [c.key, 'retry']));
    expect(sb.state.groups.get(101)?.suppressions.has('x@example.com')).toBe(false);
    expect((await connector.push(carried)).map((r) => r.status)).toEqual(['ok', 'ok']);
  });

  it('a grant removes the group suppression', async () => {
    const { sb, connector } = await setup();
    sb.state.groups.get(102)?.suppressions.add({ email: 'back@example.com', created: nowS() - 10 });
    sb.calls.reset();
    const c = change('back@example.com', { op: 'set_consent', purpose: 'product_updates', target: 'granted' });
    expect(await connector.push([c])).toEqual([{ key: c.key, status: 'ok' }]);
    expect(sb.state.groups.get(102)?.suppressions.has('back@example.com')).toBe(false);
    expect(sb.calls.snapshot()).toEqual({ 'DELETE /v3/asm/groups/{group_id}/suppressions/{email} 204': 1, 'GET /v3/asm/suppressions/global/{email} 200': 1 });
  });

  it('a pushed suppression returns what SendGrid now says, so the pulled global unsubscribe is its echo', async () => {
    const { sb, connector } = await setup();
    const c = change('bounced.elsewhere@example.com', { op: 'suppress', purpose: '*', target: null });
    const [r] = await connector.push([c]);
    expect(r).toMatchObject({ key: c.key, status: 'ok', snapshot: { recordId: 'bounced.elsewhere@example.com', suppressed: { email: true } } });
    const snap = r?.status === 'ok' ? r.snapshot : undefined;
    // Pulled back, the address reads exactly as the returned snapshot says.
    const pulled = recordsOf(await pullAll(connector, null)).get('bounced.elsewhere@example.com');
    expect(pulled?.consent).toEqual(snap?.consent);
    expect(pulled?.consent['email:*']).toBe('denied');
    expect(sb.state.global.has('bounced.elsewhere@example.com')).toBe(true);
  });

  it('never lifts a global unsubscribe', async () => {
    const { sb, connector } = await setup();
    sb.state.global.add({ email: 'gone@example.com', created: nowS() - 10 });
    sb.state.groups.get(101)?.suppressions.add({ email: 'gone@example.com', created: nowS() - 10 });
    const all = change('gone@example.com', { op: 'set_consent', purpose: '*', target: 'granted' });
    const news = change('gone@example.com', { op: 'set_consent', purpose: 'newsletter', target: 'granted' });
    const fresh = change('fresh@example.com', { op: 'set_consent', purpose: '*', target: 'granted' });
    const unmapped = change('gone@example.com', { op: 'set_consent', purpose: 'events', target: 'denied' });
    const [r1, r2, r3, r4] = await connector.push([all, news, fresh, unmapped]);
    expect(r1).toEqual({ key: all.key, status: 'failed', reason: GLOBAL_NEVER_LIFTED, code: 'SENDGRID_GLOBAL_UNSUBSCRIBE' });
    expect(r2).toMatchObject({ status: 'failed', code: 'SENDGRID_GLOBAL_UNSUBSCRIBE' });
    expect((r2 as { reason: string }).reason).toContain('newsletter');
    expect(r3).toEqual({ key: fresh.key, status: 'ok' });
    expect(r4).toMatchObject({ status: 'failed', reason: 'no SendGrid unsubscribe group is mapped to purpose "events"' });
    expect(sb.state.global.has('gone@example.com')).toBe(true);
    expect(sb.state.groups.get(101)?.suppressions.has('gone@example.com')).toBe(false);
    expect(callsTo(sb, 'DELETE /v3/asm/suppressions/global')).toBe(0);
  });

  it('erase clears bounce, spam, invalid and group lists but keeps (ensures) the global unsubscribe', async () => {
    const { sb, connector } = await setup();
    const t = nowS() - 100;
    for (const e of ['forget@example.com', 'lookup@example.com']) {
      sb.state.lists.bounces.add({ email: e, created: t });
      sb.state.lists.spam_reports.add({ email: e, created: t });
      sb.state.lists.invalid_emails.add({ email: e, created: t });
      sb.state.lists.blocks.add({ email: e, created: t });
      sb.state.groups.get(101)?.suppressions.add({ email: e, created: t });
      sb.state.groups.get(103)?.suppressions.add({ email: e, created: t });
    }
    const rec = recordsOf(await pullAll(connector, null)).get('forget@example.com') as RecordSnapshot;
    expect(rec.meta).toEqual({ lists: ['bounces', 'blocks', 'spam_reports', 'invalid_emails'], groups: [101, 103] });
    const withMeta = change('forget@example.com', { op: 'erase', purpose: '*', target: null, meta: rec.meta });
    const noMeta = change('lookup@example.com', { op: 'erase', purpose: '*', target: null });
    sb.calls.reset();
    expect(await connector.push([withMeta, noMeta])).toEqual([
      { key: withMeta.key, status: 'ok' },
      { key: noMeta.key, status: 'ok' },
    ]);
    for (const e of ['forget@example.com', 'lookup@example.com']) {
      expect(sb.state.describe(e)).toMatchObject({ globalUnsubscribe: expect.objectContaining({ email: e }), groups: [], bounce: null, block: null, spamReport: null, invalid: null });
    }
    // 4 bulk list deletes, 1 group look-up (no meta), 4 group deletes, 1 global add for both.
    expect(sb.calls.total).toBe(10);
    expect(callsTo(sb, 'DELETE /v3/suppression/{type} ')).toBe(4);
    expect(callsTo(sb, 'POST /v3/asm/suppressions/global ')).toBe(1);
    // Again: harmless.
    expect((await connector.push([withMeta])).every((r) => r.status === 'ok')).toBe(true);
  });

  it('30% injected 429/5xx: a retry loop applies every change exactly once', async () => {
    const waits: number[] = [];
    const { sb, connector } = await setup({ settings: { maxRateLimitWaitMs: 2_500, concurrency: 4 }, ctx: { onRateLimitWait: (ms) => waits.push(ms) }, sandbox: { faultsSeed: 11 } });
    const t = nowS() - 100;
    const grants = Array.from({ length: 15 }, (_, i) => `gr${i}@example.com`);
    for (const e of grants) sb.state.groups.get(101)?.suppressions.add({ email: e, created: t });
    const changes = [
      ...Array.from({ length: 400 }, (_, i) => denyAll(`a${i}@example.com`)),
      ...Array.from({ length: 300 }, (_, i) => change(`p${i}@example.com`, { op: 'set_consent', purpose: 'newsletter', target: 'denied' })),
      ...grants.map((e) => change(e, { op: 'set_consent', purpose: 'newsletter', target: 'granted' })),
    ];
    sb.faults.set({ rateLimitRate: 0.15, errorRate: 0.15 });
    const oks = new Map<string, number>();
    let pending = changes;
    let attempt = 0;
    let retried = 0;
    while (pending.length > 0 && attempt < 30) {
      attempt++;
      const next: Change[] = [];
      let wait = 0;
      const results = await connector.push(pending);
      results.forEach((r, i) => {
        if (r.status === 'ok') oks.set(r.key, (oks.get(r.key) ?? 0) + 1);
        else {
          const v = classifyError(r);
          expect(v.retry, r.status === 'failed' ? r.reason : '').toBe(true);
          next.push(pending[i] as Change);
          wait = Math.max(wait, retryDelayMs(v, attempt, { baseMs: 10, maxMs: 100 }));
        }
      });
      retried += next.length;
      pending = next;
      if (pending.length > 0) await new Promise((r) => setTimeout(r, Math.min(wait, 1_500)));
    }
    sb.faults.set({ rateLimitRate: 0, errorRate: 0 });
    expect(pending).toEqual([]);
    expect(retried).toBeGreaterThan(0);
    expect(oks.size).toBe(changes.length);
    expect([...oks.values()].every((n) => n === 1)).toBe(true);
    expect(sb.state.global.size).toBe(400);
    expect(sb.state.groups.get(101)?.suppressions.size).toBe(300);
    expect(Object.keys(sb.calls.snapshot()).some((k) => k.endsWith(' 429'))).toBe(true);
  }, 60_000);
});

describe('sendgrid rate limits', () => {
  it('X-RateLimit-Remaining 0: waits for X-RateLimit-Reset instead of drawing a 429', async () => {
    const waits: number[] = [];
    const calls: string[] = [];
    const { sb, settings } = await setup({ sandbox: { rateLimit: { limit: 2, windowMs: 1_000 } } });
    const http = new SendGridHttp(settings, { onRateLimitWait: (ms) => waits.push(ms), onApiCall: (e, s) => calls.push(`${e} ${s}`) });
    const started = Date.now();
    for (let i = 0; i < 3; i++) await http.request({ method: 'GET', path: '/asm/groups', endpoint: 'GET /asm/groups' });
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeGreaterThan(0);
    expect(waits[0]).toBeLessThanOrEqual(2_100);
    expect(Date.now() - started).toBeGreaterThanOrEqual((waits[0] ?? 0) - 5);
    expect(sb.calls.snapshot()).toEqual({ 'GET /v3/asm/groups 200': 3 });
    expect(calls).toEqual(Array(3).fill('GET /asm/groups 200'));
    // Other endpoints have their own windows.
    await http.request({ method: 'GET', path: '/scopes', endpoint: 'GET /scopes' });
    expect(waits).toHaveLength(1);
  });

  it('a wait longer than maxRateLimitWaitMs fails retryable with the wait, without calling', async () => {
    const { sb, settings } = await setup({ sandbox: { rateLimit: { limit: 1, windowMs: 60_000 } }, settings: { maxRateLimitWaitMs: 100 } });
    const http = new SendGridHttp(settings, {});
    await http.request({ method: 'GET', path: '/asm/groups', endpoint: 'GET /asm/groups' });
    const err = await http.request({ method: 'GET', path: '/asm/groups', endpoint: 'GET /asm/groups' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SendGridHttpError);
    const v = classifyError(err);
    expect(v.retry).toBe(true);
    expect(v.waitMs).toBeGreaterThan(100);
    expect(sb.calls.total).toBe(1);
    // A push answers retry with that wait.
    const connector = createSendGridConnector({ ...settings }, ctx());
    sb.rateLimiter.reset();
    await connector.push([denyAll('x@example.com')]);
    const [r] = await connector.push([denyAll('y@example.com')]);
    expect(r).toMatchObject({ status: 'retry', retryAfterMs: expect.any(Number) });
  });
});

describe('sendgrid check', () => {
  it('validates the key, scopes and configured groups', async () => {
    const { connector, sb, settings } = await setup();
    const ok = await connector.check();
    expect(ok.ok).toBe(true);
    expect(ok.details.join('\n')).toContain('101 Newsletter -> newsletter');
    const missing = createSendGridConnector({ ...settings, purposes: { ...settings.purposes, '999': 'events' } }, ctx());
    const bad = await missing.check();
    expect(bad.ok).toBe(false);
    expect(bad.details).toContain('configured group 999 (purpose events) does not exist in SendGrid');
    const wrongKey = await createSendGridConnector({ ...settings, apiKey: 'SG.nope' }, ctx()).check();
    expect(wrongKey.ok).toBe(false);
    expect(wrongKey.details[0]).toContain('401');
    expect(sb.calls.snapshot()['GET /v3/scopes 401']).toBe(1);
  });
});

describe('sendgrid webhook', () => {
  async function listen(sb: SendGridSandbox): Promise<WebhookRequest[]> {
    const got: WebhookRequest[] = [];
    const server = await startHttpServer(async (req, res) => {
      got.push({ method: req.method ?? 'POST', url: req.url ?? '/', headers: req.headers, rawBody: await readBody(req), receivedAt: new Date() });
      res.writeHead(200).end();
    });
    cleanup.push(() => server.close());
    sb.events.opts.url = `${server.url}/webhooks/sg`;
    return got;
  }
  const act = async (sb: SendGridSandbox, name: string, body: Record<string, unknown>): Promise<void> => {
    const res = await fetch(`${sb.rootUrl}/__sandbox/actions/${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.status).toBe(200);
  };
  const rejection = async (p: Promise<unknown>): Promise<string> => {
    const e = await p.then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(WebhookRejection);
    return (e as WebhookRejection).reason;
  };

  it('verifies real signed deliveries (cross-checked with @sendgrid/eventwebhook) and maps every event', async () => {
    const { sb, connector } = await setup();
    const hook = connector.webhook;
    if (!hook) throw new Error('webhook expected');
    const got = await listen(sb);
    await act(sb, 'unsubscribe', { email: 'u@example.com' });
    await act(sb, 'group-unsubscribe', { email: 'g@example.com', groupId: 102 });
    await act(sb, 'group-resubscribe', { email: 'g@example.com', groupId: 102 });
    await act(sb, 'group-unsubscribe', { email: 'g@example.com', groupId: 103 });
    await act(sb, 'bounce', { email: 'b@example.com' });
    await act(sb, 'block', { email: 'k@example.com' });
    await act(sb, 'spam-report', { email: 's@example.com' });
    await act(sb, 'invalid', { email: 'i@example.com' });
    await sb.events.idle();
    expect(got.length).toBeGreaterThan(0);
    const ew = new EventWebhook();
    const key = ew.convertPublicKeyToECDSA(sb.credentials.publicKey);
    const events = [];
    for (const req of got) {
      const sig = req.headers[SIGNATURE_HEADER.toLowerCase()] as string;
      const ts = req.headers[TIMESTAMP_HEADER.toLowerCase()] as string;
      expect(ew.verifySignature(key, req.rawBody, sig, ts)).toBe(true);
      events.push(...(await hook.verify(req)));
    }
    expect(events.map((e) => e.type)).toEqual(['unsubscribe', 'group_unsubscribe', 'group_resubscribe', 'group_unsubscribe', 'bounce', 'bounce', 'spamreport', 'dropped']);
    const { observations, records } = await hook.toObservations(events);
    const brief = observations.map((o) => `${o.subject} ${o.kind} ${o.purpose} ${o.state} ${o.reason ?? '-'} ${o.how}`);
    expect(brief).toEqual([
      'u@example.com consent * denied - webhook',
      'g@example.com consent product_updates denied - webhook',
      'g@example.com consent product_updates granted - webhook',
      'b@example.com suppression * unknown hard_bounce webhook',
      'k@example.com suppression * unknown blocked webhook',
      's@example.com suppression * denied complaint webhook',
      'i@example.com suppression * unknown invalid_address webhook',
    ]);
    for (const [i, o] of observations.entries()) {
      expect(o.reference).toBe(events.filter((e) => e.type !== 'group_unsubscribe' || (e.payload as { asm_group_id: number }).asm_group_id !== 103)[i]?.id);
      expect(o.statedAt).not.toBeNull();
      expect(o.strength).toBe('explicit');
    }
    const byId = new Map((records ?? []).map((r) => [r.recordId, r] as const));
    expect(byId.get('u@example.com')).toMatchObject({ consent: { 'email:*': 'denied', 'email:newsletter': 'denied', 'email:product_updates': 'denied' }, suppressed: { email: true } });
    expect(byId.get('b@example.com')).toMatchObject({ consent: { 'email:*': 'unknown' }, suppressed: { email: true } });
    expect(byId.has('g@example.com')).toBe(false);
  });

  it('refuses altered bodies, missing headers, stale or future timestamps and malformed bodies', async () => {
    const { sb, connector, settings } = await setup();
    const got = await listen(sb);
    await act(sb, 'unsubscribe', { email: 'u@example.com' });
    await sb.events.idle();
    const req = got[0] as WebhookRequest;
    const hook = connector.webhook;
    if (!hook) throw new Error('webhook expected');
    expect(await hook.verify(req)).toHaveLength(1);
    expect(await rejection(hook.verify({ ...req, rawBody: Buffer.from(req.rawBody.toString('utf8').replace('u@example.com', 'v@example.com')) }))).toBe('bad_signature');
    expect(await rejection(hook.verify({ ...req, headers: { ...req.headers, [SIGNATURE_HEADER.toLowerCase()]: undefined } }))).toBe('bad_signature');
    expect(await rejection(hook.verify({ ...req, headers: { ...req.headers, [SIGNATURE_HEADER.toLowerCase()]: 'not base64!' } }))).toBe('bad_signature');
    expect(await rejection(hook.verify({ ...req, headers: { ...req.headers, [TIMESTAMP_HEADER.toLowerCase()]: String(Number(req.headers[TIMESTAMP_HEADER.toLowerCase()]) + 1) } }))).toBe('bad_signature');
    const later = createSendGridConnector(settings, ctx(), { now: () => Date.now() + 601_000 }).webhook;
    expect(await rejection(later?.verify(req) ?? Promise.resolve())).toBe('stale_timestamp');
    const earlier = createSendGridConnector(settings, ctx(), { now: () => Date.now() - 301_000 }).webhook;
    expect(await rejection(earlier?.verify(req) ?? Promise.resolve())).toBe('stale_timestamp');
    const resigned = (body: string): WebhookRequest => {
      const ts = String(nowS());
      return { ...req, rawBody: Buffer.from(body), headers: { ...req.headers, [SIGNATURE_HEADER.toLowerCase()]: sb.events.signature(ts, body), [TIMESTAMP_HEADER.toLowerCase()]: ts } };
    };
    for (const body of ['not json', '{"email":"a@example.com"}', '[{"email":"a@example.com","event":"unsubscribe","timestamp":1}]', '[1]', '[{"email":"a@example.com","event":"unsubscribe","timestamp":"1","sg_event_id":"x"}]']) {
      expect(await rejection(hook.verify(resigned(body))), body).toBe('malformed');
    }
    expect(await hook.verify(resigned('[]'))).toEqual([]);
  });

  it('duplicates keep their event id; out-of-order events keep their own timestamps', async () => {
    const { sb, connector } = await setup({ sandbox: { duplicateRate: 1, outOfOrder: true } });
    const hook = connector.webhook;
    if (!hook) throw new Error('webhook expected');
    const got = await listen(sb);
    const t = nowS();
    sb.events.emit({ email: 'late@example.com', event: 'group_unsubscribe', asm_group_id: 101, timestamp: t - 3_600 }, Date.now());
    sb.events.emit({ email: 'late@example.com', event: 'group_resubscribe', asm_group_id: 101, timestamp: t - 60 }, Date.now());
    sb.events.emit({ email: 'late@example.com', event: 'unsubscribe', timestamp: t - 86_000 }, Date.now());
    sb.events.emit({ email: 'late@example.com', event: 'delivered' as never, timestamp: t }, Date.now());
    await sb.events.idle();
    expect(got.length).toBeGreaterThanOrEqual(2);
    const perPost = [];
    for (const req of got) perPost.push(await hook.verify(req));
    const all = perPost.flat();
    expect(all).toHaveLength(8);
    const ids = new Set(all.map((e) => e.id));
    expect(ids.size).toBe(4);
    expect(new Set(sb.events.emitted.map((e) => e.sg_event_id))).toEqual(ids);
    const { observations } = await hook.toObservations(all);
    const byEvent = new Map(sb.events.emitted.map((e) => [e.sg_event_id, e] as const));
    expect(observations).toHaveLength(6);
    for (const o of observations) expect(o.statedAt).toBe(new Date((byEvent.get(o.reference ?? '')?.timestamp ?? 0) * 1000).toISOString());
    const resub = observations.find((o) => o.state === 'granted');
    expect(resub).toMatchObject({ purpose: 'newsletter', statedAt: new Date((t - 60) * 1000).toISOString() });
  });
});
