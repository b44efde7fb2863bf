import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { Observation as ObservationSchema, RecordSnapshot as RecordSchema, Decision as DecisionSchema } from '../../src/model/index.js';
import type { Observation } from '../../src/model/index.js';
import { LATEST_SCHEMA_VERSION, MIGRATIONS, openSqliteStore } from '../../src/store/sqlite/index.js';
import { StoreError } from '../../src/store/errors.js';
import { SALT, change, collect, decision, hashOf, obs, rec, tempStore } from './store-helpers.js';

const cleanups: Array<() => Promise<void>> = [];
function fresh(): ReturnType<typeof tempStore> {
  const t = tempStore();
  cleanups.push(t.cleanup);
  return t;
}
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('sqlite store: opening and migrations', () => {
  it('uses WAL and synchronous=FULL, and migrations are idempotent on reopen', async () => {
    const { store, reopen, path } = fresh();
    expect(store.schemaVersion).toBe(LATEST_SCHEMA_VERSION);
    await store.close();
    const again = reopen();
    expect(again.schemaVersion).toBe(LATEST_SCHEMA_VERSION);
    await again.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    const versions = db.prepare('SELECT version FROM schema_migrations').pluck().all();
    db.close();
    expect(versions).toEqual(MIGRATIONS.map((m) => m.version));
    expect(versions.at(-1)).toBe(LATEST_SCHEMA_VERSION);
    const conn = openSqliteStore(path);
    // synchronous is per connection: check the store's own.
    expect((conn as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true })).toBe(2);
    await conn.close();
  });

  it('refuses a database newer than the code, with a stable code', async () => {
    const { store, path } = fresh();
    await store.close();
    const db = new Database(path);
    db.prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)').run(LATEST_SCHEMA_VERSION + 1, 'future', 'x');
    db.close();
    expect(() => openSqliteStore(path)).toThrow(StoreError);
    try {
      openSqliteStore(path, { readonly: true });
    } catch (err) {
      expect((err as StoreError).code).toBe('STORE_SCHEMA_TOO_NEW');
    }
  });

  it('opens read-only and keeps a generated salt when none is given', async () => {
    const { path, reopen, store } = fresh();
    await store.ingestPage('crm', 1, { observations: [obs('a@x.io')], records: [] }, null);
    await store.close();
    const noSalt = reopen({ salt: undefined as unknown as string });
    const generated = noSalt.salt;
    expect(generated).toMatch(/^[0-9a-f]{64}$/);
    await noSalt.close();
    const ro = openSqliteStore(path, { readonly: true });
    expect(ro.salt).toBe(generated);
    // not absorbed yet: the read-only store still sees what waits in the log
    expect((await ro.subjectState('a@x.io')).observations).toHaveLength(1);
    await expect(ro.ingestPage('crm', 1, { observations: [obs('b@x.io')], records: [] }, null)).rejects.toThrow();
    await ro.close();
    await expect(ro.stats()).rejects.toMatchObject({ code: 'STORE_CLOSED' });
  });
});

describe('sqlite store: pull ingestion', () => {
  it('dedupes replayed observations, before and after absorption', async () => {
    const { store } = fresh();
    const page = { observations: [obs('a@x.io'), obs('b@x.io'), obs('a@x.io')], records: [rec('a@x.io')] };
    const r1 = await store.ingestPage('crm', 1, page, 'c1');
    expect(r1).toEqual({ observationsAdded: 2, recordsUpserted: 1, tombstoned: [] });
    // replayed before absorption: stored once all the same
    await store.ingestPage('crm', 1, page, 'c1');
    expect((await store.stats()).observations).toBe(2);
    const r3 = await store.ingestPage('crm', 1, page, 'c1');
    expect(r3.observationsAdded).toBe(0);
    expect((await store.stats()).observations).toBe(2);
    expect(await store.addObservations([obs('a@x.io'), obs('a@x.io', { purpose: 'newsletter' })])).toEqual([obs('a@x.io', { purpose: 'newsletter' }).id]);
    expect((await store.stats()).observations).toBe(3);
  });

  it('subjectStates loads several people at once, as subjectState each', async () => {
    const { store } = fresh();
    await store.ingestPage('crm', 1, { observations: [obs('a@x.io'), obs('b@x.io', { state: 'granted' })], records: [rec('a@x.io'), rec('b@x.io')] }, null);
    const many = await store.subjectStates(['b@x.io', 'a@x.io', 'b@x.io', 'none@x.io']);
    expect(many).toEqual([await store.subjectState('b@x.io'), await store.subjectState('a@x.io'), await store.subjectState('b@x.io'), { subject: 'none@x.io', observations: [], records: [] }]);
    expect(many[0]).not.toBe(many[2]);
    expect(many[1]?.records).toHaveLength(1);
  });

  it('saves the cursor in the same transaction as the page: a bad row writes nothing', async () => {
    const { store } = fresh();
    await store.ingestPage('crm', 1, { observations: [obs('a@x.io')], records: [rec('a@x.io')] }, 'c1');
    const bad = { ...obs('c@x.io'), channel: null } as unknown as Observation;
    await expect(store.ingestPage('crm', 1, { observations: [obs('b@x.io'), bad], records: [rec('b@x.io')] }, 'c2')).rejects.toThrow(/NOT NULL/);
    expect(await store.getCursor('crm')).toBe('c1');
    const st = await store.stats();
    expect([st.subjects, st.observations, st.records]).toEqual([1, 1, 1]);
    expect((await store.subjectState('b@x.io')).observations).toEqual([]);
    // a null cursor keeps the last position
    await store.ingestPage('crm', 1, { observations: [], records: [] }, null);
    expect(await store.getCursor('crm')).toBe('c1');
    expect(await store.getCursor('other')).toBeNull();
  });

  it('round-trips observations and snapshots exactly (zod-valid)', async () => {
    const { store } = fresh();
    const o = obs('a@x.io', { statedAt: null, evidence: 'form #12', reason: null, reference: 'ev-1', how: 'webhook' });
    const r = rec('a@x.io', { meta: { nested: { list: [1, 2] } } });
    await store.ingestPage('crm', 1, { observations: [o], records: [r] }, null);
    const st = await store.subjectState('a@x.io');
    expect(ObservationSchema.parse(st.observations[0])).toEqual(o);
    expect(st.observations).toEqual([o]);
    expect(RecordSchema.parse(st.records[0])).toEqual(r);
  });

  it('keeps the latest snapshot per record, moves records between subjects, drops unseen records', async () => {
    const { store } = fresh();
    await store.ingestPage('crm', 1, { observations: [], records: [rec('a@x.io'), rec('b@x.io')] }, null);
    await store.ingestPage('crm', 1, { observations: [], records: [rec('a@x.io', { consent: { 'email:*': 'denied' } })] }, null);
    expect((await store.subjectState('a@x.io')).records[0]?.consent).toEqual({ 'email:*': 'denied' });
    await store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io'), changes: [] }], 'normal');
    // the CRM changed the email of record r-a@x.io: both subjects must be re-decided
    await store.ingestPage('crm', 2, { observations: [], records: [rec('a2@x.io', { recordId: 'r-a@x.io' })] }, null);
    expect((await store.subjectState('a@x.io')).records).toEqual([]);
    expect((await store.subjectState('a2@x.io')).records).toHaveLength(1);
    const dirty = (await store.dirtySubjects(10, null)).map((s) => s.subject);
    expect(dirty).toEqual(['a2@x.io', 'a@x.io', 'b@x.io']);
    // run 2 did not see b's record
    expect(await store.dropUnseenRecords('crm', 2)).toBe(1);
    expect((await store.subjectState('b@x.io')).records).toEqual([]);
    expect((await store.stats()).records).toBe(1);
  });
});

describe('sqlite store: observation bodies', () => {
  it('a record id equal to the subject is stored once, and every form reads back as it was stated', async () => {
    const { store, path } = fresh();
    const bare = obs('a@x.io', { recordId: 'a@x.io' });
    const other = obs('a@x.io', { recordId: 'r-1', purpose: 'newsletter' });
    const none = obs('a@x.io', { recordId: null, source: 'cli', purpose: 'events' });
    const viaWebhook = obs('a@x.io', { recordId: 'a@x.io', state: 'granted', statedAt: '2024-07-01T10:00:00.000Z' });
    await store.ingestPage('crm', 1, { observations: [bare, other, none], records: [] }, null);
    await store.addObservations([viaWebhook]);
    // A body written before the elision holds the record id itself.
    const legacy = obs('a@x.io', { recordId: 'a@x.io', purpose: 'product_updates' });
    const db = new Database(path);
    db.prepare('INSERT INTO observations (subject, id, seq, echo, body) VALUES (?, ?, 99, 0, ?)').run(
      legacy.subject,
      legacy.id,
      JSON.stringify([legacy.source, legacy.recordId, legacy.kind, legacy.channel, legacy.purpose, legacy.state, legacy.strength, legacy.statedAt, legacy.how, legacy.reference, legacy.evidence, legacy.reason, legacy.observedAt]),
    );
    db.close();
    const byId = (xs: readonly Observation[]) => [...xs].sort((x, y) => (x.id < y.id ? -1 : 1));
    expect(byId((await store.subjectState('a@x.io')).observations)).toEqual(byId([bare, other, none, viaWebhook, legacy]));
    // Everything absorbed by now: only the legacy body and the one with another record id spell out an id.
    const ro = new Database(path, { readonly: true });
    const bodies = ro.prepare('SELECT body FROM observations WHERE subject = ?').pluck().all('a@x.io') as string[];
    ro.close();
    expect(bodies).toHaveLength(5);
    expect(bodies.filter((b) => b.includes('"a@x.io"'))).toHaveLength(1);
    expect(bodies.filter((b) => b.includes('"r-1"'))).toHaveLength(1);
  });
});

describe('sqlite store: reconcile', () => {
  it('pages dirty subjects by subject with their observations and records', async () => {
    const { store } = fresh();
    const subjects = Array.from({ length: 25 }, (_, i) => `p${String(i).padStart(2, '0')}@x.io`);
    await store.ingestPage('crm', 1, { observations: subjects.map((s) => obs(s)), records: subjects.map((s) => rec(s)) }, null);
    await store.ingestPage('esp', 1, { observations: subjects.slice(0, 5).map((s) => obs(s, { source: 'esp' })), records: [] }, null);
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page = await store.dirtySubjects(10, after);
      if (page.length === 0) break;
      for (const st of page) {
        seen.push(st.subject);
        expect(st.records).toHaveLength(1);
        expect(st.observations).toHaveLength(seen.length <= 5 ? 2 : 1);
      }
      after = page[page.length - 1]?.subject ?? null;
    }
    expect(seen).toEqual(subjects);
    expect(await store.dirtySubjects(100, null, ['p03@x.io', 'nobody@x.io'])).toMatchObject([{ subject: 'p03@x.io' }]);
    expect(await store.dirtySubjects(100, null, [])).toEqual([]);
    expect((await store.stats()).dirtySubjects).toBe(25);
  });

  it('commitReconcile is idempotent, supersedes older pending changes, clears dirty flags', async () => {
    const { store } = fresh();
    await store.ingestPage('crm', 1, { observations: [obs('a@x.io')], records: [rec('a@x.io')] }, null);
    const deny = change('a@x.io', { target: 'denied', decidedBy: 'o1' });
    const res = { subject: 'a@x.io', decision: decision('a@x.io'), changes: [deny] };
    expect(await store.commitReconcile([res], 'normal')).toEqual({ enqueued: 1 });
    expect(await store.commitReconcile([res], 'normal')).toEqual({ enqueued: 0 });
    expect(DecisionSchema.parse(await store.decision('a@x.io'))).toEqual(decision('a@x.io'));
    expect(await store.dirtySubjects(10, null)).toEqual([]);
    // a grant planned later for the same record and scope replaces the denial
    const grant = change('a@x.io', { target: 'granted', decidedBy: 'o2' });
    expect(await store.commitReconcile([{ ...res, decision: decision('a@x.io', 'granted'), changes: [grant] }], 'normal')).toEqual({ enqueued: 1 });
    const st = await store.stats();
    expect(st.outbox.pending).toBe(1);
    expect(st.outbox.superseded).toBe(1);
    const claimed = await store.claimOutbox('crm', 10, Date.now());
    expect(claimed.map((i) => i.change)).toEqual([grant]);
    expect(await store.decision('nobody@x.io')).toBeNull();
  });

  it('does not clear a subject marked dirty again after it was read', async () => {
    const { store } = fresh();
    await store.ingestPage('crm', 1, { observations: [obs('a@x.io')], records: [] }, null);
    const [st] = await store.dirtySubjects(10, null);
    expect(st?.subject).toBe('a@x.io');
    // a webhook arrives while the subject is being decided
    await store.recordWebhookEvents(
      [{ connectorId: 'esp', eventId: 'e1', eventType: 'unsubscribe', receivedAt: '2025-01-02T00:00:00.000Z', payload: { email: 'a@x.io' } }],
      new Map([['e1', [obs('a@x.io', { source: 'esp', how: 'webhook' })]]]),
      [],
    );
    await store.dirtySubjects(10, null, ['zzz@x.io']); // absorbs the webhook
    // Committed with the version it was decided from, as the reconcile does.
    await store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io'), changes: [], dirty: st?.dirty ?? -1 }], 'normal');
    const again = await store.dirtySubjects(10, null);
    expect(again.map((s) => s.subject)).toEqual(['a@x.io']);
    expect(again[0]?.observations).toHaveLength(2);
    await store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io'), changes: [], dirty: again[0]?.dirty ?? -1 }], 'normal');
    expect(await store.dirtySubjects(10, null)).toEqual([]);
    expect(await store.markAllDirty()).toBe(1);
    expect(await store.dirtySubjects(10, null)).toHaveLength(1);
  });
});

describe('sqlite store: webhooks', () => {
  it('dedupes events by connector + event id and stores only the observations of new events', async () => {
    const { store } = fresh();
    const ev = (id: string, connectorId = 'esp') => ({ connectorId, eventId: id, eventType: 'unsubscribe', receivedAt: '2025-01-02T00:00:00.000Z', payload: { id } });
    const o1 = obs('a@x.io', { source: 'esp', how: 'webhook', reference: 'e1' });
    const o2 = obs('b@x.io', { source: 'esp', how: 'webhook', reference: 'e2' });
    expect(await store.recordWebhookEvents([ev('e1')], new Map([['e1', [o1]]]), [rec('a@x.io', { connectorId: 'esp' })])).toEqual(['e1']);
    // e1 retried by the platform with a different translation: ignored
    const o1b = obs('a@x.io', { source: 'esp', how: 'webhook', reference: 'e1', purpose: 'newsletter' });
    expect(await store.recordWebhookEvents([ev('e1'), ev('e2')], new Map([['e1', [o1b]], ['e2', [o2]]]), [])).toEqual(['e2']);
    expect(await store.recordWebhookEvents([ev('e1', 'other')], new Map(), [])).toEqual(['e1']);
    const a = await store.subjectState('a@x.io');
    expect(a.observations).toEqual([o1]);
    expect(a.records).toHaveLength(1);
    expect((await store.dirtySubjects(10, null)).map((s) => s.subject)).toEqual(['a@x.io', 'b@x.io']);
  });
});

describe('sqlite store: erasure', () => {
  it('leaves only the tombstone and the audit fact; later data of the subject is returned, not stored', async () => {
    const { store, path } = fresh();
    const who = 'erase.me@x.io';
    await store.ingestPage('crm', 1, { observations: [obs(who), obs('keep@x.io')], records: [rec(who), rec('keep@x.io')] }, null);
    await store.recordWebhookEvents(
      [{ connectorId: 'esp', eventId: 'e9', eventType: 'unsubscribe', receivedAt: '2025-01-02T00:00:00.000Z', payload: { email: who } }],
      new Map([['e9', [obs(who, { source: 'esp', how: 'webhook' })]]]),
      [],
    );
    await store.commitReconcile([{ subject: who, decision: decision(who), changes: [change(who)] }], 'normal');
    const [item] = await store.claimOutbox('crm', 1, Date.now());
    await store.killOutbox(item?.id ?? -1, 'boom');
    await store.commitReconcile([{ subject: who, decision: decision(who), changes: [change(who, { purpose: 'newsletter' })] }], 'normal');

    await expect(store.eraseSubject(who, 'not-the-hash', 'cli', [])).rejects.toMatchObject({ code: 'STORE_SALT_MISMATCH' });
    const erase = change(who, { op: 'erase', target: null, rule: null, decidedBy: null });
    await store.eraseSubject(who, hashOf(who), 'cli', [erase]);
    expect(await store.isTombstoned(hashOf(who))).toBe(true);
    expect(await store.isTombstoned(hashOf('keep@x.io'))).toBe(false);

    const dump = (): string => {
      const db = new Database(path, { readonly: true });
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
      const rows = tables.flatMap((t) => db.prepare(`SELECT * FROM "${t}"`).all().map((r) => `${t}:${JSON.stringify(r)}`));
      db.close();
      return rows.filter((r) => r.includes(who)).join('\n');
    };
    // Only the pending erase change still names the person (it must, to erase them)
    expect(dump().split('\n').map((l) => l.slice(0, l.indexOf(':')))).toEqual(['outbox']);
    const [eraseItem] = await store.claimOutbox('crm', 10, Date.now());
    expect(eraseItem?.change.op).toBe('erase');
    expect(eraseItem?.lane).toBe('high');
    await store.completeOutbox([eraseItem?.id ?? -1], [rec(who)]);
    expect(dump()).toBe('');
    expect((await store.subjectState(who)).records).toEqual([]);

    // a later pull brings the person back: returned for re-erasure, not stored
    const r = await store.ingestPage('crm', 2, { observations: [obs(who, { state: 'granted' }), obs(who, { recordId: 'other-rec' })], records: [rec(who)] }, null);
    expect(r.observationsAdded).toBe(0);
    expect(r.recordsUpserted).toBe(0);
    expect(r.tombstoned.map((t) => t.recordId).sort()).toEqual(['other-rec', `r-${who}`]);
    expect(await store.addObservations([obs(who, { how: 'api' })])).toEqual([]);
    expect(dump()).toBe('');
    const st = await store.stats();
    expect(st.tombstones).toBe(1);
    expect(st.subjects).toBe(1);
    const audit = await collect(store.iterateErasures());
    expect(audit).toEqual([{ subjectHash: hashOf(who), source: 'cli', erasedAt: expect.any(String) as string }]);
  });
});

describe('sqlite store: streaming and durability', () => {
  it('iterateObservations streams the whole ledger in observedAt order, page by page', async () => {
    const { store } = fresh();
    const n = 12_345;
    const all: Observation[] = [];
    for (let i = 0; i < n; i++) {
      const at = new Date(Date.UTC(2025, 0, 1) + (i % 997) * 1000).toISOString();
      all.push(obs(`p${i}@x.io`, {}, at));
    }
    for (let i = 0; i < n; i += 5000) await store.ingestPage('crm', 1, { observations: all.slice(i, i + 5000), records: [] }, String(i));
    const streamed = await collect(store.iterateObservations());
    expect(streamed).toHaveLength(n);
    const sorted = [...all].sort((a, b) => (a.observedAt < b.observedAt ? -1 : a.observedAt > b.observedAt ? 1 : 0));
    expect(streamed.map((o) => o.observedAt)).toEqual(sorted.map((o) => o.observedAt));
    expect(new Set(streamed.map((o) => o.id)).size).toBe(n);
  });

  it('a reopened store sees everything that was acknowledged', async () => {
    const { store, reopen } = fresh();
    const run = await store.startRun('pull_full', 'crm');
    await store.ingestPage('crm', run, { observations: [obs('a@x.io'), obs('b@x.io')], records: [rec('a@x.io')] }, 'cur-1');
    await store.commitReconcile([{ subject: 'a@x.io', decision: decision('a@x.io'), changes: [change('a@x.io')] }], 'high');
    await store.finishRun(run, 'ok', { pages: 1 });
    const running = await store.startRun('apply', 'crm');
    await store.eraseSubject('gone@x.io', hashOf('gone@x.io'), 'cli', []);
    await store.close();

    const again = reopen();
    expect(await again.getCursor('crm')).toBe('cur-1');
    expect(await again.decision('a@x.io')).toEqual(decision('a@x.io'));
    expect((await again.subjectState('a@x.io')).observations).toHaveLength(1);
    expect(await again.outboxDepth()).toEqual({ crm: 1 });
    expect(await again.isTombstoned(hashOf('gone@x.io'))).toBe(true);
    expect((await again.dirtySubjects(10, null)).map((s) => s.subject)).toEqual(['b@x.io']);
    expect(await again.interruptRunningRuns()).toBe(1);
    const runs = await again.listRuns(10);
    expect(runs.map((r) => [r.id, r.kind, r.status])).toEqual([
      [running, 'apply', 'interrupted'],
      [run, 'pull_full', 'ok'],
    ]);
    expect(runs[1]).toMatchObject({ connectorId: 'crm', stats: { pages: 1 }, error: null });
    expect(await again.lastRun('pull_full', 'crm', 'ok')).toMatchObject({ id: run });
    expect(await again.lastRun('pull_full', null)).toBeNull();
    expect(await again.lastRun('apply', 'crm', 'ok')).toBeNull();
    // the salt must match for tombstones to match
    expect(SALT).toBe(again.salt);
  });
});
