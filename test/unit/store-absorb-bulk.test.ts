import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { RecordSnapshot } from '../../src/model/index.js';
import { absorbRecordsInBulk, createAbsorbTempTables, prepareAbsorb } from '../../src/store/sqlite/absorb.js';
import { migrate } from '../../src/store/sqlite/index.js';
import type { SqliteStore, SqliteStoreOptions } from '../../src/store/sqlite/index.js';
import { obs, tempStore } from './store-helpers.js';

/*
 * The bulk load of an empty `records` sorts the snapshot log once, by key with the latest first
 * (absorbRecordsInBulk), and the dirty subjects of a load into empty tables are read from the
 * tables (absorbDirtyFromTables). Both must give exactly what the per-record window and the
 * subjects of the logs give: duplicates within a run, across runs (a pull re-run), pushed and
 * webhook snapshots (run NULL) and records that moved to another subject (the fallback).
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

interface LogRow {
  subject: number;
  connector: number;
  record: number;
  run: number | null;
}
const SUBJECTS = ['a@x.io', 'b@x.io', 'c@x.io'];
const CONNECTORS = ['crm', 'esp'];

function logDb(rows: readonly LogRow[]): Database.Database {
  const db = new Database(':memory:');
  migrate(db, ':memory:');
  createAbsorbTempTables(db);
  const ins = db.prepare('INSERT INTO rec_log (subject, connector_id, record_id, snapshot, run) VALUES (?, ?, ?, ?, ?)');
  rows.forEach((r, i) => ins.run(SUBJECTS[r.subject], CONNECTORS[r.connector], `r${r.record}`, JSON.stringify({ n: i }), r.run));
  return db;
}

const dump = (db: Database.Database): unknown[] => db.prepare('SELECT * FROM records ORDER BY connector_id, record_id, subject').all();

describe('sqlite absorb: bulk records in one sort', () => {
  it('equals the per-record window for any log; takes the one-sort path unless a record moved', () => {
    const rowArb = fc.record({
      subject: fc.nat(SUBJECTS.length - 1),
      connector: fc.nat(CONNECTORS.length - 1),
      record: fc.nat(3),
      run: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null }),
    });
    fc.assert(
      fc.property(fc.array(rowArb, { minLength: 1, maxLength: 12 }), fc.nat(12), (rows, cut) => {
        const recTo = Math.max(1, Math.min(rows.length, cut));
        const fast = logDb(rows);
        const ref = logDb(rows);
        try {
          const onePass = fast.transaction(() => absorbRecordsInBulk(fast, prepareAbsorb(fast), recTo)).immediate();
          const refStatements = prepareAbsorb(ref);
          ref.transaction(() => {
            ref.exec('DROP INDEX records_id');
            refStatements.absorbRecInto.run(recTo);
            ref.exec('CREATE UNIQUE INDEX records_id ON records(connector_id, record_id)');
          }).immediate();
          expect(dump(fast)).toEqual(dump(ref));
          const subjectsOf = new Map<string, Set<number>>();
          for (const r of rows.slice(0, recTo)) {
            const k = `${r.connector}/${r.record}`;
            subjectsOf.set(k, (subjectsOf.get(k) ?? new Set()).add(r.subject));
          }
          expect(onePass).toBe([...subjectsOf.values()].every((s) => s.size === 1));
          expect(fast.prepare("SELECT sql FROM sqlite_master WHERE name = 'records_id'").pluck().get()).toBe(
            'CREATE UNIQUE INDEX records_id ON records(connector_id, record_id)',
          );
        } finally {
          fast.close();
          ref.close();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the latest snapshot and the latest pull run of a record logged twice in a run, pushed, and by a webhook', () => {
    const db = logDb([
      { subject: 0, connector: 0, record: 1, run: 1 },
      { subject: 1, connector: 0, record: 2, run: 1 },
      { subject: 0, connector: 0, record: 1, run: 1 }, // the same record on a later page of the run
      { subject: 1, connector: 0, record: 2, run: null }, // pushed after the pull: keeps run 1
      { subject: 2, connector: 1, record: 3, run: null }, // only a webhook saw it
      { subject: 2, connector: 1, record: 3, run: 2 },
      { subject: 2, connector: 1, record: 3, run: null },
      { subject: 0, connector: 1, record: 0, run: null },
    ]);
    try {
      expect(db.transaction(() => absorbRecordsInBulk(db, prepareAbsorb(db), 8)).immediate()).toBe(true);
      expect(db.prepare('SELECT subject, connector_id, record_id, snapshot, last_seen_run FROM records ORDER BY connector_id, record_id').raw().all()).toEqual([
        ['a@x.io', 'crm', 'r1', '{"n":2}', 1],
        ['b@x.io', 'crm', 'r2', '{"n":3}', 1],
        ['a@x.io', 'esp', 'r0', '{"n":7}', null],
        ['c@x.io', 'esp', 'r3', '{"n":6}', 2],
      ]);
    } finally {
      db.close();
    }
  });

  it('a record that moved to another subject falls back to the window: the latest subject wins, once', () => {
    const db = logDb([
      { subject: 0, connector: 0, record: 1, run: 1 },
      { subject: 1, connector: 0, record: 1, run: 1 },
      { subject: 2, connector: 0, record: 2, run: 1 },
    ]);
    try {
      expect(db.transaction(() => absorbRecordsInBulk(db, prepareAbsorb(db), 3)).immediate()).toBe(false);
      expect(db.prepare('SELECT subject, record_id, snapshot, last_seen_run FROM records ORDER BY record_id').raw().all()).toEqual([
        ['b@x.io', 'r1', '{"n":1}', 1],
        ['c@x.io', 'r2', '{"n":2}', 1],
      ]);
    } finally {
      db.close();
    }
  });
});

/** A snapshot of `subject`'s record `recordId` at connector crm. */
function snap(subject: string, recordId: string, state: 'granted' | 'denied', connectorId = 'crm'): RecordSnapshot {
  return { connectorId, recordId, subject, consent: { 'email:*': state }, suppressed: {}, meta: {} };
}

describe('sqlite store: a bulk load into empty tables', () => {
  function open(opts: SqliteStoreOptions): { store: SqliteStore; raw: () => unknown } {
    const t = tempStore(opts);
    cleanups.push(t.cleanup);
    const raw = (): unknown => {
      const db = new Database(t.path, { readonly: true });
      try {
        return {
          records: db.prepare('SELECT subject, connector_id, record_id, snapshot, last_seen_run FROM records ORDER BY connector_id, record_id').raw().all(),
          dirty: db.prepare('SELECT subject FROM subjects WHERE dirty > 0 ORDER BY subject').pluck().all(),
          subjects: db.prepare('SELECT subject FROM subjects ORDER BY subject').pluck().all(),
          observations: db.prepare('SELECT subject, id, echo FROM observations ORDER BY subject, id').raw().all(),
        };
      } finally {
        db.close();
      }
    };
    return { store: t.store, raw };
  }

  /** The same history into a bulk store and into one absorbing every write: equal stores. */
  async function both(history: (store: SqliteStore) => Promise<void>): Promise<unknown> {
    const bulk = open({ bulkRecords: 1 });
    const eager = open({ absorbChunk: 1, echoProof: false });
    await history(bulk.store);
    await history(eager.store);
    await bulk.store.absorb();
    await eager.store.absorb();
    const got = bulk.raw();
    expect(got).toEqual(eager.raw());
    return got;
  }

  it('duplicates within a run, a pull re-run, pushed and webhook snapshots: same records, runs and dirty set', async () => {
    const got = await both(async (store) => {
      await store.ingestPage('crm', 1, { observations: [obs('a@x.io', { recordId: 'ra' })], records: [snap('a@x.io', 'ra', 'granted'), snap('b@x.io', 'rb', 'granted')] }, null);
      await store.ingestPage('crm', 1, { observations: [obs('a@x.io', { recordId: 'ra', state: 'denied' })], records: [snap('a@x.io', 'ra', 'denied')] }, null);
      // the pull re-run (after a crash): the same records again, run 2
      await store.ingestPage('crm', 2, { observations: [obs('a@x.io', { recordId: 'ra' })], records: [snap('a@x.io', 'ra', 'denied'), snap('b@x.io', 'rb', 'granted')] }, null);
      await store.completeOutbox([], [snap('b@x.io', 'rb', 'denied')]);
      const o = obs('c@x.io', { source: 'esp', recordId: 'rc', how: 'webhook' });
      await store.recordWebhookEvents(
        [{ connectorId: 'esp', eventId: 'e1', eventType: 'unsubscribe', receivedAt: '2025-01-01T00:00:00.000Z', payload: {} }],
        new Map([['e1', [o]]]),
        [snap('c@x.io', 'rc', 'denied', 'esp')],
      );
    });
    expect((got as { records: unknown[] }).records).toEqual([
      ['a@x.io', 'crm', 'ra', JSON.stringify({ consent: { 'email:*': 'denied' }, suppressed: {}, meta: {} }), 2],
      ['b@x.io', 'crm', 'rb', JSON.stringify({ consent: { 'email:*': 'denied' }, suppressed: {}, meta: {} }), 2],
      ['c@x.io', 'esp', 'rc', JSON.stringify({ consent: { 'email:*': 'denied' }, suppressed: {}, meta: {} }), null],
    ]);
    expect((got as { dirty: unknown[] }).dirty).toEqual(['a@x.io', 'b@x.io', 'c@x.io']);
  });

  it('a record that moved subject in the log: one record under the latest subject, both subjects dirty', async () => {
    const got = await both(async (store) => {
      await store.ingestPage('crm', 1, { observations: [obs('a@x.io', { recordId: 'ra' })], records: [snap('a@x.io', 'ra', 'granted'), snap('old@x.io', 'rm', 'granted')] }, null);
      await store.ingestPage('crm', 1, { observations: [], records: [snap('new@x.io', 'rm', 'denied')] }, null);
    });
    expect((got as { records: unknown[][] }).records.map((r) => r.slice(0, 3))).toEqual([
      ['a@x.io', 'crm', 'ra'],
      ['new@x.io', 'crm', 'rm'],
    ]);
    // old@x.io only appeared through the moved record's earlier snapshot: dirty all the same
    expect((got as { dirty: unknown[] }).dirty).toEqual(['a@x.io', 'new@x.io', 'old@x.io']);
  });

  it('observations only, and records only', async () => {
    await both(async (store) => {
      await store.ingestPage('crm', 1, { observations: [obs('a@x.io'), obs('b@x.io')], records: [] }, null);
    });
    await both(async (store) => {
      await store.ingestPage('crm', 1, { observations: [], records: [snap('a@x.io', 'ra', 'granted'), snap('b@x.io', 'rb', 'denied')] }, null);
    });
  });
});
