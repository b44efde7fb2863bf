import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { change, decision, hashOf, obs, rec, tempStore } from './store-helpers.js';
import { LATEST_SCHEMA_VERSION, MIGRATIONS, migrate, type SqliteStore } from '../../src/store/sqlite/index.js';
import type { Change } from '../../src/model/index.js';
import type { OutboxItem } from '../../src/store/store.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function storeWith(changes: Array<{ c: Change; lane: 'high' | 'normal' }>): Promise<SqliteStore> {
  const t = tempStore();
  cleanups.push(t.cleanup);
  for (const { c, lane } of changes) {
    await t.store.commitReconcile([{ subject: c.subject, decision: decision(c.subject), changes: [c] }], lane);
  }
  return t.store;
}

/** The outbox row of change `c` among claimed items (what settles it); -1 when not among them. */
const idOf = (items: readonly OutboxItem[], c: Change | undefined): number => items.find((i) => i.change.key === c?.key)?.id ?? -1;

describe('sqlite store: outbox', () => {
  it('claims high lane first, then enqueue order, moving items to in_flight with attempts + 1', async () => {
    const n1 = change('n1@x.io');
    const n2 = change('n2@x.io');
    const h1 = change('h1@x.io');
    const other = change('o@x.io', { connectorId: 'esp' });
    const store = await storeWith([
      { c: n1, lane: 'normal' },
      { c: n2, lane: 'normal' },
      { c: h1, lane: 'high' },
      { c: other, lane: 'normal' },
    ]);
    expect(await store.outboxDepth()).toEqual({ crm: 3, esp: 1 });
    const first = await store.claimOutbox('crm', 2, Date.now());
    expect(first.map((i) => [i.change.key, i.lane, i.state, i.attempts])).toEqual([
      [h1.key, 'high', 'in_flight', 1],
      [n1.key, 'normal', 'in_flight', 1],
    ]);
    expect(first[0]?.change).toEqual(h1);
    const rest = await store.claimOutbox('crm', 10, Date.now());
    expect(rest.map((i) => i.change.key)).toEqual([n2.key]);
    expect(await store.claimOutbox('crm', 10, Date.now())).toEqual([]);
    expect(await store.outboxDepth()).toEqual({ crm: 3, esp: 1 });
    const st = await store.stats();
    expect(st.outbox.in_flight).toBe(3);
    expect(st.outbox.pending).toBe(1);
    expect(st.oldestPendingAt).toEqual(expect.any(String));
  });

  it('a target being pushed is not queued again under another key (a webhook for that very push decided it anew)', async () => {
    const first = change('a@x.io');
    const store = await storeWith([{ c: first, lane: 'high' }]);
    const [item] = await store.claimOutbox('crm', 10, Date.now());
    expect(item?.change.key).toBe(first.key);
    // Same record, scope and target, decided by a newer observation: the push in flight lands it.
    const again = change('a@x.io', { decidedBy: 'obs-2' });
    const enqueue = (c: Change) => store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io'), changes: [c] }], 'high');
    expect(await enqueue(again)).toEqual({ enqueued: 0 });
    // Another target for the same scope is news and is queued.
    expect(await enqueue(change('a@x.io', { decidedBy: 'obs-3', target: 'granted', rule: 'R1-later-explicit-grant' }))).toEqual({ enqueued: 1 });
    await store.completeOutbox([item?.id ?? -1], []);
    // Nothing in flight any more: a plan that still disagrees with the record is queued.
    expect(await enqueue(again)).toEqual({ enqueued: 1 });
  });

  it('claim then complete: done, and the record snapshot becomes what was pushed', async () => {
    const t = tempStore();
    cleanups.push(t.cleanup);
    const { store } = t;
    await store.ingestPage('crm', 1, { observations: [obs('a@x.io')], records: [rec('a@x.io')] }, null);
    const c = change('a@x.io');
    await store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io'), changes: [c] }], 'normal');
    const [item] = await store.claimOutbox('crm', 10, Date.now());
    expect(item?.change).toEqual(c);
    const pushed = rec('a@x.io', { consent: { 'email:*': 'denied' } });
    await store.completeOutbox([item?.id ?? -1], [pushed]);
    expect((await store.subjectState('a@x.io')).records).toEqual([pushed]);
    const st = await store.stats();
    expect(st.outbox.done).toBe(1);
    expect(await store.outboxDepth()).toEqual({});
    // the echo of our own push re-plans nothing; a pull showing the record drifted re-arms the key
    await store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io'), changes: [] }], 'normal');
    expect((await store.stats()).outbox.done).toBe(1);
    expect(await store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io'), changes: [c] }], 'normal')).toEqual({ enqueued: 1 });
    const [again] = await store.claimOutbox('crm', 10, Date.now());
    expect(again?.attempts).toBe(1);
    // The re-armed change is the same row (one per key), queued again behind everything before it.
    expect(again?.change.key).toBe(item?.change.key);
    expect(again?.id).toBeGreaterThan(item?.id ?? Infinity);
    // completing twice is harmless
    await store.completeOutbox([again?.id ?? -1], []);
    await store.completeOutbox([again?.id ?? -1], []);
    expect((await store.stats()).outbox.done).toBe(1);
  });

  it('claims and completes a batch at once: due retries in enqueue order among pending items, lanes kept apart', async () => {
    const [a, b, c, d, h] = ['a@x.io', 'b@x.io', 'c@x.io', 'd@x.io', 'h@x.io'].map((s) => change(s));
    const store = await storeWith([
      { c: a as Change, lane: 'normal' },
      { c: b as Change, lane: 'normal' },
      { c: c as Change, lane: 'normal' },
      { c: d as Change, lane: 'normal' },
    ]);
    const now = 1_700_000_000_000;
    // a and c go back as retries (due), b stays in flight; d is pending; then h arrives in the high lane.
    const claimed = await store.claimOutbox('crm', 3, now);
    expect(claimed.map((i) => i.change.key)).toEqual([a?.key, b?.key, c?.key]);
    await store.retryOutbox(idOf(claimed, c), now, 'timeout');
    await store.retryOutbox(idOf(claimed, a), now + 5, 'timeout');
    await store.commitReconcile([{ subject: 'h@x.io', decision: decision('h@x.io'), changes: [h as Change] }], 'high');
    const batch = await store.claimOutbox('crm', 10, now + 5);
    expect(batch.map((i) => [i.change.key, i.lane, i.attempts, i.lastError])).toEqual([
      [h?.key, 'high', 1, null],
      [a?.key, 'normal', 2, 'timeout'],
      [c?.key, 'normal', 2, 'timeout'],
      [d?.key, 'normal', 1, null],
    ]);
    expect(batch.map((i) => i.change)).toEqual([h, a, c, d]);
    // A limit cuts the merged order, not each state's.
    await store.retryOutbox(idOf(batch, d), now, 'x');
    await store.retryOutbox(idOf(batch, a), now, 'x');
    expect((await store.claimOutbox('crm', 1, now)).map((i) => i.change.key)).toEqual([a?.key]);
    // Completing a batch: every item in flight is done; one that is not (d is a retry) or no row at all is left alone.
    const ids = [idOf(batch, h), idOf(batch, a), idOf(claimed, b), idOf(batch, c), idOf(batch, d)];
    expect(new Set(ids).size).toBe(5);
    await store.completeOutbox([...ids, Math.max(...ids) + 1000], []);
    const st = await store.stats();
    expect(st.outbox).toMatchObject({ done: 4, retry: 1, in_flight: 0, pending: 0 });
  });

  it('completing a batch redacts only its erase changes', async () => {
    const t = tempStore();
    cleanups.push(t.cleanup);
    const { store } = t;
    const who = 'gone@x.io';
    const keep = change('keep@x.io');
    await store.commitReconcile([{ subject: 'keep@x.io', decision: decision('keep@x.io'), changes: [keep] }], 'high');
    const erase = change(who, { op: 'erase', target: null, rule: null, decidedBy: null });
    await store.eraseSubject(who, hashOf(who), 'cli', [erase]);
    const items = await store.claimOutbox('crm', 10, Date.now());
    expect(items.map((i) => i.change.key)).toEqual([keep.key, erase.key]);
    await store.completeOutbox(items.map((i) => i.id), []);
    const db = new Database(t.path, { readonly: true });
    try {
      const rows = db.prepare('SELECT key, state, subject, record_id, change FROM outbox ORDER BY seq').all() as Array<{ key: string; state: string; subject: string; record_id: string; change: string }>;
      expect(rows.map((r) => [r.key, r.state])).toEqual([
        [keep.key, 'done'],
        [erase.key, 'done'],
      ]);
      // The key columns hold the rest (migration 4): the body is [target, rule, decidedBy, meta].
      expect(rows[0]).toMatchObject({ subject: 'keep@x.io', record_id: keep.recordId, change: JSON.stringify([keep.target, keep.rule, keep.decidedBy, keep.meta]) });
      expect(rows[1]).toMatchObject({ subject: hashOf(who), record_id: hashOf(erase.recordId) });
      expect(rows[1]?.change).not.toContain(who);
    } finally {
      db.close();
    }
  });

  it('an erasure pushed again after its row was redacted is queued, pushed and redacted again, leaving one row', async () => {
    const t = tempStore();
    cleanups.push(t.cleanup);
    const { store } = t;
    const who = 'twice@x.io';
    const erase = change(who, { op: 'erase', target: null, rule: null, decidedBy: null });
    const eraseOnce = async (): Promise<void> => {
      await store.eraseSubject(who, hashOf(who), 'cli', [erase]);
      const items = await store.claimOutbox('crm', 10, Date.now());
      expect(items.map((i) => i.change)).toEqual([erase]);
      await store.completeOutbox(items.map((i) => i.id), []);
    };
    await eraseOnce();
    // The person came back in a pull and is erased again: the redacted row no longer names them,
    // so the same change is queued (and pushed) anew.
    await eraseOnce();
    const db = new Database(t.path, { readonly: true });
    try {
      const rows = db.prepare('SELECT key, state, subject FROM outbox').all();
      expect(rows).toEqual([{ key: erase.key, state: 'done', subject: hashOf(who) }]);
    } finally {
      db.close();
    }
  });

  it('a retry is not due before notBefore', async () => {
    const c = change('a@x.io');
    const store = await storeWith([{ c, lane: 'normal' }]);
    const now = 1_700_000_000_000;
    const claimed = await store.claimOutbox('crm', 10, now);
    await store.retryOutbox(idOf(claimed, c), now + 60_000, '429 Too Many Requests');
    expect(await store.nextDue('crm')).toBe(now + 60_000);
    expect(await store.nextDue('esp')).toBeNull();
    expect(await store.claimOutbox('crm', 10, now + 59_999)).toEqual([]);
    const [item] = await store.claimOutbox('crm', 10, now + 60_000);
    expect(item).toMatchObject({ attempts: 2, notBefore: now + 60_000, lastError: '429 Too Many Requests', state: 'in_flight' });
    expect(await store.nextDue('crm')).toBeNull();
  });

  it('retry items are superseded by a newer change for the same target', async () => {
    const deny = change('a@x.io', { decidedBy: 'o1' });
    const store = await storeWith([{ c: deny, lane: 'normal' }]);
    const claimed = await store.claimOutbox('crm', 10, 0);
    await store.retryOutbox(idOf(claimed, deny), 10, 'timeout');
    const grant = change('a@x.io', { target: 'granted', decidedBy: 'o2' });
    await store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io', 'granted'), changes: [grant] }], 'normal');
    const items = await store.claimOutbox('crm', 10, 100);
    expect(items.map((i) => i.change.key)).toEqual([grant.key]);
    expect((await store.stats()).outbox.superseded).toBe(1);
  });

  it('dead letters are listed and replayable', async () => {
    const c = change('a@x.io');
    const store = await storeWith([{ c, lane: 'normal' }]);
    const claimed = await store.claimOutbox('crm', 10, 0);
    await store.killOutbox(idOf(claimed, c), 'INVALID_EMAIL: rejected by platform');
    expect(await store.outboxDepth()).toEqual({});
    const letters = await store.listDeadLetters(10);
    expect(letters).toEqual([{ id: expect.any(Number) as number, change: c, reason: 'INVALID_EMAIL: rejected by platform', attempts: 1, deadAt: expect.any(String) as string }]);
    expect((await store.stats()).deadLetters).toBe(1);
    // a kill of something not in flight is ignored (no double dead letter)
    await store.killOutbox(idOf(claimed, c), 'again');
    expect(await store.listDeadLetters(10)).toHaveLength(1);
    const id = letters[0]?.id ?? -1;
    expect(await store.replayDeadLetter(id)).toBe(true);
    expect(await store.replayDeadLetter(id)).toBe(false);
    expect(await store.replayDeadLetter(9999)).toBe(false);
    expect(await store.listDeadLetters(10)).toEqual([]);
    const [item] = await store.claimOutbox('crm', 10, 0);
    expect(item).toMatchObject({ attempts: 1, lastError: null });
  });

  it('requeueInFlight puts in-flight items back to pending (per connector or all)', async () => {
    const a = change('a@x.io');
    const b = change('b@x.io', { connectorId: 'esp' });
    const store = await storeWith([
      { c: a, lane: 'normal' },
      { c: b, lane: 'normal' },
    ]);
    const claimed = await store.claimOutbox('crm', 10, 0);
    await store.claimOutbox('esp', 10, 0);
    expect(await store.requeueInFlight('crm')).toBe(1);
    expect((await store.claimOutbox('crm', 10, 0)).map((i) => [i.change.key, i.attempts])).toEqual([[a.key, 2]]);
    expect(await store.requeueInFlight()).toBe(2);
    expect(await store.requeueInFlight()).toBe(0);
    expect((await store.stats()).outbox.pending).toBe(2);
    // a late completion of a requeued item does not skip the state machine
    await store.completeOutbox([idOf(claimed, a)], []);
    expect((await store.stats()).outbox.pending).toBe(2);
  });

  it('a high-lane plan raises an already pending change to the high lane', async () => {
    const n = change('n@x.io');
    const a = change('a@x.io');
    const store = await storeWith([
      { c: n, lane: 'normal' },
      { c: a, lane: 'normal' },
    ]);
    expect(await store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io'), changes: [a] }], 'high')).toEqual({ enqueued: 0 });
    const items = await store.claimOutbox('crm', 1, 0);
    expect(items.map((i) => [i.change.key, i.lane])).toEqual([[a.key, 'high']]);
  });

  it('migrates a version-3 outbox (whole changes as JSON): pending, in-flight, done and dead rows read back the same', async () => {
    const t = tempStore();
    cleanups.push(t.cleanup);
    await t.store.close();
    rmSync(t.path, { force: true });
    const db = new Database(t.path);
    migrate(db, t.path, MIGRATIONS.filter((m) => m.version <= 3));
    const pending = change('p@x.io', { meta: { type: 'Lead', list: [1, 2] } });
    const inFlight = change('f@x.io', { connectorId: 'esp' });
    const done = change('d@x.io');
    const dead = change('x@x.io', { op: 'erase', target: null, rule: null, decidedBy: null });
    const flying = change('y@x.io', { connectorId: 'esp' });
    const insert = db.prepare(
      `INSERT INTO outbox (key, connector_id, record_id, subject, op, channel, purpose, lane, state, attempts, change, enqueued_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'normal', ?, ?, ?, 't', 't')`,
    );
    const seqOf = new Map<Change, number>();
    for (const [c, state] of [[pending, 'pending'], [inFlight, 'in_flight'], [done, 'done'], [dead, 'dead'], [flying, 'in_flight']] as const) {
      seqOf.set(c, Number(insert.run(c.key, c.connectorId, c.recordId, c.subject, c.op, c.channel, c.purpose, state, state === 'pending' ? 0 : 1, JSON.stringify(c)).lastInsertRowid));
    }
    db.close();
    const store = t.reopen();
    expect(store.schemaVersion).toBe(LATEST_SCHEMA_VERSION);
    // Claimed: the whole change, meta included.
    expect((await store.claimOutbox('crm', 10, Date.now())).map((i) => i.change)).toEqual([pending]);
    // Dead-lettered after the migration: the dead letter keeps the whole change.
    // Rows keep their seq through every migration (the item's id).
    await store.killOutbox(seqOf.get(inFlight) ?? -1, 'gone');
    expect((await store.listDeadLetters(10)).map((l) => l.change)).toEqual([inFlight]);
    // The same keys planned again: the done one is re-armed and claimed whole; the dead one stays dead.
    const again = (c: Change) => store.commitReconcile([{ subject: c.subject, decision: decision(c.subject), changes: [c] }], 'normal');
    expect(await again(done)).toEqual({ enqueued: 1 });
    expect(await again(dead)).toEqual({ enqueued: 0 });
    // Still one row per (subject, key) after the table was rebuilt (migration 5).
    expect(await again(pending)).toEqual({ enqueued: 0 });
    expect((await store.claimOutbox('crm', 10, Date.now())).map((i) => i.change)).toEqual([done]);
    // A row in flight is matched on its migrated target: the same target under a new key is not queued twice.
    expect(await again(change(flying.subject, { connectorId: 'esp', decidedBy: 'obs-newer' }))).toEqual({ enqueued: 0 });
    expect(await again(change(flying.subject, { connectorId: 'esp', decidedBy: 'obs-newer', target: 'granted', rule: 'R1-later-explicit-grant' }))).toEqual({ enqueued: 1 });
  });
});

describe('sqlite store: superseding in a bulk commit', () => {
  // A few targets (connector x record x purpose) and, for each, changes that differ in target
  // state or deciding observation (so in key): collisions on a target are the point.
  const changeArb = fc
    .record({
      connectorId: fc.constantFrom('crm', 'esp'),
      who: fc.constantFrom('a@x.io', 'b@x.io'),
      purpose: fc.constantFrom('*', 'newsletter'),
      target: fc.constantFrom('denied' as const, 'granted' as const),
      decidedBy: fc.constantFrom('o1', 'o2'),
    })
    .map(({ who, ...over }) => change(who, over));
  /** What happens to the queue before the commit under test: each change queued, then left in a state. */
  const historyArb = fc.array(fc.tuple(changeArb, fc.constantFrom('pending', 'in_flight', 'retry', 'done', 'dead')), { maxLength: 8 });

  async function replay(history: Array<[Change, string]>): Promise<{ s: SqliteStore; path: string }> {
    const t = tempStore();
    cleanups.push(t.cleanup);
    const s = t.store;
    for (const [c, state] of history) {
      const { enqueued } = await s.commitReconcile([{ subject: c.subject, decision: decision(c.subject), changes: [c] }], 'normal');
      if (enqueued === 0 || state === 'pending') continue;
      // Put the row in its state directly (claiming goes by seq, not by key).
      const db = new Database(t.path);
      db.prepare('UPDATE outbox SET state = ? WHERE key = ?').run(state, c.key);
      db.close();
    }
    return { s, path: t.path };
  }

  function rows(path: string): unknown[] {
    const db = new Database(path, { readonly: true });
    try {
      return db.prepare('SELECT key, state, lane FROM outbox ORDER BY seq').all();
    } finally {
      db.close();
    }
  }

  it('one commit of many changes leaves the outbox as one commit per change would', async () => {
    await fc.assert(
      fc.asyncProperty(historyArb, fc.array(changeArb, { minLength: 1, maxLength: 8 }), async (history, batch) => {
        // commitReconcile queues connector by connector (in order of first appearance): the
        // per-change commits follow that order.
        const order = [...new Set(batch.map((c) => c.connectorId))];
        const ordered = order.flatMap((id) => batch.filter((c) => c.connectorId === id));
        const bulk = await replay(history);
        const results = batch.map((c) => ({ subject: c.subject, decision: decision(c.subject), changes: [c] }));
        const one = await bulk.s.commitReconcile(results, 'normal');
        const single = await replay(history);
        let enqueued = 0;
        for (const c of ordered) enqueued += (await single.s.commitReconcile([{ subject: c.subject, decision: decision(c.subject), changes: [c] }], 'normal')).enqueued;
        expect(rows(bulk.path)).toEqual(rows(single.path));
        expect(one.enqueued).toBe(enqueued);
        await bulk.s.close();
        await single.s.close();
      }),
      { numRuns: 300 },
    );
  });

  it('a bulk commit supersedes the pending and retrying rows of each target it adds to, and leaves the one in flight', async () => {
    const pending = change('a@x.io', { decidedBy: 'o1' });
    const retrying = change('b@x.io', { decidedBy: 'o1' });
    const inFlight = change('c@x.io', { decidedBy: 'o1' });
    const { s: store, path } = await replay([
      [pending, 'pending'],
      [retrying, 'retry'],
      [inFlight, 'in_flight'],
    ]);
    const news = ['a@x.io', 'b@x.io', 'c@x.io', 'd@x.io'].map((who) => change(who, { target: 'granted', decidedBy: 'o2' }));
    const { enqueued } = await store.commitReconcile(
      news.map((c) => ({ subject: c.subject, decision: decision(c.subject, 'granted'), changes: [c] })),
      'normal',
    );
    expect(enqueued).toBe(4);
    expect(rows(path)).toEqual([
      { key: pending.key, state: 'superseded', lane: 'normal' },
      { key: retrying.key, state: 'superseded', lane: 'normal' },
      { key: inFlight.key, state: 'in_flight', lane: 'normal' },
      ...news.map((c) => ({ key: c.key, state: 'pending', lane: 'normal' })),
    ]);
  });

  describe('an older decision never lands after a newer one for its target (see also test/property/outbox-order)', () => {
    const grant = change('a@x.io', { target: 'granted', rule: 'R1-later-explicit-grant', decidedBy: 'o1' });
    const optout = change('a@x.io', { target: 'denied', decidedBy: 'o2' });
    const commit = (store: SqliteStore, c: Change, lane: 'high' | 'normal' = 'high') => store.commitReconcile([{ subject: c.subject, decision: decision(c.subject), changes: [c] }], lane);

    it('a grant in flight that fails after an opt-out was queued is not retried (nor dead-lettered)', async () => {
      for (const fail of ['retry', 'kill'] as const) {
        const store = await storeWith([{ c: grant, lane: 'normal' }]);
        const [inFlight] = await store.claimOutbox('crm', 10, Date.now());
        await commit(store, optout);
        if (fail === 'retry') await store.retryOutbox(inFlight?.id ?? -1, 0, 'HTTP 503');
        else await store.killOutbox(inFlight?.id ?? -1, 'HTTP 400');
        expect((await store.claimOutbox('crm', 10, Date.now() + 1)).map((i) => i.change.key), fail).toEqual([optout.key]);
        expect(await store.listDeadLetters(10)).toEqual([]);
      }
    });

    it('a grant in flight when the process died goes, if an opt-out was queued meanwhile', async () => {
      const t = tempStore();
      cleanups.push(t.cleanup);
      await commit(t.store, grant, 'normal');
      await t.store.claimOutbox('crm', 10, Date.now());
      await commit(t.store, optout);
      await t.store.close();
      const again = t.reopen();
      await again.requeueInFlight();
      expect((await again.claimOutbox('crm', 10, Date.now())).map((i) => i.change.key)).toEqual([optout.key]);
    });

    it('the same opt-out decided again after a grant replaced it is queued anew, behind the grant', async () => {
      const store = await storeWith([{ c: optout, lane: 'normal' }]);
      await commit(store, grant, 'normal');
      await commit(store, optout, 'normal');
      expect((await store.claimOutbox('crm', 10, Date.now())).map((i) => i.change.key)).toEqual([optout.key]);
    });

    it('a decision already in flight replaces what was queued since (an older grant is not pushed after it)', async () => {
      const store = await storeWith([{ c: optout, lane: 'normal' }]);
      await store.claimOutbox('crm', 10, Date.now());
      await commit(store, grant, 'normal');
      // Decided again: the opt-out in flight is the newest decision (same key) ...
      await commit(store, optout, 'normal');
      expect(await store.claimOutbox('crm', 10, Date.now())).toEqual([]);
      // ... and so is one with another key but the same value (the echo of that push).
      await commit(store, grant, 'normal');
      await commit(store, change('a@x.io', { target: 'denied', decidedBy: 'o3' }));
      expect(await store.claimOutbox('crm', 10, Date.now())).toEqual([]);
    });
  });

  it('a change re-armed in the middle of a bulk commit supersedes the rows added before it, not the other way round', async () => {
    const old = change('a@x.io', { decidedBy: 'o1' });
    const { s: store, path } = await replay([[old, 'done']]);
    const newer = change('a@x.io', { target: 'granted', decidedBy: 'o2' });
    // newer is added, then old's key comes again (the record went back on what we pushed): old wins.
    await store.commitReconcile(
      [
        { subject: 'a@x.io', decision: decision('a@x.io'), changes: [newer] },
        { subject: 'a@x.io', decision: decision('a@x.io'), changes: [old] },
      ],
      'normal',
    );
    // In seq order: the re-armed row now comes last (seq order is the order of decisions).
    expect(rows(path)).toEqual([
      { key: newer.key, state: 'superseded', lane: 'normal' },
      { key: old.key, state: 'pending', lane: 'normal' },
    ]);
  });
});
