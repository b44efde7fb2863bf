import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { change, decision, hashOf, tempStore } from './store-helpers.js';
import type { Change } from '../../src/model/index.js';
import type { SqliteStore } from '../../src/store/sqlite/index.js';
import { BATCH_ROW } from '../../src/store/sqlite/outbox-batches.js';

/*
 * Outbox batches: a full reconcile's changes queued many to a row. Whatever the rows, every change
 * is claimed exactly once until settled, never after a newer change for its target, a failure
 * leaves as a per-change row (retry or dead letter), an erasure removes the person, a crash between
 * claim and completion loses nothing.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function open(): ReturnType<typeof tempStore> {
  const t = tempStore();
  cleanups.push(t.cleanup);
  return t;
}

const who = (i: number): string => `p${String(i).padStart(5, '0')}@x.io`;

/** A full reconcile's commit (bulk) of one change per subject. */
async function bulk(store: SqliteStore, changes: readonly Change[]): Promise<number> {
  return (await store.commitReconcile(changes.map((c) => ({ subject: c.subject, decision: decision(c.subject), changes: [c] })), 'normal', { bulk: true })).enqueued;
}

function table<T>(path: string, sql: string): T[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

describe('sqlite store: outbox batches', () => {
  it('queues a first load many to a row; claims (splitting rows) return each change once, in plan order; completion empties the rows', async () => {
    const t = open();
    const n = BATCH_ROW + 500;
    const changes = Array.from({ length: n }, (_, i) => change(who(i)));
    expect(await bulk(t.store, changes)).toBe(n);
    expect(table(t.path, 'SELECT seq FROM outbox')).toEqual([]);
    expect(table<{ size: number }>(t.path, 'SELECT size FROM outbox_batches ORDER BY id').map((r) => r.size)).toEqual([BATCH_ROW, 500]);
    expect(await t.store.outboxDepth()).toEqual({ crm: n });

    const claimed: string[] = [];
    for (;;) {
      const items = await t.store.claimOutbox('crm', 700, Date.now());
      if (items.length === 0) break;
      expect(items.length).toBeLessThanOrEqual(700);
      expect(items.every((i) => i.state === 'in_flight' && i.attempts === 1 && i.lane === 'normal')).toBe(true);
      claimed.push(...items.map((i) => i.change.key));
      // Claimed but not settled: still owed.
      expect((await t.store.outboxDepth())['crm']).toBe(n - claimed.length + items.length);
      await t.store.completeOutbox(
        items.map((i) => i.id),
        [],
      );
    }
    expect(claimed).toEqual(changes.map((c) => c.key));
    expect(await t.store.outboxDepth()).toEqual({});
    const st = await t.store.stats();
    expect(st.outbox).toMatchObject({ pending: 0, in_flight: 0, done: n });
    const rows = table<{ state: string; changes: string | null }>(t.path, 'SELECT state, changes FROM outbox_batches');
    expect(rows.every((r) => r.state === 'done' && r.changes === null)).toBe(true);
  });

  it('a claimed change comes back whole (every field), as a per-change row would give it', async () => {
    const t = open();
    const c = change('a@x.io', { recordId: '003XYZ', purpose: 'newsletter', target: 'granted', rule: 'R1-later-explicit-grant', decidedBy: 'obs-9', meta: { type: 'Lead' } });
    const d = change('b@x.io', { recordId: 'b@x.io', op: 'suppress', target: null, purpose: '*' });
    await bulk(t.store, [c, d]);
    const items = await t.store.claimOutbox('crm', 10, Date.now());
    expect(items.map((i) => i.change)).toEqual([c, d]);
  });

  it('one row per change when not a full reconcile, or once the connector has rows other than erasures', async () => {
    const t = open();
    const a = change('a@x.io');
    await t.store.commitReconcile([{ subject: a.subject, decision: decision(a.subject), changes: [a] }], 'normal');
    expect(table(t.path, 'SELECT id FROM outbox_batches')).toEqual([]);
    const b = change('b@x.io');
    await bulk(t.store, [b]);
    // crm has a per-change row: a batch now could be claimed after a newer change.
    expect(table(t.path, 'SELECT id FROM outbox_batches')).toEqual([]);
    expect(table<{ key: string }>(t.path, 'SELECT key FROM outbox ORDER BY seq').map((r) => r.key)).toEqual([a.key, b.key]);
    // Another connector with none: batched.
    await bulk(t.store, [change('c@x.io', { connectorId: 'esp' })]);
    expect(table<{ connector_id: string }>(t.path, 'SELECT connector_id FROM outbox_batches')).toEqual([{ connector_id: 'esp' }]);
  });

  it('a crash between claim and completion loses nothing: requeued, claimed again, settled once', async () => {
    const t = open();
    const changes = Array.from({ length: 300 }, (_, i) => change(who(i)));
    await bulk(t.store, changes);
    const first = await t.store.claimOutbox('crm', 120, Date.now());
    expect(first).toHaveLength(120);
    await t.store.completeOutbox(
      first.slice(0, 20).map((i) => i.id),
      [],
    );
    // The process dies here: 100 claimed, never settled.
    await t.store.close();
    const again = t.reopen();
    expect(await again.outboxDepth()).toEqual({ crm: 280 });
    expect(await again.requeueInFlight()).toBeGreaterThan(0);
    const keys: string[] = [];
    for (;;) {
      const items = await again.claimOutbox('crm', 50, Date.now());
      if (items.length === 0) break;
      keys.push(...items.map((i) => i.change.key));
      await again.completeOutbox(
        items.map((i) => i.id),
        [],
      );
    }
    // The 20 settled before the crash were in the in-flight row: pushed again (pushes are idempotent);
    // every other change exactly once.
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toEqual(expect.arrayContaining(changes.slice(20).map((c) => c.key)));
    expect(keys.length).toBeLessThanOrEqual(300);
    expect(await again.outboxDepth()).toEqual({});
  });

  it('a partial failure: the failed changes leave as per-change rows (retry when due, dead letter), the rest are done', async () => {
    const t = open();
    const changes = Array.from({ length: 10 }, (_, i) => change(who(i)));
    await bulk(t.store, changes);
    const items = await t.store.claimOutbox('crm', 10, Date.now());
    const [r1, r2, dead, ...ok] = items;
    await t.store.completeOutbox(
      ok.map((i) => i.id),
      [],
    );
    const due = Date.now() + 60_000;
    await t.store.retryOutbox(r1!.id, due, 'HTTP 503');
    await t.store.retryOutbox(r2!.id, due, 'HTTP 503');
    await t.store.killOutbox(dead!.id, 'HTTP 400: invalid address');

    expect(table<{ state: string }>(t.path, 'SELECT state FROM outbox_batches')).toEqual([{ state: 'done' }]);
    expect(table<{ key: string; state: string; attempts: number; last_error: string }>(t.path, 'SELECT key, state, attempts, last_error FROM outbox ORDER BY seq')).toEqual([
      { key: r1!.change.key, state: 'retry', attempts: 1, last_error: 'HTTP 503' },
      { key: r2!.change.key, state: 'retry', attempts: 1, last_error: 'HTTP 503' },
      { key: dead!.change.key, state: 'dead', attempts: 1, last_error: 'HTTP 400: invalid address' },
    ]);
    const letters = await t.store.listDeadLetters(10);
    expect(letters.map((l) => [l.change, l.reason])).toEqual([[dead!.change, 'HTTP 400: invalid address']]);
    expect(await t.store.outboxDepth()).toEqual({ crm: 2 });
    expect((await t.store.stats()).outbox).toMatchObject({ done: 7, retry: 2, dead: 1, pending: 0, in_flight: 0 });

    // Not due yet: nothing. Due: the two retries, with their attempts counted on.
    expect(await t.store.claimOutbox('crm', 10, Date.now())).toEqual([]);
    const retried = await t.store.claimOutbox('crm', 10, due + 1);
    expect(retried.map((i) => [i.change, i.attempts])).toEqual([
      [r1!.change, 2],
      [r2!.change, 2],
    ]);
    // The dead letter can be replayed like any other.
    expect(await t.store.replayDeadLetter(letters[0]!.id)).toBe(true);
    expect((await t.store.claimOutbox('crm', 10, Date.now())).map((i) => i.change.key)).toEqual([dead!.change.key]);
  });

  it('a webhook opt-out for a target in a pending batch goes first, and the batch never pushes its older change', async () => {
    const t = open();
    const grant = change('a@x.io', { target: 'granted', rule: 'R1-later-explicit-grant' });
    const other = change('b@x.io');
    await bulk(t.store, [grant, other]);
    const optout = change('a@x.io', { target: 'denied', decidedBy: 'obs-webhook' });
    await t.store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io'), changes: [optout] }], 'high');
    const items = await t.store.claimOutbox('crm', 10, Date.now());
    expect(items.map((i) => i.change.key)).toEqual([optout.key, other.key]);
    await t.store.completeOutbox(
      items.map((i) => i.id),
      [],
    );
    expect(await t.store.outboxDepth()).toEqual({});
    expect(table<{ state: string }>(t.path, 'SELECT state FROM outbox_batches')).toEqual([{ state: 'done' }]);
  });

  it('a webhook opt-out for a target in a claimed batch is pushed after it; a failed older change is then dropped, not retried', async () => {
    const t = open();
    const grant = change('a@x.io', { target: 'granted', rule: 'R1-later-explicit-grant' });
    const other = change('b@x.io');
    await bulk(t.store, [grant, other]);
    const inFlight = await t.store.claimOutbox('crm', 10, Date.now());
    expect(inFlight.map((i) => i.change.key)).toEqual([grant.key, other.key]);
    const optout = change('a@x.io', { target: 'denied', decidedBy: 'obs-webhook' });
    await t.store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io'), changes: [optout] }], 'high');
    // The push of the batch fails for the grant: the opt-out queued since is newer, so the grant goes.
    await t.store.retryOutbox(inFlight[0]!.id, Date.now(), 'HTTP 503');
    await t.store.completeOutbox([inFlight[1]!.id], []);
    const next = await t.store.claimOutbox('crm', 10, Date.now() + 1);
    expect(next.map((i) => i.change.key)).toEqual([optout.key]);
    expect(table<{ key: string }>(t.path, "SELECT key FROM outbox WHERE state = 'retry'")).toEqual([]);
  });

  it('an erasure takes the person out of pending batches (no address left in them) and out of claims', async () => {
    const t = open();
    const gone = 'gone@x.io';
    const changes = [change('a@x.io'), change(gone), change('z@x.io')];
    await bulk(t.store, changes);
    const erase = change(gone, { op: 'erase', target: null, rule: null, decidedBy: null });
    await t.store.eraseSubject(gone, hashOf(gone), 'cli', [erase]);
    const blobs = table<{ changes: string }>(t.path, 'SELECT changes FROM outbox_batches');
    expect(blobs.some((b) => b.changes.includes(gone))).toBe(false);
    expect(await t.store.outboxDepth()).toEqual({ crm: 3 });
    const items = await t.store.claimOutbox('crm', 10, Date.now());
    expect(items.map((i) => i.change.key)).toEqual([erase.key, changes[0]!.key, changes[2]!.key]);
    await t.store.completeOutbox(
      items.map((i) => i.id),
      [],
    );
    expect(await t.store.outboxDepth()).toEqual({});
  });

  it('a second full reconcile over a pending batch queues per change, and the batch older changes are superseded', async () => {
    const t = open();
    const grant = change('a@x.io', { target: 'granted', rule: 'R1-later-explicit-grant' });
    await bulk(t.store, [grant, change('b@x.io')]);
    const denial = change('a@x.io', { target: 'denied', decidedBy: 'obs-2' });
    await bulk(t.store, [denial]);
    expect(table(t.path, 'SELECT id FROM outbox_batches')).toHaveLength(1);
    const items = await t.store.claimOutbox('crm', 10, Date.now());
    expect(items.map((i) => i.change.key)).toEqual([denial.key, change('b@x.io').key]);
  });

  it('small claims drain everything: superseded members take no room, so only an empty outbox gives an empty claim', async () => {
    const t = open();
    const changes = Array.from({ length: 450 }, (_, i) => change(who(i)));
    await bulk(t.store, changes);
    // The same changes queued again per change (the batch is still pending): every member is superseded.
    await bulk(t.store, changes);
    const keys: string[] = [];
    for (;;) {
      const items = await t.store.claimOutbox('crm', 8, Date.now());
      if (items.length === 0) break;
      keys.push(...items.map((i) => i.change.key));
      await t.store.completeOutbox(
        items.map((i) => i.id),
        [],
      );
    }
    expect(keys).toEqual(changes.map((c) => c.key));
    expect(await t.store.outboxDepth()).toEqual({});
    expect((await t.store.stats()).outbox).toMatchObject({ pending: 0, in_flight: 0, done: 450 });
  });
});
