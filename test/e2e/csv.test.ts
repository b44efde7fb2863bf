import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/loader.js';
import { defaultRegistry } from '../../src/connectors/registry.js';
import type { PullReject } from '../../src/connectors/contract.js';
import { applyAll, createEngine, planReport, pullConnector, reconcile, type Engine } from '../../src/engine/index.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/store.js';
import { ROOT, csvConfig, workspace, type Workspace } from '../helpers/cli.js';

const HEADER = 'email,channel,purpose,state,stated_at,evidence\n';

let ws: Workspace | undefined;
let store: Store | undefined;
afterEach(async () => {
  await store?.close();
  store = undefined;
  ws?.remove();
  ws = undefined;
});

function open(w: Workspace): Engine {
  const registry = defaultRegistry();
  const config = loadConfig(w.write('consentd.yaml', csvConfig({ connectors: [{ id: 'crm', file: 'crm.csv', grants: true }, { id: 'esp', file: 'esp.csv', purposes: { news: 'newsletter' } }], store: ':memory:' })), {
    env: {},
    registry,
  });
  const logger = pino({ level: 'silent' });
  store = openSqliteStore(':memory:', { salt: config.salt });
  const connectors = config.connectors.map((c) => registry.create(c, { purposes: config.purposes.map((p) => p.id), logger, baseDir: config.baseDir }));
  return createEngine({ config, store, connectors, logger });
}

async function pullAll(engine: Engine, rejects: PullReject[] = []): Promise<void> {
  for (const c of engine.connectors) await pullConnector(engine, c, { full: false, onReject: (r) => void rejects.push(r) });
}

/** Data rows of a CSV file (header dropped). */
function rows(w: Workspace, name: string): string[][] {
  return readFileSync(w.path(name), 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => l.split(','));
}

describe('e2e: two CSV systems', () => {
  it('that disagree converge after apply, and a second plan is empty', async () => {
    ws = workspace();
    ws.write(
      'crm.csv',
      HEADER +
        'alice@example.com,email,newsletter,subscribed,2024-01-01,web form 17\n' +
        'bob@example.com,email,*,unsubscribed,2024-02-01,\n' +
        'carol@example.com,email,newsletter,subscribed,2024-05-01,double opt-in 991\n',
    );
    ws.write(
      'esp.csv',
      HEADER +
        'alice@example.com,email,news,unsubscribed,2024-03-01,\n' + // later denial: wins over the crm grant
        'bob@example.com,email,news,subscribed,2023-01-01,\n' + // earlier, implicit grant: bob stays out
        'carol@example.com,email,news,unsubscribed,2024-01-01,\n' + // earlier denial: carol's later explicit grant wins
        'dave@example.com,email,*,bounced,2024-01-05,\n', // suppression shared with crm
    );
    const engine = open(ws);
    await pullAll(engine);
    const before = await planReport(engine);
    expect(before.changes).toBeGreaterThan(0);

    const rec = await reconcile(engine);
    expect(rec.changes).toBe(before.changes);
    const applied = await applyAll(engine, engine.connectors);
    const totals = [...applied.values()].reduce((a, s) => ({ ok: a.ok + s.ok, dead: a.dead + s.dead }), { ok: 0, dead: 0 });
    expect(totals).toEqual({ ok: rec.changes, dead: 0 });

    const crm = rows(ws, 'crm.csv');
    const esp = rows(ws, 'esp.csv');
    const state = (r: string[][], email: string, purpose: string): string | undefined => r.find((x) => x[0] === email && x[2] === purpose)?.[3];
    expect(state(crm, 'alice@example.com', 'newsletter')).toBe('unsubscribed');
    expect(state(crm, 'bob@example.com', 'newsletter')).toBe('unsubscribed');
    expect(state(esp, 'bob@example.com', 'news')).toBe('unsubscribed');
    expect(state(esp, 'carol@example.com', 'news')).toBe('subscribed');
    expect(crm.some((x) => x[0] === 'dave@example.com' && x[5] === 'consentd:suppressed')).toBe(true);

    // A fresh pull of every system plans nothing (rule 10), and a second apply pushes nothing.
    await pullAll(engine);
    const after = await planReport(engine);
    expect(after.changes).toBe(0);
    expect((await reconcile(engine)).enqueued).toBe(0);
    const again = await applyAll(engine, engine.connectors);
    expect([...again.values()].every((s) => s.pushed === 0)).toBe(true);
  });

  it('reports a malformed row with file and line, skips it, and processes the rest', async () => {
    ws = workspace();
    ws.write('crm.csv', HEADER + 'alice@example.com,email,*,unsubscribed,2024-01-01,\nnot-an-address,email,*,unsubscribed,2024-01-01,\nbob@example.com,email,*,unsubscribed,2024-01-01,\n');
    ws.write('esp.csv', HEADER + 'alice@example.com,email,news,subscribed,2023-01-01,\nbob@example.com,email,news,subscribed,2023-01-01,\ncarl@example.com,email,news,teleported,2023-01-01,\n');
    const engine = open(ws);
    const rejects: PullReject[] = [];
    await pullAll(engine, rejects);
    expect(rejects).toHaveLength(2);
    expect(rejects[0]?.where).toBe(`${ws.path('crm.csv')}:3`);
    expect(rejects[0]?.reason).toMatch(/not-an-address/);
    expect(rejects[1]?.where).toBe(`${ws.path('esp.csv')}:4`);
    expect(rejects[1]?.reason).toMatch(/teleported/);

    const runs = await engine.store.listRuns(10);
    expect(runs.find((r) => r.connectorId === 'crm')?.stats['rejects']).toBe(1);

    await reconcile(engine);
    await applyAll(engine, engine.connectors);
    const esp = rows(ws, 'esp.csv');
    expect(esp.filter((x) => x[0] === 'alice@example.com' && x[2] === 'news')[0]?.[3]).toBe('unsubscribed');
    expect(esp.filter((x) => x[0] === 'bob@example.com' && x[2] === 'news')[0]?.[3]).toBe('unsubscribed');
    // The malformed rows are left as they were.
    expect(readFileSync(ws.path('crm.csv'), 'utf8')).toContain('not-an-address,email,*,unsubscribed');
    expect(esp.some((x) => x[0] === 'carl@example.com' && x[3] === 'teleported')).toBe(true);
  });
});

/** An engine over any config file, with an in-memory store. */
function openConfig(configPath: string): Engine {
  const registry = defaultRegistry();
  const config = loadConfig(configPath, { env: {}, registry });
  const logger = pino({ level: 'silent' });
  store = openSqliteStore(':memory:', { salt: config.salt });
  const connectors = config.connectors.map((c) => registry.create(c, { purposes: config.purposes.map((p) => p.id), logger, baseDir: config.baseDir }));
  return createEngine({ config, store, connectors, logger });
}

/** pull (full or not) + reconcile + apply; returns the changes reconcile found and the changes pushed. */
async function applyRound(engine: Engine, full = false): Promise<{ changes: number; pushed: number; dead: number }> {
  for (const c of engine.connectors) await pullConnector(engine, c, { full });
  const rec = await reconcile(engine);
  const applied = await applyAll(engine, engine.connectors);
  const pushed = [...applied.values()].reduce((n, s) => n + s.pushed, 0);
  const dead = [...applied.values()].reduce((n, s) => n + s.dead, 0);
  return { changes: rec.changes, pushed, dead };
}

async function planRound(engine: Engine, full = false): Promise<number> {
  for (const c of engine.connectors) await pullConnector(engine, c, { full });
  return (await planReport(engine)).changes;
}

describe('e2e: our own pushes echoing back (rule 10)', () => {
  it('a "*" denial from 2020 and later purpose grants in two grant-allowed systems converge: no ping-pong', async () => {
    ws = workspace();
    const ugo = 'ugo.bianchi@example.net';
    ws.write('legacy.csv', `${HEADER}${ugo},email,*,unsubscribed,2020-01-15,letter\n`);
    // crm also holds an old product_updates opt-out, so the later grant is pushed there to lift it.
    ws.write('crm.csv', `${HEADER}${ugo},email,newsletter,subscribed,2023-09-21,web form /signup\n${ugo},email,product_updates,unsubscribed,2019-05-01,old preference\n`);
    ws.write('esp.csv', `${HEADER}${ugo},email,launches,subscribed,2024-04-16T13:30:00Z,double opt-in confirmed\n`);
    const configPath = ws.write(
      'consentd.yaml',
      csvConfig({
        purposes: ['newsletter', 'product_updates'],
        store: ':memory:',
        connectors: [
          { id: 'crm', file: 'crm.csv', grants: true, purposes: { newsletter: 'newsletter', product_updates: 'product_updates' } },
          { id: 'esp', file: 'esp.csv', grants: true, purposes: { weekly: 'newsletter', launches: 'product_updates' } },
          { id: 'legacy', file: 'legacy.csv' },
        ],
      }),
    );
    const engine = openConfig(configPath);

    const first = await applyRound(engine);
    expect(first.changes).toBeGreaterThan(0);
    expect(first).toMatchObject({ pushed: first.changes, dead: 0 });
    // We pushed "* denied" and a purpose grant into the same systems at the same instant.
    expect(rows(ws, 'crm.csv').some((r) => r[2] === '*' && r[3] === 'unsubscribed')).toBe(true);
    expect(rows(ws, 'crm.csv').some((r) => r[2] === 'product_updates' && r[3] === 'subscribed')).toBe(true);

    expect(await planRound(engine)).toBe(0);
    expect(await applyRound(engine)).toEqual({ changes: 0, pushed: 0, dead: 0 });
    expect(await planRound(engine, true)).toBe(0);

    // The echoes are in the ledger, flagged, and product_updates stays granted.
    const st = await engine.store.subjectState(ugo);
    const echoes = st.observations.filter((o) => o.echo === true);
    expect(echoes.length).toBeGreaterThanOrEqual(3);
    expect(echoes.every((o) => o.evidence?.startsWith('consentd:') === true)).toBe(true);
    const decision = await engine.store.decision(ugo);
    const perm = (purpose: string) => decision?.permissions.find((p) => p.channel === 'email' && p.purpose === purpose);
    expect(perm('product_updates')).toMatchObject({ state: 'granted', rule: 'R1-later-explicit-grant' });
    expect(perm('newsletter')).toMatchObject({ state: 'granted', rule: 'R1-later-explicit-grant' });
    expect(perm('*')).toMatchObject({ state: 'denied', rule: 'R1-denial-sticky' });
  });

  it('the shipped example (config/example.yaml, on a temp copy): apply, then plan is empty, apply again pushes nothing, a third pull plans nothing', async () => {
    ws = workspace();
    cpSync(join(ROOT, 'config'), join(ws.dir, 'config'), { recursive: true });
    const engine = openConfig(join(ws.dir, 'config', 'example.yaml'));
    const first = await applyRound(engine);
    expect(first.changes).toBeGreaterThan(100);
    expect(first.dead).toBe(0);
    expect(await planRound(engine)).toBe(0);
    expect(await applyRound(engine)).toEqual({ changes: 0, pushed: 0, dead: 0 });
    expect(await planRound(engine, true)).toBe(0);
  });
});
