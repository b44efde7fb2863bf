import { mkdirSync, readFileSync } from 'node:fs';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/loader.js';
import { BUILTIN_CONNECTORS, createRegistry } from '../../src/connectors/registry.js';
import { startDaemon, type RunningDaemon } from '../../src/daemon/daemon.js';
import { createEngineHooks, observationsByEvent, type EngineHooks } from '../../src/daemon/hooks.js';
import { createEngine } from '../../src/engine/context.js';
import { toObservation } from '../../src/model/index.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { workspace, type Workspace } from '../helpers/cli.js';
import { signTestBody, TEST_CONNECTORS, TEST_SIGNATURE_HEADER } from '../helpers/test-connectors.js';

/* The daemon in-process with the real engine hooks: csv lists + the test webhook connector. */

const HEADER = 'email,channel,purpose,state,stated_at,evidence\n';
const ADMIN = 'admin-token-0123456789abcdef';
let ws: Workspace | undefined;
let daemon: RunningDaemon | undefined;
let hooks: EngineHooks | undefined;
afterEach(async () => {
  await daemon?.shutdown('test');
  hooks?.close();
  ws?.remove();
  daemon = undefined;
  ws = undefined;
});

async function start(): Promise<{ url: string; d: RunningDaemon; h: EngineHooks; w: Workspace }> {
  const w = workspace('consentd-daemon-');
  ws = w;
  w.write('crm.csv', HEADER + 'known@example.com,email,newsletter,subscribed,2024-01-01,form 12\n');
  w.write('esp.csv', HEADER);
  const registry = createRegistry([...BUILTIN_CONNECTORS, ...TEST_CONNECTORS]);
  const text = [
    'salt: "test-salt-0123456789abcdef"',
    'store: { path: ./data/c.db }',
    'purposes: [{ id: newsletter }]',
    'schedule: { full: "0 3 * * *", incremental: null, reconfirm: null }',
    `http: { host: 127.0.0.1, port: 0, adminTokens: ["${ADMIN}"] }`,
    'outbox: { linger: 5ms }',
    'connectors:',
    '  - { id: crm, kind: csv, grants: true, settings: { path: crm.csv, purposes: { newsletter: newsletter } } }',
    '  - { id: esp, kind: csv, settings: { path: esp.csv } }',
    '  - { id: hook, kind: testhook, settings: { secret: "hook-secret-123" } }',
  ].join('\n');
  const config = parseConfig(text, { file: w.path('c.yaml'), registry, env: {} });
  const logger = pino({ level: 'silent' });
  mkdirSync(w.path('data'), { recursive: true });
  const store = openSqliteStore(config.store.path, { salt: config.salt });
  const purposes = config.purposes.map((p) => p.id);
  const connectors = config.connectors.map((c) => registry.create(c, { purposes, logger, baseDir: config.baseDir }));
  const engine = createEngine({ config, store, connectors, logger });
  const d = await startDaemon({
    config,
    logger,
    connectors: new Map(connectors.map((c) => [c.id, c])),
    hooks: (controls) => (hooks = createEngineHooks(engine, controls, { checkIntervalMs: 0 })),
    store,
    handleSignals: false,
  });
  daemon = d;
  await d.catchUp;
  return { url: d.address, d, h: hooks as EngineHooks, w };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('daemon with the engine hooks', () => {
  it('catch-up full run, webhook intake to every list, dedupe, admin API, readiness, metrics', async () => {
    const { url, d, h, w } = await start();
    // The catch-up full run pulled the lists: the known grant is in the store, lastSuccess is set.
    expect(await h.lastSuccess('full')).toBeInstanceOf(Date);
    expect(await h.lastSuccess('reconfirm')).toBeNull();

    const body = JSON.stringify([{ id: 'e1', email: 'Known@Example.com', at: '2025-03-01T00:00:00Z' }]);
    const post = (): Promise<Response> =>
      fetch(`${url}/webhooks/hook`, { method: 'POST', headers: { 'content-type': 'application/json', [TEST_SIGNATURE_HEADER]: signTestBody('hook-secret-123', body) }, body });
    const first = await post();
    expect(await first.json()).toEqual({ accepted: 1, duplicates: 0 });
    const again = await post();
    expect(await again.json()).toEqual({ accepted: 0, duplicates: 1 });

    // The opt-out reached both lists: crm's grant rewritten, esp got a denial row.
    await until(() => /known@example\.com,email,\*,unsubscribed/.test(readFileSync(w.path('esp.csv'), 'utf8')) && !/subscribed,2024/.test(readFileSync(w.path('crm.csv'), 'utf8').replace(/unsubscribed/g, '')));
    await h.idle();

    const opt = await fetch(`${url}/v1/optouts`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ email: 'new@example.com' }) });
    expect(opt.status).toBe(202);
    expect(await opt.json()).toMatchObject({ status: 'accepted', observations: 1 });
    await until(() => readFileSync(w.path('crm.csv'), 'utf8').includes('new@example.com,email,*,unsubscribed'));

    const bad = await fetch(`${url}/v1/optouts`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ email: 'new@example.com', purpose: 'nope' }) });
    expect(bad.status).toBe(400);

    const explain = await fetch(`${url}/v1/subjects/known%40example.com`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(explain.status).toBe(200);
    const ex = (await explain.json()) as { explanation: { permissions: Array<{ purpose: string; state: string }> } };
    expect(ex.explanation.permissions.find((p) => p.purpose === '*')?.state).toBe('denied');
    expect((await fetch(`${url}/v1/subjects/nobody%40example.com`, { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(404);

    await new Promise((r) => setTimeout(r, 50));
    const ready = (await (await fetch(`${url}/readyz`)).json()) as { status: string; checks: Record<string, { ok: boolean }> };
    expect(ready.status).toBe('ready');
    expect(Object.keys(ready.checks).sort()).toEqual(['connector:crm', 'connector:esp', 'connector:hook', 'store']);

    const metrics = await d.metrics.scrape();
    expect(metrics).toMatch(/consentd_pushes_total\{connector="esp",result="ok"\} [1-9]/);
    expect(metrics).toMatch(/consentd_propagation_seconds_count\{from="received"\} [1-9]/);
    expect(metrics).toMatch(/consentd_drift_found_total\{connector="crm"\} [1-9]/);
    // Drains write no run rows; the catch-up wrote pull and reconcile runs only.
    const runs = (await (await fetch(`${url}/v1/runs`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { runs: Array<{ kind: string }> };
    expect(runs.runs.filter((r) => r.kind === 'apply')).toEqual([]);
  });

  it('a privacy deletion that names only a record (the platform already deleted it) erases the person it belonged to', async () => {
    const { url, h, w } = await start();
    const send = (events: unknown[]): Promise<Response> => {
      const body = JSON.stringify(events);
      return fetch(`${url}/webhooks/hook`, { method: 'POST', headers: { 'content-type': 'application/json', [TEST_SIGNATURE_HEADER]: signTestBody('hook-secret-123', body) }, body });
    };
    // The hook system holds known@example.com (its record id is the address).
    expect((await send([{ id: 'u1', email: 'known@example.com', at: '2025-03-01T00:00:00Z' }])).status).toBe(200);
    await h.idle();
    // Later it deletes the person and says so by record id only.
    expect(await (await send([{ id: 'f1', forgetRecord: 'known@example.com', at: '2025-04-01T00:00:00Z' }])).json()).toEqual({ accepted: 1, duplicates: 0 });
    await until(() => !readFileSync(w.path('crm.csv'), 'utf8').includes('known@example.com'));
    await h.idle();
    // An unknown record is logged and nothing is invented.
    expect((await send([{ id: 'f2', forgetRecord: 'never-seen', at: '2025-04-01T00:00:00Z' }])).status).toBe(200);
  });

  it('an address change carries the denials over to the new address, never the grants', async () => {
    const { url, h, w } = await start();
    const send = (events: unknown[]): Promise<Response> => {
      const body = JSON.stringify(events);
      return fetch(`${url}/webhooks/hook`, { method: 'POST', headers: { 'content-type': 'application/json', [TEST_SIGNATURE_HEADER]: signTestBody('hook-secret-123', body) }, body });
    };
    expect((await send([{ id: 'u1', email: 'old@example.com', at: '2025-03-01T00:00:00Z' }])).status).toBe(200);
    await h.idle();
    expect((await send([{ id: 'm1', email: 'New@Example.com', movedFrom: 'old@example.com', at: '2025-04-01T00:00:00Z' }])).status).toBe(200);
    // The new address is opted out in the lists too; the statement keeps its own time.
    await until(() => /new@example\.com,email,\*,unsubscribed/.test(readFileSync(w.path('esp.csv'), 'utf8')));
    await h.idle();
    // known@example.com's grant in crm is not carried anywhere (it never moved).
    expect(readFileSync(w.path('esp.csv'), 'utf8')).not.toContain('new@example.com,email,newsletter,subscribed');
  });

  it('matches observations to their events by reference; unclaimed ones go to every event', () => {
    const o = (reference: string | null) =>
      toObservation(
        { subject: 'a@example.com', source: 'x', recordId: null, kind: 'consent', channel: 'email', purpose: '*', state: 'denied', strength: 'explicit', statedAt: null, how: 'webhook', reference, evidence: null, reason: null },
        '2025-01-01T00:00:00.000Z',
      );
    const events = [
      { id: '1', type: 't', occurredAt: null, payload: null },
      { id: 'b', type: 't', occurredAt: null, payload: null },
    ];
    const m = observationsByEvent(events, [o('event:1'), o('b'), o(null), o('msg:zz:b')]);
    expect(m.get('1')?.map((x) => x.reference)).toEqual(['event:1', null]);
    expect(m.get('b')?.map((x) => x.reference)).toEqual(['b', 'msg:zz:b', null]);
  });
});
