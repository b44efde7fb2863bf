import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connector } from '../../src/connectors/contract.js';
import { createEngine, planReport, reconcile, type Engine } from '../../src/engine/index.js';
import { RECONCILE_PAGE, RECONCILE_WORKERS } from '../../src/engine/reconcile.js';
import type { Change } from '../../src/model/index.js';
import type { SqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/store.js';
import { capabilities } from '../helpers/observations.js';
import { SALT, obs, rec, tempStore } from './store-helpers.js';

/*
 * A large full reconcile decides on a worker thread (reconcile-worker.ts) over a read-only snapshot
 * of the store while the main thread commits. It must decide and plan exactly what the in-thread
 * path decides, keep a subject that changed meanwhile dirty, and fail loudly.
 */

const caps = capabilities({ erase: true });

/** Connectors only as plan targets: nothing is pulled or pushed here. */
function target(id: string): Connector {
  return {
    id,
    kind: 'fake',
    capabilities: caps,
    limits: { batchSize: 100, requestsPerInterval: 100, intervalMs: 1000, concurrency: 1 },
    pull: () => {
      throw new Error('not pulled in this test');
    },
    push: () => Promise.reject(new Error('not pushed in this test')),
    check: () => Promise.resolve({ ok: true, details: [] }),
  } as unknown as Connector;
}

function engineOf(store: Store): Engine {
  return createEngine({
    config: {
      salt: SALT,
      purposes: [{ id: 'newsletter', description: '' }],
      policy: { clockSkewMs: 60_000, reconfirmAfterMs: null, revokeStale: false, grantSources: ['cli', 'api', 'crm'] },
      outbox: { maxAttempts: 4, baseDelayMs: 1_000, maxDelayMs: 60_000, lingerMs: 0 },
    },
    store,
    connectors: [target('crm'), target('esp')],
    logger: pino({ level: 'silent' }),
    now: () => new Date('2025-06-01T00:00:00.000Z'),
  });
}

const N = RECONCILE_PAGE * 2 + 321; // several pages, the last one partial
const who = (i: number): string => `p${String(i).padStart(5, '0')}@example.com`;

/** Disagreeing systems: a denial in one place, grants, a complaint, erasure requests. */
async function fill(store: SqliteStore, n = N): Promise<void> {
  const observations = [];
  const records = [];
  for (let i = 0; i < n; i++) {
    const s = who(i);
    records.push(rec(s, { consent: { 'email:*': 'granted', 'email:newsletter': 'granted' } }));
    records.push(rec(s, { connectorId: 'esp', recordId: `e-${s}`, consent: { 'email:*': i % 7 === 0 ? 'denied' : 'granted' } }));
    observations.push(obs(s, { state: 'granted', purpose: 'newsletter', evidence: 'signed form' }));
    if (i % 7 === 0) observations.push(obs(s, { source: 'esp', recordId: `e-${s}`, statedAt: '2024-07-01T00:00:00.000Z' }));
    if (i % 31 === 0) observations.push(obs(s, { kind: 'suppression', source: 'esp', recordId: `e-${s}`, reason: 'complaint' }));
    if (i % 97 === 0) observations.push(obs(s, { kind: 'erasure', source: 'esp', recordId: null, purpose: '*' }));
  }
  await store.ingestPage('crm', 1, { observations, records }, null);
}

/** Everything a reconcile leaves behind: each subject's decision and the queued changes. */
async function outcome(store: SqliteStore): Promise<{ decisions: unknown[]; changes: Change[]; dirty: number }> {
  const decisions = [];
  for (let i = 0; i < N; i++) decisions.push(await store.decision(who(i)));
  const changes: Change[] = [];
  for (const id of ['crm', 'esp']) for (const item of await store.claimOutbox(id, 1_000_000, Date.now())) changes.push(item.change);
  changes.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { decisions, changes, dirty: await store.dirtyCount() };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function freshStore(): SqliteStore {
  const t = tempStore();
  cleanups.push(t.cleanup);
  return t.store;
}

describe('reconcile on a worker thread', () => {
  it('decides, plans and erases exactly as the in-thread path', async () => {
    const inThread = freshStore();
    const onWorker = freshStore();
    await fill(inThread);
    await fill(onWorker);
    const a = await reconcile(engineOf(inThread), 'normal', { worker: 'never' });
    const b = await reconcile(engineOf(onWorker), 'normal', { worker: 'always' });
    expect(b).toEqual(a);
    expect(a.subjects).toBe(N);
    expect(a.erased).toBeGreaterThan(0);
    expect(a.changes).toBeGreaterThan(N / 7);
    const left = await outcome(inThread);
    const right = await outcome(onWorker);
    expect(right.dirty).toBe(0);
    expect(right).toEqual(left);
    // The run is recorded like any other.
    expect((await onWorker.lastRun('reconcile', null))?.status).toBe('ok');
  });

  it('two workers take a run of subjects each, and each commit keeps to one run (outbox batches stay whole)', async () => {
    expect(RECONCILE_WORKERS).toBe(2);
    const t = tempStore();
    cleanups.push(t.cleanup);
    const store = t.store;
    // Four pages a worker; commits of up to 5000 subjects, so a commit not cut at a change of run
    // would hold pages of both (and overlap the batches of an earlier one).
    const n = RECONCILE_PAGE * 8 + 321;
    await fill(store, n);
    // The split is the last subject of the first half.
    expect(await store.dirtySplits(2)).toEqual([who(Math.floor(n / 2) - 1)]);
    expect(await store.dirtySplits(1)).toEqual([]);
    const quarters = await store.dirtySplits(4);
    expect(quarters).toEqual([1, 2, 3].map((k) => who(Math.floor((k * n) / 4) - 1)));
    const stats = await reconcile(engineOf(store), 'normal', { worker: 'always', commitSubjects: 5000 });
    expect(stats.subjects).toBe(n);
    expect(await store.dirtyCount()).toBe(0);
    // Commits mixing both runs would have subject ranges overlapping the other run's batches, and
    // the bulk path would fall back to one outbox row per change: every change is in a batch.
    const db = new Database(t.path, { readonly: true });
    try {
      expect(db.prepare("SELECT count(*) FROM outbox WHERE op <> 'erase'").pluck().get()).toBe(0);
      const batched = db.prepare('SELECT sum(size) FROM outbox_batches').pluck().get() as number;
      const erasures = db.prepare("SELECT count(*) FROM outbox WHERE op = 'erase'").pluck().get() as number;
      expect(batched).toBeGreaterThan(0);
      expect(batched + erasures).toBe(stats.changes);
    } finally {
      db.close();
    }
  });

  it('a split between subjects JavaScript and SQLite order differently: each subject is decided once', async () => {
    // SQLite orders text by its UTF-8 bytes: U+E000 (EE 80 80) before an emoji (F0 9F ...). In
    // UTF-16 code units the emoji (a surrogate pair, D83D ...) sorts first. The split falls on the
    // U+E000 subject; the emoji subjects belong to the second worker's run.
    const subjects = [
      ...Array.from({ length: 50 }, (_, i) => `a${String(i).padStart(3, '0')}@example.com`),
      '\ue000@example.com',
      ...Array.from({ length: 51 }, (_, i) => `\u{1F600}${String(i).padStart(3, '0')}@example.com`),
    ];
    const load = async (store: SqliteStore): Promise<void> => {
      await store.ingestPage(
        'crm',
        1,
        {
          observations: subjects.map((s) => obs(s, { state: 'granted', purpose: 'newsletter', evidence: 'signed form' })),
          records: subjects.flatMap((s) => [rec(s, { consent: { 'email:*': 'granted' } }), rec(s, { connectorId: 'esp', recordId: `e-${s}`, consent: { 'email:*': 'denied' } })]),
        },
        null,
      );
    };
    const inThread = freshStore();
    const onWorkers = freshStore();
    await load(inThread);
    await load(onWorkers);
    expect(await onWorkers.dirtySplits(2)).toEqual(['\ue000@example.com']);
    const a = await reconcile(engineOf(inThread), 'normal', { worker: 'never' });
    const b = await reconcile(engineOf(onWorkers), 'normal', { worker: 'always' });
    expect(b).toEqual(a);
    expect(b.subjects).toBe(subjects.length);
    for (const s of subjects) expect(await onWorkers.decision(s)).toEqual(await inThread.decision(s));
    expect(await onWorkers.dirtyCount()).toBe(0);
  });

  it('a dry run (plan) on the worker thread reports the same changes as on this thread and writes nothing', async () => {
    const store = freshStore();
    await fill(store);
    const engine = engineOf(store);
    const seen = (worker: 'never' | 'always') => async () => {
      const changes: Change[] = [];
      const report = await planReport(engine, (c) => void changes.push(c), { worker });
      return { report, changes };
    };
    const left = await seen('never')();
    const right = await seen('always')();
    expect(right).toEqual(left);
    expect(left.report.subjects).toBe(N);
    expect(left.report.erasures).toBe(Math.ceil(N / 97));
    expect(left.changes.length).toBe(left.report.changes);
    expect(left.report.changes).toBeGreaterThan(N / 7);
    // Nothing was written: every subject is still dirty, no decision saved, nothing queued.
    expect(await store.dirtyCount()).toBe(N);
    expect(await store.decision(who(0))).toBeNull();
    expect(await store.claimOutbox('crm', 10, Date.now())).toEqual([]);
    // 'always' did take the worker path: a worker that cannot open the store fails the dry run.
    const broken = Object.create(store) as SqliteStore;
    broken.readerSpec = () => Promise.resolve({ kind: 'sqlite', path: '/nonexistent/dir/consentd.db', salt: SALT });
    await expect(planReport(engineOf(broken), undefined, { worker: 'always' })).rejects.toThrow(/nonexistent|unable to open|directory does not exist/i);
  });

  it('a subject that changed while the worker decided stays dirty for the next pass', async () => {
    const store = freshStore();
    await fill(store);
    const engine = engineOf(store);
    const late = who(N - 5); // on the last page: the worker read it (from its snapshot) long before
    let told = false;
    const withProgress: Engine = {
      ...engine,
      progress: () => {
        if (told) return;
        told = true;
        // An opt-out arrives (a webhook) after the worker took its snapshot.
        void store.addObservations([obs(late, { source: 'cli', recordId: null, purpose: 'newsletter', statedAt: '2025-05-01T00:00:00.000Z', how: 'manual' })]);
      },
    };
    await reconcile(withProgress, 'normal', { worker: 'always' });
    expect(told).toBe(true);
    expect(await store.dirtyCount()).toBe(1);
    const [st] = await store.dirtySubjects(10, null);
    expect(st?.subject).toBe(late);
    const again = await reconcile(engine, 'normal', { worker: 'always' });
    expect(again.subjects).toBe(1);
    const d = await store.decision(late);
    expect(d?.permissions.find((p) => p.purpose === 'newsletter')?.state).toBe('denied');
  });

  it('a worker that cannot open the store fails the reconcile, commits nothing and records the failure', async () => {
    const store = freshStore();
    await fill(store);
    const broken = Object.create(store) as SqliteStore;
    broken.readerSpec = () => Promise.resolve({ kind: 'sqlite', path: '/nonexistent/dir/consentd.db', salt: SALT });
    await expect(reconcile(engineOf(broken), 'normal', { worker: 'always' })).rejects.toThrow(/nonexistent|unable to open|directory does not exist/i);
    expect(await store.dirtyCount()).toBe(N);
    expect((await store.lastRun('reconcile', null))?.status).toBe('failed');
  });

  it('an error while the worker plans rejects the reconcile (no page is left waiting)', async () => {
    const store = freshStore();
    await fill(store);
    const engine = engineOf(store);
    // Options the policy cannot work with: deciding throws inside the worker.
    const broken: Engine = { ...engine, policyOptions: () => ({ ...engine.policyOptions(), purposes: null as unknown as string[] }) };
    await expect(reconcile(broken, 'normal', { worker: 'always' })).rejects.toThrow(/^reconcile worker: /);
    expect(await store.dirtyCount()).toBe(N);
    expect((await store.lastRun('reconcile', null))?.status).toBe('failed');
  });

  it('an in-memory store has no reader view: the reconcile stays on this thread', async () => {
    const t = tempStore();
    cleanups.push(t.cleanup);
    const { openSqliteStore } = await import('../../src/store/sqlite/index.js');
    const mem = openSqliteStore(':memory:', { salt: SALT });
    cleanups.push(() => mem.close());
    expect(await mem.readerSpec()).toBeNull();
    await fill(mem);
    expect((await reconcile(engineOf(mem), 'normal', { worker: 'always' })).subjects).toBe(N);
  });
});
