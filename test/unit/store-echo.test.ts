import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import type { Decision, Observation } from '../../src/model/index.js';
import { LATEST_SCHEMA_VERSION, MIGRATIONS, migrate, openSqliteStore } from '../../src/store/sqlite/index.js';
import type { SqliteStore, SqliteStoreOptions } from '../../src/store/sqlite/index.js';
import { change, collect, obs, rec, tempStore } from './store-helpers.js';

/*
 * Policy rule 10 in the store: a consent observation from connector C about record R whose state
 * equals what the stored snapshot of (C, R) said before it was ingested is an echo: kept in the
 * ledger, flagged `echo: true`, ignored by the policy.
 */

const cleanups: Array<() => Promise<void>> = [];
function fresh(opts: SqliteStoreOptions = {}): ReturnType<typeof tempStore> {
  const t = tempStore(opts);
  cleanups.push(t.cleanup);
  return t;
}
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const A = 'a@x.io';
const T1 = '2024-06-01T10:00:00.000Z';
const T2 = '2025-02-02T02:02:02.000Z';

/** id -> echo flag of a subject's stored observations. */
async function flags(store: SqliteStore, subject = A): Promise<Record<string, boolean>> {
  const st = await store.subjectState(subject);
  return Object.fromEntries(st.observations.map((o) => [o.id, o.echo === true]));
}

describe('sqlite store: echoes (rule 10)', () => {
  it('a second page repeating the states of the stored snapshot is flagged echo; a changed state is news', async () => {
    const { store } = fresh();
    const first = [obs(A, { statedAt: T1, state: 'denied' }), obs(A, { purpose: 'newsletter', state: 'granted', statedAt: T1 })];
    const snap = rec(A, { consent: { 'email:*': 'denied', 'email:newsletter': 'granted' } });
    await store.ingestPage('crm', 1, { observations: first, records: [snap] }, null);
    // first sighting, even though the snapshot of the same page says the same: news
    expect(Object.values(await flags(store))).toEqual([false, false]);

    // The next pull: same states with a drifted time (LastModifiedDate), and a real change.
    const drift = obs(A, { statedAt: T2, state: 'denied' });
    const changed = obs(A, { purpose: 'newsletter', state: 'denied', statedAt: T2 });
    const unseenScope = obs(A, { purpose: 'events', state: 'granted', statedAt: T2 });
    const next = rec(A, { consent: { 'email:*': 'denied', 'email:newsletter': 'denied', 'email:events': 'granted' } });
    await store.ingestPage('crm', 2, { observations: [drift, changed, unseenScope], records: [next] }, null);
    const f = await flags(store);
    expect(f[drift.id]).toBe(true);
    expect(f[changed.id]).toBe(false);
    expect(f[unseenScope.id]).toBe(false);
    expect(Object.keys(f)).toHaveLength(5);

    // the echo is kept in the ledger with its flag, and round-trips zod-valid
    const ledger = await collect(store.iterateObservations());
    expect(ledger.find((o) => o.id === drift.id)).toEqual({ ...drift, echo: true });
    expect(ledger.find((o) => o.id === changed.id)).toEqual(changed);
    expect('echo' in (ledger.find((o) => o.id === changed.id) as Observation)).toBe(false);
    // dirtySubjects returns them flagged too
    const [dirty] = await store.dirtySubjects(10, null);
    expect(dirty?.observations.find((o) => o.id === drift.id)?.echo).toBe(true);
  });

  it('compares with the snapshot before the ingestion even when nothing was absorbed in between', async () => {
    const { store } = fresh();
    // page 1 and page 2 of two runs both waiting in the log, with a record that appears in both
    await store.ingestPage('crm', 1, { observations: [obs(A, { state: 'granted', statedAt: T1 })], records: [rec(A, { consent: { 'email:*': 'granted' } })] }, null);
    const flip = obs(A, { state: 'denied', statedAt: T2 });
    const same = obs(A, { state: 'granted', statedAt: T2, purpose: '*', reference: 'again' });
    // this page's own snapshot says denied: it must not make `flip` an echo (it is the new state)
    await store.ingestPage('crm', 2, { observations: [flip, same], records: [rec(A, { consent: { 'email:*': 'denied' } })] }, null);
    const f = await flags(store);
    expect(f[flip.id]).toBe(false);
    expect(f[same.id]).toBe(true);
    expect((await store.subjectState(A)).records[0]?.consent).toEqual({ 'email:*': 'denied' });
  });

  it('the echo of our own push: completeOutbox stores the pushed snapshot, the next pull repeating it is an echo', async () => {
    const { store } = fresh();
    await store.ingestPage('crm', 1, { observations: [obs(A, { state: 'granted', statedAt: T1 })], records: [rec(A, { consent: { 'email:*': 'granted' } })] }, null);
    await store.absorb();
    const c = change(A, { target: 'denied' });
    await store.commitReconcile([{ subject: A, decision: { subject: A, permissions: [], suppressions: [], erasureRequested: false }, changes: [c] }], 'normal');
    const [item] = await store.claimOutbox('crm', 10, Date.now());
    expect(item?.change.key).toBe(c.key);
    await store.completeOutbox([item?.id ?? -1], [rec(A, { consent: { 'email:*': 'denied' } })]);
    // No absorb in between (a new CLI process): the pull comes back with our write, timed at push time.
    const echoOfPush = obs(A, { state: 'denied', statedAt: T2, evidence: 'consentd:R1-denial-sticky' });
    const other = obs(A, { state: 'granted', statedAt: T2, purpose: 'newsletter' });
    await store.ingestPage('crm', 2, { observations: [echoOfPush, other], records: [rec(A, { consent: { 'email:*': 'denied', 'email:newsletter': 'granted' } })] }, null);
    const f = await flags(store);
    expect(f[echoOfPush.id]).toBe(true);
    expect(f[other.id]).toBe(false);
  });

  it('webhooks: an event repeating the pushed snapshot is an echo; its own snapshot does not count as "before"', async () => {
    const { store } = fresh();
    const ev = (id: string) => ({ connectorId: 'esp', eventId: id, eventType: 'unsubscribe', receivedAt: T2, payload: { id } });
    await store.completeOutbox([], [rec(A, { connectorId: 'esp', consent: { 'email:*': 'denied' } })]);
    const echoed = obs(A, { source: 'esp', how: 'webhook', reference: 'e1', state: 'denied', statedAt: T2 });
    const news = obs(A, { source: 'esp', how: 'webhook', reference: 'e2', state: 'granted', purpose: 'newsletter', statedAt: T2 });
    const snap = rec(A, { connectorId: 'esp', consent: { 'email:*': 'denied', 'email:newsletter': 'granted' } });
    await store.recordWebhookEvents([ev('e1'), ev('e2')], new Map([['e1', [echoed]], ['e2', [news]]]), [snap]);
    const f = await flags(store);
    expect(f[echoed.id]).toBe(true);
    expect(f[news.id]).toBe(false);
  });

  it('never an echo: statements made through consentd, suppressions, erasures, another source, another record', async () => {
    const { store } = fresh();
    await store.ingestPage('crm', 1, { observations: [], records: [rec(A, { consent: { 'email:*': 'denied' } })] }, null);
    await store.absorb();
    const cli = obs(A, { source: 'cli', recordId: null, how: 'manual', state: 'denied', statedAt: T2 });
    // even a statement naming the record, with the state it already holds
    const cliNamed = obs(A, { source: 'crm', how: 'manual', state: 'denied', statedAt: T2, reference: 'admin' });
    expect(await store.addObservations([cli, cliNamed])).toHaveLength(2);
    const bounce = obs(A, { kind: 'suppression', reason: 'hard_bounce', state: 'unknown', statedAt: T2 });
    const complaint = obs(A, { kind: 'suppression', reason: 'complaint', state: 'denied', statedAt: T2 });
    const erasure = obs(A, { kind: 'erasure', state: 'denied', statedAt: T2 });
    const foreign = obs(A, { source: 'other', state: 'denied', statedAt: T2 });
    const otherRecord = obs(A, { recordId: 'r-2', state: 'denied', statedAt: T2 });
    await store.ingestPage('crm', 2, { observations: [bounce, complaint, erasure, foreign, otherRecord], records: [] }, null);
    const f = await flags(store);
    expect(Object.keys(f)).toHaveLength(7);
    expect(Object.values(f).every((e) => !e)).toBe(true);
  });

  it('a read-only store flags what still waits in the log the same way', async () => {
    const { store, path } = fresh();
    await store.ingestPage('crm', 1, { observations: [], records: [rec(A, { consent: { 'email:*': 'denied' } })] }, null);
    const echoed = obs(A, { state: 'denied', statedAt: T2 });
    await store.ingestPage('crm', 2, { observations: [echoed], records: [rec(A, { consent: { 'email:*': 'granted' } })] }, null);
    const ro = openSqliteStore(path, { readonly: true, salt: 'test-salt' });
    cleanups.push(() => ro.close());
    expect((await ro.subjectState(A)).observations).toEqual([{ ...echoed, echo: true }]);
    expect((await store.subjectState(A)).observations).toEqual([{ ...echoed, echo: true }]);
  });

  it('small absorb chunks: a snapshot logged after a waiting observation never reaches records before it', async () => {
    const { store } = fresh({ absorbChunk: 2 });
    await store.ingestPage('crm', 1, { observations: [], records: [rec(A, { consent: { 'email:*': 'granted' } })] }, null);
    await store.absorb();
    // run 2: one page, three observations (A's last) then A's new snapshot; absorbed two rows at a time,
    // A's observation waits for the second chunk while its page's snapshot could go in the first.
    const others = ['b@x.io', 'c@x.io'].map((s) => obs(s, { state: 'denied', statedAt: T2 }));
    const flip = obs(A, { state: 'denied', statedAt: T2 });
    await store.ingestPage('crm', 2, { observations: [...others, flip], records: [rec(A, { consent: { 'email:*': 'denied' } })] }, null);
    // run 3 repeats run 2 with a drifted time: an echo of run 2's snapshot
    const again = obs(A, { state: 'denied', statedAt: '2025-03-03T00:00:00.000Z' });
    await store.ingestPage('crm', 3, { observations: [again], records: [rec(A, { consent: { 'email:*': 'denied' } })] }, null);
    await store.absorb();
    const f = await flags(store);
    expect(f[flip.id]).toBe(false);
    expect(f[again.id]).toBe(true);
    expect((await store.subjectState(A)).records[0]?.consent).toEqual({ 'email:*': 'denied' });
  });

  it('migrates a version-2 database with absorbed rows: observations, snapshots and decisions read back the same', async () => {
    const { store, path, reopen } = fresh();
    await store.close();
    const { rmSync } = await import('node:fs');
    rmSync(path, { force: true });
    const db = new Database(path);
    migrate(db, path, MIGRATIONS.filter((m) => m.version <= 2));
    const o1 = obs(A, { state: 'denied', statedAt: T1 });
    const o2 = { ...obs(A, { purpose: 'newsletter', state: 'granted', statedAt: null, reference: 'ref', evidence: 'form' }, '2024-12-31T00:00:00.000Z'), echo: true as const };
    const insert = db.prepare(
      `INSERT INTO observations (subject, id, source, record_id, kind, channel, purpose, state, strength, stated_at, how, reference, evidence, reason, observed_at, seq, echo)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const [o, seq] of [[o1, 1], [o2, 2]] as const) {
      insert.run(o.subject, o.id, o.source, o.recordId, o.kind, o.channel, o.purpose, o.state, o.strength, o.statedAt, o.how, o.reference, o.evidence, o.reason, o.observedAt, seq, 'echo' in o ? 1 : 0);
    }
    const snap = rec(A, { consent: { 'email:*': 'denied' } });
    db.prepare('INSERT INTO records (subject, connector_id, record_id, snapshot, last_seen_run) VALUES (?, ?, ?, ?, 1)').run(A, snap.connectorId, snap.recordId, JSON.stringify(snap));
    const d: Decision = { subject: A, permissions: [{ channel: 'email', purpose: '*', state: 'denied', rule: 'R1-denial-sticky', decidedBy: o1.id, statedAt: T1, stale: false }], suppressions: [], erasureRequested: false };
    db.prepare('INSERT INTO decisions (subject, decision, decided_at) VALUES (?, ?, ?)').run(A, JSON.stringify(d), T2);
    db.close();
    const migrated = reopen();
    expect(migrated.schemaVersion).toBe(LATEST_SCHEMA_VERSION);
    const st = await migrated.subjectState(A);
    expect([...st.observations].sort((a, b) => (a.id < b.id ? -1 : 1))).toEqual([o1, o2].sort((a, b) => (a.id < b.id ? -1 : 1)));
    expect(st.records).toEqual([snap]);
    expect(await migrated.decision(A)).toEqual(d);
    // the ledger in observedAt order: o2 was observed first
    expect((await collect(migrated.iterateObservations())).map((o) => o.id)).toEqual([o2.id, o1.id]);
    // a decision written now reads back the same in the compact form
    await migrated.commitReconcile([{ subject: A, decision: { ...d, suppressions: [{ channel: 'email', reason: 'complaint', decidedBy: o1.id, statedAt: null }], erasureRequested: true }, changes: [] }], 'normal');
    expect(await migrated.decision(A)).toEqual({ ...d, suppressions: [{ channel: 'email', reason: 'complaint', decidedBy: o1.id, statedAt: null }], erasureRequested: true });
  });

  it('migrates a version-1 database with waiting logs: old rows are news, rec_log seqs are kept and never reused', async () => {
    const { store, path, reopen } = fresh();
    await store.close();
    // rebuild as a v1 database
    const { rmSync } = await import('node:fs');
    rmSync(path, { force: true });
    const db = new Database(path);
    migrate(db, path, MIGRATIONS.filter((m) => m.version === 1));
    db.prepare(`INSERT INTO rec_log (seq, subject, connector_id, record_id, snapshot, run) VALUES (7, ?, 'crm', ?, ?, 1)`).run(A, `r-${A}`, JSON.stringify(rec(A, { consent: { 'email:*': 'denied' } })));
    const old = obs(A, { state: 'denied', statedAt: T1 });
    db.prepare(
      `INSERT INTO obs_log (subject, id, source, record_id, kind, channel, purpose, state, strength, stated_at, how, reference, evidence, reason, observed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(old.subject, old.id, old.source, old.recordId, old.kind, old.channel, old.purpose, old.state, old.strength, old.statedAt, old.how, old.reference, old.evidence, old.reason, old.observedAt);
    db.close();
    const migrated = reopen();
    expect(migrated.schemaVersion).toBe(LATEST_SCHEMA_VERSION);
    const echoed = obs(A, { state: 'denied', statedAt: T2 });
    await migrated.ingestPage('crm', 2, { observations: [echoed], records: [] }, null);
    const f = await flags(migrated);
    expect(f[old.id]).toBe(false);
    expect(f[echoed.id]).toBe(true);
    // the log is empty now; the next snapshot does not reuse seq 7
    await migrated.completeOutbox([], [rec(A)]);
    const check = new Database(path, { readonly: true });
    expect(check.prepare('SELECT seq FROM rec_log').pluck().all()).toEqual([8]);
    check.close();
  });
});
