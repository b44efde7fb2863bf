import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connector, PullReject } from '../../src/connectors/contract.js';
import { createEngine, pullConnector, type Engine } from '../../src/engine/index.js';
import { PULL_WORKER_MIN_BYTES, type PullOptions } from '../../src/engine/pull.js';
import { ConnectorFailedError } from '../../src/errors.js';
import type { Store, SubjectState } from '../../src/store/store.js';
import { csv, tempDir } from '../fixtures/csv/helpers.js';
import { capabilities } from '../helpers/observations.js';
import { SALT, tempStore } from './store-helpers.js';

/*
 * A connector that offers an off-thread pull (CSV) is pulled on a worker thread: the worker parses,
 * makes the observations and encodes the pages; the main thread only writes. What lands in the
 * store, what is reported and what is returned must be exactly what the in-thread pull gives.
 */

const NOW = new Date('2025-06-01T12:00:00.000Z');

function engineOf(store: Store, connectors: Connector[]): Engine {
  return createEngine({
    config: {
      salt: SALT,
      purposes: [{ id: 'newsletter', description: '' }, { id: 'offers', description: '' }],
      policy: { clockSkewMs: 60_000, reconfirmAfterMs: null, revokeStale: false, grantSources: ['list'] },
      outbox: { maxAttempts: 4, baseDelayMs: 1_000, maxDelayMs: 60_000, lingerMs: 0 },
    },
    store,
    connectors,
    logger: pino({ level: 'silent' }),
    now: () => NOW,
  });
}

/** A list of `n` people with what real lists hold: case variants, duplicates, every state, bad rows. */
function writeList(dir: string, n: number): string {
  const path = join(dir, 'list.csv');
  const lines = ['email,channel,purpose,state,stated_at,evidence'];
  for (let i = 0; i < n; i++) {
    const who = `person.${i}@example.com`;
    const state = ['subscribed', 'unsubscribed', 'opted_out', 'granted', 'denied'][i % 5] as string;
    lines.push(`${i % 9 === 0 ? who.toUpperCase() : who},email,${i % 4 === 0 ? 'weekly' : ''},${state},2024-0${1 + (i % 9)}-1${i % 10}T08:00:00Z,row ${i}`);
    if (i % 13 === 0) lines.push(`${who},email,,${state},2024-01-01T00:00:00Z,duplicate`);
    if (i % 101 === 0) lines.push(`not-an-email-${i},email,,denied,2024-01-01,bad`);
    if (i % 211 === 0) lines.push(`${who},email,,maybe,2024-01-01,bad state`);
  }
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** Everything the store holds for everyone (observations, records, dirty flags), in subject order. */
async function dump(store: Store): Promise<SubjectState[]> {
  const all: SubjectState[] = [];
  for (let after: string | null = null; ; ) {
    const page = await store.dirtySubjects(1000, after);
    all.push(...page);
    if (page.length < 1000) return all;
    after = page[page.length - 1]?.subject ?? null;
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function pullWith(dir: string, mode: NonNullable<PullOptions['worker']>, connector = csv({ path: 'list.csv', purposes: { weekly: 'newsletter' }, pageSize: 700 }, { baseDir: dir })) {
  const t = tempStore();
  cleanups.push(t.cleanup);
  const engine = engineOf(t.store, [connector]);
  const rejects: PullReject[] = [];
  const stats = await pullConnector(engine, connector, { full: true, worker: mode, onReject: (r) => rejects.push(r) });
  return { store: t.store, stats, rejects, cursor: await t.store.getCursor(connector.id), state: await dump(t.store) };
}

describe('pull on a worker thread', () => {
  it('stores, reports and counts exactly what the in-thread pull does', async () => {
    const dir = tempDir();
    writeList(dir, 6_000);
    const onWorker = await pullWith(dir, 'always');
    const onThread = await pullWith(dir, 'never');
    expect(onWorker.stats.pages).toBeGreaterThan(5);
    expect(onWorker.stats.rejects).toBeGreaterThan(0);
    expect(onWorker.stats).toEqual(onThread.stats);
    expect(onWorker.rejects).toEqual(onThread.rejects);
    expect(onWorker.cursor).toEqual(onThread.cursor);
    expect(onWorker.cursor).toMatch(/^mtime=/);
    expect(onWorker.state.length).toBeGreaterThan(5_000);
    expect(onWorker.state).toEqual(onThread.state);
    // The engine's clock stamps what the worker observed.
    expect(onWorker.state[0]?.observations[0]?.observedAt).toBe(NOW.toISOString());
  });

  it("'auto' starts a worker only for a pull worth one", async () => {
    // The fake offers an off-thread pull that says something else than its in-thread pull: which
    // one was stored shows where the pull ran.
    const fake = (bytes: number): Connector =>
      ({
        id: 'src',
        kind: 'fake',
        capabilities: capabilities({}),
        limits: { batchSize: 100, requestsPerInterval: 100, intervalMs: 1000, concurrency: 1 },
        async *pull() {
          yield { observations: [], records: [{ connectorId: 'src', recordId: 'main@example.com', subject: 'main@example.com', consent: {}, suppressed: {}, meta: {} }], cursor: 'main' };
        },
        pullOffThread: () => Promise.resolve({ module: new URL('../fixtures/off-thread/pull-module.ts', import.meta.url).href, args: { subject: 'worker@example.com', pages: 2 }, bytes }),
        push: () => Promise.reject(new Error('not pushed here')),
        check: () => Promise.resolve({ ok: true, details: [] }),
      }) as Connector;
    const small = await pullWith(tempDir(), 'auto', fake(PULL_WORKER_MIN_BYTES - 1));
    expect(small.state.map((s) => s.subject)).toEqual(['main@example.com']);
    expect(small.cursor).toBe('main');
    const large = await pullWith(tempDir(), 'auto', fake(PULL_WORKER_MIN_BYTES));
    expect(large.state.map((s) => s.subject)).toEqual(['p1-worker@example.com', 'worker@example.com']);
    expect(large.stats).toMatchObject({ pages: 2, observations: 2, records: 2 });
    // The cursor the worker's pull was given (null: full) and the last page's cursor stored.
    expect(large.cursor).toBe('after-1-start');
    expect(large.state[1]?.observations[0]).toMatchObject({ state: 'denied', observedAt: NOW.toISOString(), reference: 'off-thread' });
    const never = await pullWith(tempDir(), 'never', fake(PULL_WORKER_MIN_BYTES));
    expect(never.state.map((s) => s.subject)).toEqual(['main@example.com']);
  });

  it('a failure on the worker fails the pull, keeps the pages stored before it and records the run', async () => {
    const failing: Connector = {
      id: 'src',
      kind: 'fake',
      capabilities: capabilities({}),
      limits: { batchSize: 100, requestsPerInterval: 100, intervalMs: 1000, concurrency: 1 },
      pull: () => {
        throw new Error('the in-thread pull must not run');
      },
      pullOffThread: () => Promise.resolve({ module: new URL('../fixtures/off-thread/pull-module.ts', import.meta.url).href, args: { subject: 'first@example.com', pages: 3, failAfter: 1 }, bytes: 1 }),
      push: () => Promise.reject(new Error('not pushed here')),
      check: () => Promise.resolve({ ok: true, details: [] }),
    } as Connector;
    const t = tempStore();
    cleanups.push(t.cleanup);
    const engine = engineOf(t.store, [failing]);
    const err = await pullConnector(engine, failing, { full: true, worker: 'always' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectorFailedError);
    expect((err as Error).message).toContain('the source went away after 1 pages');
    expect((await dump(t.store)).map((s) => s.subject)).toEqual(['first@example.com']);
    expect(await t.store.getCursor('src')).toBe('after-0-start');
    expect(await t.store.lastRun('pull_full', 'src')).toMatchObject({ status: 'failed', error: expect.stringContaining('went away') });
  });

  it('a CSV file that cannot be parsed fails the pull with the file named, as on the thread', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'list.csv'), 'address,colour\nann@example.com,blue\n');
    const messages: string[] = [];
    for (const mode of ['always', 'never'] as const) {
      const err = await pullWith(dir, mode).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectorFailedError);
      messages.push((err as Error).message);
    }
    expect(messages[0]).toContain(join(dir, 'list.csv'));
    expect(messages[0]).toContain(messages[1]?.replace(/^.*pull failed: /, '') ?? '?');
  });
});
