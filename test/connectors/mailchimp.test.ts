import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connector, ConnectorContext, PullPage, PushResult, WebhookRequest } from '../../src/connectors/contract.js';
import { WebhookRejection } from '../../src/connectors/contract.js';
import { backoffMs, classifyError } from '../../src/engine/retry.js';
import { changeKey, type Change, type ObservationInput, type RecordSnapshot } from '../../src/model/types.js';
import { applyChangeToSnapshot } from '../../src/plan/plan.js';
import { readBody, startHttpServer } from '../../src/sandbox/http.js';
import type { SeedPerson, SeedPresence } from '../../src/sandbox/seed-types.js';
import { COMPLIANCE_REASON, createMailchimpConnector, mailchimpConnector, mailchimpSettings } from '../../connectors/mailchimp/index.js';
import { createMailchimpSandbox, type MailchimpSandbox, type MailchimpSandboxOptions } from '../../connectors/mailchimp/sandbox/index.js';
import { encodeWebhook, type WebhookData } from '../../connectors/mailchimp/sandbox/webhooks.js';
import type { WebhookEventType } from '../../connectors/mailchimp/sandbox/state.js';

const LIST = 'a1b2c3d4e5';
const PERMS = { newsletter: '7f3c9b2a1d', product_updates: '4e8d2c6b0a', events: '1a5f7e3c9b' } as const;
const TOKEN = 'tok-0123456789abcdef0123';
const md5 = (s: string): string => createHash('md5').update(s.trim().toLowerCase()).digest('hex');

function testCtx(id = 'mailchimp', calls?: string[]): ConnectorContext {
  const ctx: ConnectorContext = { id, purposes: ['newsletter', 'product_updates', 'events'], logger: pino({ level: 'silent' }), baseDir: '.' };
  if (calls) ctx.onApiCall = (endpoint, status) => calls.push(`${endpoint} ${status}`);
  return ctx;
}

function settingsFor(sb: MailchimpSandbox, extra: Record<string, unknown> = {}): ReturnType<typeof mailchimpSettings.parse> {
  return mailchimpSettings.parse({
    apiKey: sb.credentials.apiKey,
    baseUrl: sb.url,
    lists: [{ id: LIST, purposes: { [PERMS.newsletter]: 'newsletter', [PERMS.product_updates]: 'product_updates' } }],
    webhookToken: TOKEN,
    timeoutMs: 5_000,
    ...extra,
  });
}

async function startSandbox(opts: MailchimpSandboxOptions = {}): Promise<MailchimpSandbox> {
  const sb = createMailchimpSandbox({ webhookRetryDelaysMs: [20], ...opts });
  await sb.start();
  return sb;
}

function connectorFor(sb: MailchimpSandbox, extra: Record<string, unknown> = {}, calls?: string[]): Connector {
  return createMailchimpConnector(settingsFor(sb, extra), testCtx('mailchimp', calls), { http: { backoff: { baseMs: 5, maxMs: 20 } } });
}

const presence = (p: Partial<SeedPresence> & { emails: string[] }): SeedPresence => ({
  optedOut: false,
  optedOutAt: null,
  subscribedAt: null,
  purposes: {},
  hardBounced: false,
  complained: false,
  erasureRequested: false,
  updatedAt: '2025-01-10T10:00:00.000Z',
  ...p,
});

/** A seed person present in Mailchimp only (the sandbox makes an import pending when index % 25 === 7). */
function person(email: string, p: Partial<SeedPresence> = {}, opts: { pending?: boolean } = {}): SeedPerson {
  return { index: opts.pending ? 7 : 1, email, firstName: 'A', lastName: 'B', phone: null, presence: { mailchimp: presence({ emails: [email], ...p }) } };
}

async function pullAll(c: Connector, cursor: string | null): Promise<PullPage[]> {
  const pages: PullPage[] = [];
  for await (const p of c.pull(cursor)) pages.push(p);
  return pages;
}

function change(r: RecordSnapshot, body: Pick<Change, 'op' | 'channel' | 'purpose' | 'target'>): Change {
  const c: Omit<Change, 'key'> = {
    connectorId: r.connectorId,
    recordId: r.recordId,
    subject: r.subject,
    ...body,
    rule: null,
    decidedBy: 'test',
    meta: r.meta,
  };
  return { key: changeKey(c), ...c };
}

function webhookRequest(type: WebhookEventType, data: WebhookData, opts: { token?: string; at?: number; url?: string } = {}): WebhookRequest {
  const body = encodeWebhook(type, opts.at ?? Date.parse('2025-06-01T12:00:00Z'), data);
  return {
    method: 'POST',
    url: opts.url ?? `https://consentd.example/webhooks/mailchimp?token=${encodeURIComponent(opts.token ?? TOKEN)}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    rawBody: Buffer.from(body),
    receivedAt: new Date(),
  };
}

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()?.();
});

async function setup(opts: MailchimpSandboxOptions = {}, extra: Record<string, unknown> = {}): Promise<{ sb: MailchimpSandbox; c: Connector; calls: string[] }> {
  const sb = await startSandbox(opts);
  const calls: string[] = [];
  const c = connectorFor(sb, extra, calls);
  cleanup.push(async () => {
    await c.close?.();
    await sb.stop();
  });
  return { sb, c, calls };
}

const recordsOf = (pages: PullPage[]): RecordSnapshot[] => pages.flatMap((p) => p.records);
const obsOf = (pages: PullPage[]): ObservationInput[] => pages.flatMap((p) => p.observations);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const memberOf = (sb: MailchimpSandbox, email: string) => sb.state.findByEmail(email, LIST);

/** The engine's loop in miniature: push, retry what classifyError says to retry, count oks per key. */
async function pushWithRetries(c: Connector, changes: Change[]): Promise<{ ok: Map<string, number>; failed: PushResult[]; rounds: number }> {
  const ok = new Map<string, number>();
  const failed: PushResult[] = [];
  let pending = changes;
  let rounds = 0;
  while (pending.length > 0 && rounds < 40) {
    rounds++;
    const next: Change[] = [];
    for (let i = 0; i < pending.length; i += c.limits.batchSize) {
      const batch = pending.slice(i, i + c.limits.batchSize);
      const byKey = new Map(batch.map((x) => [x.key, x] as const));
      for (const r of await c.push(batch)) {
        if (r.status === 'ok') ok.set(r.key, (ok.get(r.key) ?? 0) + 1);
        else if (classifyError(r).retry) next.push(byKey.get(r.key) as Change);
        else failed.push(r);
      }
    }
    pending = next;
    if (pending.length > 0) await sleep(backoffMs(rounds, { baseMs: 5, maxMs: 40 }));
  }
  return { ok, failed, rounds };
}

const EXPLICIT = 'explicit@example.com';
const IMPORTED = 'imported@example.com';
const PENDING = 'pending@example.com';
const OPTEDOUT = 'optedout@example.com';
const BOUNCED = 'bounced@example.com';
const COMPLAINED = 'complained@example.com';

function seedBasics(sb: MailchimpSandbox): void {
  sb.seed([
    person(EXPLICIT, { subscribedAt: '2024-03-01T09:00:00.000Z', purposes: { newsletter: 'granted', product_updates: 'unknown' } }),
    person(IMPORTED),
    person(PENDING, {}, { pending: true }),
    person(OPTEDOUT, { optedOut: true, optedOutAt: '2025-01-10T10:00:00.000Z' }),
    person(BOUNCED, { hardBounced: true }),
    person(COMPLAINED, { complained: true }),
  ]);
}

describe('mailchimp connector: definition and settings', () => {
  it('exports the definition with a strict schema, secrets marked, defaults', () => {
    expect(mailchimpConnector.kind).toBe('mailchimp');
    const s = mailchimpSettings.parse({ apiKey: 'abc123-us14', lists: [{ id: 'l1' }] });
    expect(s).toMatchObject({ resubscribe: 'never', maxConnections: 10, pageSize: 1000, suppressUnknownAddresses: false, lists: [{ id: 'l1', purposes: {} }] });
    expect(() => mailchimpSettings.parse({ apiKey: 'abc123-us14', lists: [{ id: 'l1' }], extra: 1 })).toThrow();
    expect(() => mailchimpSettings.parse({ apiKey: 'nodc', lists: [{ id: 'l1' }] })).toThrow(/-<dc>/);
    expect(() => mailchimpSettings.parse({ apiKey: 'abc-us1', lists: [{ id: 'l1' }], maxConnections: 11 })).toThrow();
    expect(() => mailchimpSettings.parse({ apiKey: 'abc-us1', lists: [{ id: 'l1' }, { id: 'l1' }] })).toThrow(/twice/);
  });
});

describe('mailchimp connector: pull', () => {
  it('maps a full pull: explicit vs implicit subscribed, pending unknown, unsubscribed denied, cleaned and abuse suppressed', async () => {
    const { sb, c } = await setup({}, { pageSize: 2 });
    seedBasics(sb);
    const pages = await pullAll(c, null);
    expect(pages.length).toBe(3);
    expect(pages[0]?.cursor).toBeNull(); // no resumable position until the list is complete
    expect(pages[2]?.cursor).not.toBeNull();
    const recs = recordsOf(pages);
    const obs = obsOf(pages);
    expect(recs).toHaveLength(6);
    const rec = (e: string): RecordSnapshot => recs.find((r) => r.subject === e) as RecordSnapshot;
    const about = (e: string): ObservationInput[] => obs.filter((o) => o.subject === e);

    expect(rec(EXPLICIT)).toMatchObject({
      connectorId: 'mailchimp',
      recordId: `${LIST}:${md5(EXPLICIT)}`,
      consent: { 'email:*': 'granted', 'email:newsletter': 'granted', 'email:product_updates': 'denied' },
      suppressed: { email: false },
      meta: { listId: LIST, hash: md5(EXPLICIT) },
    });
    expect(about(EXPLICIT)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'consent', purpose: '*', state: 'granted', strength: 'explicit', statedAt: '2024-03-01T09:00:00.000Z', evidence: 'opt-in ip 198.51.100.2', how: 'pull' }),
        expect.objectContaining({ kind: 'consent', purpose: 'newsletter', state: 'granted', strength: 'explicit', statedAt: '2024-03-01T09:00:00.000Z' }),
      ]),
    );
    // product_updates disabled: no statement (Mailchimp cannot tell "off" from "never asked").
    expect(about(EXPLICIT).some((o) => o.purpose === 'product_updates')).toBe(false);

    expect(about(IMPORTED)).toEqual([expect.objectContaining({ purpose: '*', state: 'granted', strength: 'implicit' })]);
    expect(about(PENDING)).toEqual([]);
    expect(rec(PENDING).consent['email:*']).toBe('granted'); // a confirmation is out: never plan another
    expect(about(OPTEDOUT)).toEqual([expect.objectContaining({ kind: 'consent', purpose: '*', state: 'denied', strength: 'explicit', statedAt: '2025-01-10T10:00:00.000Z' })]);
    expect(rec(OPTEDOUT)).toMatchObject({ consent: { 'email:*': 'denied' }, suppressed: { email: true } });
    expect(about(BOUNCED)).toEqual([expect.objectContaining({ kind: 'suppression', reason: 'hard_bounce', state: 'unknown' })]);
    expect(rec(BOUNCED)).toMatchObject({ consent: { 'email:*': 'denied' }, suppressed: { email: true } });
    expect(about(COMPLAINED)).toEqual([expect.objectContaining({ kind: 'suppression', reason: 'complaint', state: 'denied' })]);
  });

  it('rejects members whose address consentd cannot normalize, with the member id', async () => {
    const { sb, c } = await setup();
    sb.seed([person('ok@example.com'), person('two..dots@example.com')]);
    const pages = await pullAll(c, null);
    expect(recordsOf(pages).map((r) => r.subject)).toEqual(['ok@example.com']);
    expect(pages.flatMap((p) => p.rejects ?? [])).toEqual([{ where: `${LIST}:${md5('two..dots@example.com')}`, reason: expect.stringContaining('empty dot segment') }]);
  });

  it('incremental pull: since_last_changed from the cursor returns only what changed, cursor advances', async () => {
    const { sb, c, calls } = await setup();
    seedBasics(sb);
    const full = await pullAll(c, null);
    const c0 = full.at(-1)?.cursor ?? null;
    expect(JSON.parse(c0 as string)).toMatchObject({ v: 1, lists: { [LIST]: expect.any(String) } });
    await sleep(5);
    const m = memberOf(sb, IMPORTED);
    expect(m).toBeDefined();
    await fetch(`${sb.rootUrl}/__sandbox/actions/unsubscribe`, { method: 'POST', body: JSON.stringify({ email: IMPORTED }), headers: { 'content-type': 'application/json' } });
    calls.length = 0;
    const inc = await pullAll(c, c0);
    expect(recordsOf(inc).map((r) => r.subject)).toEqual([IMPORTED]);
    expect(obsOf(inc)).toEqual([expect.objectContaining({ subject: IMPORTED, purpose: '*', state: 'denied', strength: 'explicit' })]);
    expect(calls).toEqual(['GET /lists/{list_id}/members 200']);
    const c1 = inc.at(-1)?.cursor ?? null;
    expect(c1).not.toBe(c0);
    expect(recordsOf(await pullAll(c, c1)).filter((r) => r.subject !== IMPORTED)).toEqual([]);
  });

  it('a list added to the config since the cursor is read in full', async () => {
    const { sb, c } = await setup();
    seedBasics(sb);
    const inc = await pullAll(c, JSON.stringify({ v: 1, lists: { other: new Date().toISOString() } }));
    expect(recordsOf(inc)).toHaveLength(6);
  });
});

describe('mailchimp connector: push', () => {
  it('pushes 1200 denials in ceil(1200/500) = 3 bulk calls', async () => {
    const { sb, c } = await setup();
    sb.seed(Array.from({ length: 1200 }, (_, i) => person(`p${i}@example.com`, { subscribedAt: '2024-01-01T00:00:00.000Z' })));
    const recs = recordsOf(await pullAll(c, null));
    expect(recs).toHaveLength(1200);
    const changes = recs.map((r) => change(r, { op: 'set_consent', channel: 'email', purpose: '*', target: 'denied' }));
    sb.calls.reset();
    const results: PushResult[] = [];
    for (let i = 0; i < changes.length; i += c.limits.batchSize) results.push(...(await c.push(changes.slice(i, i + c.limits.batchSize))));
    // Every scope (email:*, newsletter, product_updates) of 500 members, times 10 full bulk calls.
    expect(c.limits.batchSize).toBe(500 * 3 * 10);
    expect(results.map((r) => r.key)).toEqual(changes.map((x) => x.key));
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(sb.calls.snapshot()).toEqual({ 'POST /3.0/lists/{list_id} 200': 3 });
    expect(recs.every((r) => memberOf(sb, r.subject)?.status === 'unsubscribed')).toBe(true);
    // Idempotent: unsubscribing again is fine.
    expect((await c.push(changes.slice(0, 20))).every((r) => r.status === 'ok')).toBe(true);
  });

  it('a member\'s denial, suppression and purpose changes go in one bulk item', async () => {
    const { sb, c } = await setup();
    seedBasics(sb);
    const recs = recordsOf(await pullAll(c, null));
    const exp = recs.find((r) => r.subject === EXPLICIT) as RecordSnapshot;
    const imp = recs.find((r) => r.subject === IMPORTED) as RecordSnapshot;
    const changes = [
      change(exp, { op: 'set_consent', channel: 'email', purpose: 'newsletter', target: 'denied' }),
      change(exp, { op: 'set_consent', channel: 'email', purpose: 'product_updates', target: 'granted' }),
      change(imp, { op: 'suppress', channel: 'email', purpose: '*', target: null }),
    ];
    sb.calls.reset();
    const results = await c.push(changes);
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(sb.calls.snapshot()).toEqual({ 'POST /3.0/lists/{list_id} 200': 1 });
    expect(memberOf(sb, EXPLICIT)).toMatchObject({ status: 'subscribed', permissions: { [PERMS.newsletter]: false, [PERMS.product_updates]: true } });
    expect(memberOf(sb, IMPORTED)?.status).toBe('unsubscribed');
  });

  it('no suppress echo: a pushed suppression / (email, *) denial returns the snapshot the next pull reads (email:* denied, suppressed)', async () => {
    const { sb, c } = await setup();
    const SUPPRESSED = 'bounced-elsewhere@example.com';
    const DENIED = 'denied@example.com';
    const granted = { subscribedAt: '2024-01-01T00:00:00.000Z', purposes: { newsletter: 'granted', product_updates: 'granted' } } as const;
    sb.seed([person(SUPPRESSED, granted), person(DENIED, granted)]);
    const before = recordsOf(await pullAll(c, null));
    const sup = before.find((r) => r.subject === SUPPRESSED) as RecordSnapshot;
    const den = before.find((r) => r.subject === DENIED) as RecordSnapshot;
    expect(sup.consent['email:*']).toBe('granted');
    // A hard bounce seen elsewhere: suppress only. A denial of (email, *) with a purpose denial.
    const suppress = change(sup, { op: 'suppress', channel: 'email', purpose: '*', target: null });
    const wide = change(den, { op: 'set_consent', channel: 'email', purpose: '*', target: 'denied' });
    const purpose = change(den, { op: 'set_consent', channel: 'email', purpose: 'newsletter', target: 'denied' });
    const results = await c.push([suppress, wide, purpose]);
    expect(results.map((r) => r.status)).toEqual(['ok', 'ok', 'ok']);
    const snap = (key: string): RecordSnapshot => {
      const r = results.find((x) => x.key === key);
      if (r?.status !== 'ok' || r.snapshot === undefined) throw new Error(`no snapshot for ${key}`);
      return r.snapshot;
    };
    expect(snap(suppress.key)).toEqual({ connectorId: sup.connectorId, recordId: sup.recordId, subject: SUPPRESSED, consent: { 'email:*': 'denied' }, suppressed: { email: true }, meta: sup.meta });
    expect(snap(wide.key)).toEqual({ connectorId: den.connectorId, recordId: den.recordId, subject: DENIED, consent: { 'email:*': 'denied', 'email:newsletter': 'denied' }, suppressed: { email: true }, meta: den.meta });
    // One member, one snapshot: both changes of DENIED carry it (the engine may apply them in any order).
    expect(snap(purpose.key)).toEqual(snap(wide.key));

    // The next pull: Mailchimp says unsubscribed, an explicit (email, *) denial ...
    const pages = await pullAll(c, null);
    const after = recordsOf(pages);
    const obs = obsOf(pages);
    for (const [subject, key] of [[SUPPRESSED, suppress.key], [DENIED, wide.key]] as const) {
      expect(obs.filter((o) => o.subject === subject && o.purpose === '*')).toEqual([expect.objectContaining({ kind: 'consent', state: 'denied', strength: 'explicit' })]);
      const pulled = after.find((r) => r.subject === subject) as RecordSnapshot;
      // ... which the snapshot stored after the push (the engine re-applies the change to it)
      // already says, for every scope it names: the pulled denial is an echo, not news.
      const stored = applyChangeToSnapshot(snap(key), key === suppress.key ? suppress : wide);
      expect(stored.consent['email:*']).toBe('denied');
      expect(stored.suppressed).toEqual(pulled.suppressed);
      for (const [scope, state] of Object.entries(stored.consent)) expect(pulled.consent[scope], scope).toBe(state);
    }
    // Without it the engine would store the old snapshot plus the suppression, still granting
    // (email, *): the pulled denial would be news (a hard bounce turned into an opt-out).
    expect(applyChangeToSnapshot(sup, suppress).consent['email:*']).toBe('granted');
  });

  it('a grant of (email, *) to an unsubscribed member fails with the compliance reason when resubscribe is never', async () => {
    const { sb, c } = await setup();
    seedBasics(sb);
    const rec = recordsOf(await pullAll(c, null)).find((r) => r.subject === OPTEDOUT) as RecordSnapshot;
    sb.calls.reset();
    const [r] = await c.push([change(rec, { op: 'set_consent', channel: 'email', purpose: '*', target: 'granted' })]);
    expect(r).toMatchObject({ status: 'failed', reason: COMPLIANCE_REASON, code: 'COMPLIANCE_STATE' });
    expect(classifyError(r).retry).toBe(false);
    expect(sb.calls.total).toBe(0);
    expect(memberOf(sb, OPTEDOUT)?.status).toBe('unsubscribed');
  });

  it('the sandbox\'s own compliance answer (a direct subscribe) maps to failed with Mailchimp\'s message', async () => {
    const { sb, c } = await setup();
    seedBasics(sb);
    // A bulk item that asks for subscribed: what a naive connector would send.
    const { bulkUpsert } = await import('../../connectors/mailchimp/bulk.js');
    const { McHttp } = await import('../../connectors/mailchimp/http.js');
    const http = new McHttp(settingsFor(sb), {});
    const out = await bulkUpsert(http, LIST, [{ email_address: OPTEDOUT, status: 'subscribed' }]);
    expect(out.get(OPTEDOUT)).toMatchObject({ status: 'failed', code: 'COMPLIANCE_STATE', reason: expect.stringContaining('Member In Compliance State') });
    await c.close?.();
  });

  it('with resubscribe pending, a grant sets the member pending (confirmation email) once', async () => {
    const { sb, c } = await setup({}, { resubscribe: 'pending' });
    seedBasics(sb);
    const recs = recordsOf(await pullAll(c, null));
    const out = recs.find((r) => r.subject === OPTEDOUT) as RecordSnapshot;
    const grant = change(out, { op: 'set_consent', channel: 'email', purpose: '*', target: 'granted' });
    sb.calls.reset();
    expect(await c.push([grant])).toEqual([{ key: grant.key, status: 'ok' }]);
    expect(memberOf(sb, OPTEDOUT)?.status).toBe('pending');
    expect(sb.calls.snapshot()).toEqual({ 'GET /3.0/lists/{list_id}/members/{subscriber_hash} 200': 1, 'PUT /3.0/lists/{list_id}/members/{subscriber_hash} 200': 1 });
    // Again (a stale plan): the member is pending already, no second confirmation.
    sb.calls.reset();
    expect((await c.push([grant]))[0]?.status).toBe('ok');
    expect(sb.calls.snapshot()).toEqual({ 'GET /3.0/lists/{list_id}/members/{subscriber_hash} 200': 1 });
    // A subscribed member is never downgraded to pending.
    const sub = recs.find((r) => r.subject === EXPLICIT) as RecordSnapshot;
    expect((await c.push([change(sub, { op: 'set_consent', channel: 'email', purpose: '*', target: 'granted' })]))[0]?.status).toBe('ok');
    expect(memberOf(sb, EXPLICIT)?.status).toBe('subscribed');
  });

  it('partial failure: per-member errors map to each change key (retry for transient ones), the retries then succeed', async () => {
    const { sb, c } = await setup();
    sb.seed(Array.from({ length: 60 }, (_, i) => person(`pf${i}@example.com`)));
    const recs = recordsOf(await pullAll(c, null));
    const changes = recs.map((r) => change(r, { op: 'set_consent', channel: 'email', purpose: '*', target: 'denied' }));
    sb.faults.set({ partialFailureRate: 0.4 });
    const results = await c.push(changes);
    sb.faults.set({ partialFailureRate: 0 });
    expect(results.map((r) => r.key)).toEqual(changes.map((x) => x.key));
    const ok = results.filter((r) => r.status === 'ok');
    const retry = results.filter((r) => r.status === 'retry');
    expect(ok.length).toBeGreaterThan(0);
    expect(retry.length).toBeGreaterThan(0);
    expect(ok.length + retry.length).toBe(changes.length);
    const subjectOf = new Map(changes.map((x) => [x.key, x.subject] as const));
    for (const r of ok) expect(memberOf(sb, subjectOf.get(r.key) as string)?.status).toBe('unsubscribed');
    for (const r of retry) expect(memberOf(sb, subjectOf.get(r.key) as string)?.status).toBe('subscribed');
    const again = await pushWithRetries(c, changes.filter((x) => retry.some((r) => r.key === x.key)));
    expect(again.failed).toEqual([]);
    expect(again.ok.size).toBe(retry.length);
  });

  it('30% injected 429 / 5xx through a retry loop: every change applied, each ok exactly once', async () => {
    const { sb, c } = await setup({ faultsSeed: 7 });
    sb.seed(Array.from({ length: 700 }, (_, i) => person(`st${i}@example.com`)));
    const recs = recordsOf(await pullAll(c, null));
    // Many small pushes so that many calls draw a fault.
    const changes = recs.map((r, i) =>
      i % 3 === 0 ? change(r, { op: 'suppress', channel: 'email', purpose: '*', target: null }) : change(r, { op: 'set_consent', channel: 'email', purpose: i % 3 === 1 ? '*' : 'newsletter', target: 'denied' }),
    );
    sb.faults.set({ rateLimitRate: 0.2, errorRate: 0.1 });
    let run: Awaited<ReturnType<typeof pushWithRetries>>;
    try {
      const parts = [];
      for (let i = 0; i < changes.length; i += 50) parts.push(pushWithRetries(c, changes.slice(i, i + 50)));
      const runs = await Promise.all(parts);
      run = { ok: new Map(runs.flatMap((r) => [...r.ok])), failed: runs.flatMap((r) => r.failed), rounds: Math.max(...runs.map((r) => r.rounds)) };
    } finally {
      sb.faults.set({ rateLimitRate: 0, errorRate: 0 });
    }
    expect(run.failed).toEqual([]);
    expect(run.rounds).toBeGreaterThan(1);
    expect(run.ok.size).toBe(changes.length);
    expect([...run.ok.values()].every((n) => n === 1)).toBe(true);
    const snap = sb.calls.snapshot();
    expect((snap['POST /3.0/lists/{list_id} 429'] ?? 0) + (snap['POST /3.0/lists/{list_id} 500'] ?? 0)).toBeGreaterThan(0);
    changes.forEach((x, i) => {
      const m = memberOf(sb, x.subject);
      if (i % 3 === 2) expect(m?.permissions[PERMS.newsletter]).toBe(false);
      else expect(m?.status).toBe('unsubscribed');
    });
    expect(recordsOf(await pullAll(c, null))).toHaveLength(700);
  });

  it('never exceeds 10 connections: parallel pushes with maxConnections 10 get no 429 (and 20 would)', async () => {
    const { sb, c } = await setup({ maxConnections: 10 });
    sb.seed(Array.from({ length: 120 }, (_, i) => person(`cc${i}@example.com`)));
    const recs = recordsOf(await pullAll(c, null));
    sb.faults.set({ latencyMs: 25 });
    sb.calls.reset();
    // 40 erasures (one call each) in 4 parallel pushes, plus 4 pushes of single-member bulk calls.
    const erase = recs.slice(0, 40).map((r) => change(r, { op: 'erase', channel: 'email', purpose: '*', target: null }));
    const deny = recs.slice(40, 44).map((r) => change(r, { op: 'set_consent', channel: 'email', purpose: '*', target: 'denied' }));
    const results = (await Promise.all([...[0, 10, 20, 30].map((i) => c.push(erase.slice(i, i + 10))), ...deny.map((d) => c.push([d]))])).flat();
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    expect(Object.keys(sb.calls.snapshot()).filter((k) => k.endsWith(' 429'))).toEqual([]);
    expect(sb.calls.total).toBe(44);

    // Control: the same load with 20 connections (bypassing the schema's max) is refused by the sandbox.
    const greedy = createMailchimpConnector({ ...settingsFor(sb), maxConnections: 20 }, testCtx());
    const more = recs.slice(60, 100).map((r) => change(r, { op: 'erase', channel: 'email', purpose: '*', target: null }));
    sb.calls.reset();
    const greedyResults = await greedy.push(more);
    expect(greedyResults.some((r) => r.status === 'retry' && /429/.test(r.reason))).toBe(true);
    await greedy.close?.();
  });

  it('erase: delete-permanent; again is harmless; a later denial of the forgotten address is ok', async () => {
    const { sb, c } = await setup();
    seedBasics(sb);
    const rec = recordsOf(await pullAll(c, null)).find((r) => r.subject === IMPORTED) as RecordSnapshot;
    const erase = change(rec, { op: 'erase', channel: 'email', purpose: '*', target: null });
    sb.calls.reset();
    expect(await c.push([erase])).toEqual([{ key: erase.key, status: 'ok' }]);
    expect(sb.calls.snapshot()).toEqual({ 'POST /3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent 204': 1 });
    expect(memberOf(sb, IMPORTED)).toBeUndefined();
    expect(sb.state.lists.get(LIST)?.forgotten.has(md5(IMPORTED))).toBe(true);
    expect(await c.push([erase])).toEqual([{ key: erase.key, status: 'ok' }]);
    const deny = change(rec, { op: 'set_consent', channel: 'email', purpose: '*', target: 'denied' });
    expect((await c.push([deny]))[0]?.status).toBe('ok');
    expect(recordsOf(await pullAll(c, null)).some((r) => r.subject === IMPORTED)).toBe(false);
  });

  it('bare addresses (suppressUnknownAddresses): denials create the contact unsubscribed; purpose-only ones and erasures do nothing', async () => {
    const { sb, c } = await setup({}, { suppressUnknownAddresses: true });
    expect(c.capabilities.acceptsUnknownAddresses).toBe(true);
    const bare = (subject: string, body: Pick<Change, 'op' | 'channel' | 'purpose' | 'target'>): Change =>
      change({ connectorId: 'mailchimp', recordId: subject, subject, consent: {}, suppressed: {}, meta: {} }, body);
    const changes = [
      bare('never@example.com', { op: 'set_consent', channel: 'email', purpose: '*', target: 'denied' }),
      bare('bounced-elsewhere@example.com', { op: 'suppress', channel: 'email', purpose: '*', target: null }),
      bare('purpose@example.com', { op: 'set_consent', channel: 'email', purpose: 'newsletter', target: 'denied' }),
      bare('forget@example.com', { op: 'erase', channel: 'email', purpose: '*', target: null }),
    ];
    sb.calls.reset();
    expect((await c.push(changes)).map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(sb.calls.total).toBe(1);
    expect(memberOf(sb, 'never@example.com')?.status).toBe('unsubscribed');
    expect(memberOf(sb, 'bounced-elsewhere@example.com')?.status).toBe('unsubscribed');
    expect(memberOf(sb, 'purpose@example.com')).toBeUndefined();
    expect(memberOf(sb, 'forget@example.com')).toBeUndefined();
  });

  it('capabilities: (email, *) and every mapped purpose, email suppression, grants, erase', async () => {
    const { c } = await setup();
    expect(c.capabilities).toEqual({
      consent: [
        { channel: 'email', purpose: '*' },
        { channel: 'email', purpose: 'newsletter' },
        { channel: 'email', purpose: 'product_updates' },
      ],
      suppression: ['email'],
      pushGrants: true,
      erase: true,
      acceptsUnknownAddresses: false,
    });
  });
});

describe('mailchimp connector: webhook', () => {
  const data = (email: string, extra: WebhookData = {}): WebhookData => ({ id: 'x1', list_id: LIST, email, email_type: 'html', ip_opt: '', web_id: '1', ...extra });

  async function rejection(c: Connector, req: WebhookRequest): Promise<WebhookRejection> {
    try {
      await c.webhook?.verify(req);
    } catch (e) {
      expect(e).toBeInstanceOf(WebhookRejection);
      return e as WebhookRejection;
    }
    throw new Error('expected a rejection');
  }

  it('token in the query or as the last path segment; wrong or missing token is 401; GET validation gives no events', async () => {
    const { c } = await setup();
    const hook = c.webhook;
    expect(hook).toBeDefined();
    expect(await hook?.verify(webhookRequest('unsubscribe', data('a@example.com', { action: 'unsub', reason: 'manual' })))).toHaveLength(1);
    expect(await hook?.verify(webhookRequest('unsubscribe', data('a@example.com'), { url: `https://h/webhooks/mailchimp/${TOKEN}` }))).toHaveLength(1);
    const wrong = await rejection(c, webhookRequest('unsubscribe', data('a@example.com'), { token: 'tok-0123456789abcdef0124' }));
    expect(wrong).toMatchObject({ reason: 'unauthorized', status: 401 });
    expect(await rejection(c, webhookRequest('unsubscribe', data('a@example.com'), { url: 'https://h/webhooks/mailchimp' }))).toMatchObject({ status: 401 });
    expect(await rejection(c, { ...webhookRequest('unsubscribe', data('a@example.com'), { token: 'short' }), method: 'GET', rawBody: Buffer.alloc(0) })).toMatchObject({ status: 401 });
    expect(await hook?.verify({ ...webhookRequest('unsubscribe', data('a@example.com')), method: 'GET', rawBody: Buffer.alloc(0) })).toEqual([]);
  });

  it('malformed bodies are 400; a list consentd does not manage and campaign events give no events', async () => {
    const { c } = await setup();
    const req = webhookRequest('unsubscribe', data('a@example.com'));
    for (const body of ['', 'type=nonsense&fired_at=2025-06-01+12%3A00%3A00&data[email]=a%40example.com&data[list_id]=a1b2c3d4e5', 'type=unsubscribe&fired_at=2025-06-01+12%3A00%3A00&data[list_id]=a1b2c3d4e5', 'type=unsubscribe&fired_at=yesterday&data[email]=a%40example.com&data[list_id]=a1b2c3d4e5', '{"json":true}']) {
      expect(await rejection(c, { ...req, rawBody: Buffer.from(body) }), body).toMatchObject({ reason: 'malformed', status: 400 });
    }
    expect(await c.webhook?.verify(webhookRequest('unsubscribe', { ...data('a@example.com'), list_id: 'otherlist' }))).toEqual([]);
    expect(await c.webhook?.verify(webhookRequest('campaign', { id: 'c1', subject: 'Hi', status: 'sent', reason: '', list_id: LIST }))).toEqual([]);
  });

  it('event ids are stable for a repeated delivery and differ for another event', async () => {
    const { c } = await setup();
    const req = webhookRequest('unsubscribe', data('A@Example.com', { action: 'unsub', reason: 'manual' }));
    const a = await c.webhook?.verify(req);
    const b = await c.webhook?.verify({ ...req, receivedAt: new Date(Date.now() + 60_000) });
    expect(a?.[0]?.id).toBeDefined();
    expect(b?.map((e) => e.id)).toEqual(a?.map((e) => e.id));
    const later = await c.webhook?.verify(webhookRequest('unsubscribe', data('a@example.com', { action: 'unsub', reason: 'manual' }), { at: Date.parse('2025-06-01T12:00:01Z') }));
    expect(later?.[0]?.id).not.toBe(a?.[0]?.id);
    expect(a?.[0]).toMatchObject({ type: 'unsubscribe', occurredAt: '2025-06-01T12:00:00.000Z' });
  });

  it('translates unsubscribe (manual, abuse, delete), cleaned (hard, abuse) and subscribe', async () => {
    const { c } = await setup();
    const hook = c.webhook;
    if (!hook) throw new Error('no webhook');
    const one = async (type: WebhookEventType, d: WebhookData): Promise<ObservationInput[]> => (await hook.toObservations(await hook.verify(webhookRequest(type, d)))).observations;
    const at = '2025-06-01T12:00:00.000Z';
    expect(await one('unsubscribe', data('m@example.com', { action: 'unsub', reason: 'manual' }))).toEqual([
      expect.objectContaining({ subject: 'm@example.com', kind: 'consent', purpose: '*', state: 'denied', strength: 'explicit', how: 'webhook', statedAt: at, source: 'mailchimp' }),
    ]);
    expect(await one('unsubscribe', data('s@example.com', { action: 'unsub', reason: 'abuse' }))).toEqual([expect.objectContaining({ kind: 'suppression', reason: 'complaint', state: 'denied' })]);
    expect(await one('unsubscribe', data('d@example.com', { action: 'delete', reason: 'manual' }))).toEqual([]);
    expect(await one('cleaned', { list_id: LIST, campaign_id: '', reason: 'hard', email: 'b@example.com' })).toEqual([expect.objectContaining({ kind: 'suppression', reason: 'hard_bounce', statedAt: at })]);
    expect(await one('cleaned', { list_id: LIST, campaign_id: '', reason: 'abuse', email: 'b@example.com' })).toEqual([expect.objectContaining({ kind: 'suppression', reason: 'complaint' })]);
    expect(await one('subscribe', data('n@example.com', { ip_opt: '203.0.113.9' }))).toEqual([
      expect.objectContaining({ kind: 'consent', purpose: '*', state: 'granted', strength: 'explicit', statedAt: at, evidence: expect.stringContaining('mailchimp subscribe webhook') }),
    ]);
    expect(await one('subscribe', data('i@example.com'))).toEqual([expect.objectContaining({ state: 'granted', strength: 'implicit' })]);
    expect(await one('profile', data('p@example.com'))).toEqual([]);
  });

  it('real deliveries: the sandbox validates the URL with GET, then posts unsubscribe and upemail; the new address of an unsubscribed member is denied', async () => {
    const received: WebhookRequest[] = [];
    const { sb, c } = await setup();
    const listener = await startHttpServer(async (req, res) => {
      const rawBody = await readBody(req);
      const wr: WebhookRequest = { method: req.method ?? 'POST', url: `http://127.0.0.1${req.url ?? '/'}`, headers: req.headers, rawBody, receivedAt: new Date() };
      try {
        await c.webhook?.verify(wr);
        if (wr.method === 'POST') received.push(wr);
        res.writeHead(200).end('{"ok":true}');
      } catch (e) {
        res.writeHead(e instanceof WebhookRejection ? e.status : 500).end();
      }
    });
    cleanup.push(() => listener.close());
    seedBasics(sb);
    const control = async (action: string, body: unknown): Promise<Response> =>
      fetch(`${sb.rootUrl}/__sandbox/actions/${action}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    // A wrong token fails Mailchimp's validation GET; the right one passes.
    expect((await control('create-webhook', { url: `${listener.url}/webhooks/mailchimp?token=wrong`, sources: ['user', 'admin'] })).status).toBe(400);
    expect((await control('create-webhook', { url: `${listener.url}/webhooks/mailchimp?token=${TOKEN}`, sources: ['user', 'admin'] })).status).toBe(200);

    expect((await control('unsubscribe', { email: EXPLICIT })).status).toBe(200);
    expect((await control('change-email', { old: OPTEDOUT, new: 'New.Address@Example.com' })).status).toBe(200);
    await sb.webhooks.idle();
    expect(received.map((r) => new URLSearchParams(r.rawBody.toString()).get('type'))).toEqual(['unsubscribe', 'upemail']);

    const hook = c.webhook;
    if (!hook) throw new Error('no webhook');
    const unsub = await hook.toObservations(await hook.verify(received[0] as WebhookRequest));
    expect(unsub.observations).toEqual([expect.objectContaining({ subject: EXPLICIT, state: 'denied', purpose: '*' })]);
    const up = await hook.toObservations(await hook.verify(received[1] as WebhookRequest));
    expect(up.observations).toEqual([expect.objectContaining({ subject: 'new.address@example.com', kind: 'consent', state: 'denied', purpose: '*', how: 'webhook', evidence: expect.stringContaining(OPTEDOUT) })]);
    expect(up.records).toEqual([expect.objectContaining({ recordId: `${LIST}:${md5('new.address@example.com')}`, subject: 'new.address@example.com', suppressed: { email: true } })]);

    // An address change of a subscribed member states nothing by itself.
    await control('change-email', { old: IMPORTED, new: 'moved@example.com' });
    await sb.webhooks.idle();
    const moved = await hook.toObservations(await hook.verify(received[2] as WebhookRequest));
    expect(moved.observations).toEqual([]);
    expect(moved.records?.[0]?.subject).toBe('moved@example.com');
  });
});

describe('mailchimp connector: check', () => {
  it('reports lists, counts, GDPR permissions, mapped purposes and the webhook sources; a bad key fails', async () => {
    const { sb, c } = await setup({ webhookUrl: `http://127.0.0.1:9/webhooks/mailchimp?token=${TOKEN}`, webhookSources: ['user', 'admin'] });
    seedBasics(sb);
    const r = await c.check();
    expect(r.ok, r.details.join('\n')).toBe(true);
    const text = r.details.join('\n');
    expect(text).toContain('"Consentd Newsletter"');
    expect(text).toContain('GDPR marketing permissions on');
    expect(text).toContain(`${PERMS.newsletter} (marketing permission) -> newsletter`);
    expect(text).toContain('excludes source "api"');
    const bad = createMailchimpConnector({ ...settingsFor(sb), apiKey: 'nope-us14' }, testCtx());
    const br = await bad.check();
    expect(br.ok).toBe(false);
    expect(br.details.join('\n')).toMatch(/API Key Invalid/);
    expect(br.details.join('\n')).not.toContain(sb.credentials.apiKey);
  });

  it('flags purpose ids the list does not have', async () => {
    const { sb } = await setup();
    seedBasics(sb);
    const c = createMailchimpConnector(settingsFor(sb, { lists: [{ id: LIST, purposes: { nosuchid: 'events' } }] }), testCtx());
    const r = await c.check();
    expect(r.ok).toBe(false);
    expect(r.details.join('\n')).toContain('nosuchid');
  });
});
