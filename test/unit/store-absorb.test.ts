import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { toObservation } from '../../src/model/index.js';
import type { ConsentState, Observation, RecordSnapshot } from '../../src/model/index.js';
import type { SqliteStore, SqliteStoreOptions } from '../../src/store/sqlite/index.js';
import { collect, tempStore } from './store-helpers.js';

/*
 * Absorb's bulk paths give what absorbing little and often gives. The same random history of
 * pulls (pages of observations and snapshots, records moving between people, full pulls
 * dropping unseen records), pushed snapshots, webhook intakes and statements made through
 * consentd is written to three stores:
 * - "bulk": defaults (one absorb for everything, an empty records table filled then indexed,
 *   echo-free records proven at ingest), absorbed only when a read needs it;
 * - "eager": absorbed after every write, one log row at a time, no ingest-time proof: every echo
 *   is decided against the absorbed snapshot;
 * - "mixed": small chunks, absorbed at random points.
 * Every person's observations (echo flags included), records, the dirty set, the counts and
 * what the drops returned must be equal.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const SUBJECTS = ['a@x.io', 'b@x.io', 'c@x.io'];
const CONNECTORS = ['crm', 'esp'] as const;
const RECORDS = ['r1', 'r2', 'r3'];
const SCOPES = ['email:*', 'email:newsletter'];
const STATES: ConsentState[] = ['granted', 'denied', 'unknown'];
const TIMES = ['2024-01-01T00:00:00.000Z', '2024-02-01T00:00:00.000Z', null];

interface PageSpec {
  rows: Array<{ record: string; subject: number; scope: number; state: number; time: number; snapshot: boolean }>;
}
type Op =
  | { op: 'pull'; connector: number; full: boolean; pages: PageSpec[] }
  | { op: 'push'; connector: number; record: string; subject: number; scope: number; state: number }
  | { op: 'webhook'; connector: number; record: string; subject: number; scope: number; state: number; time: number; snapshot: boolean }
  | { op: 'cli'; subject: number; state: number; time: number }
  | { op: 'absorb' };

const row = fc.record({
  record: fc.constantFrom(...RECORDS),
  subject: fc.nat(SUBJECTS.length - 1),
  scope: fc.nat(SCOPES.length - 1),
  state: fc.nat(STATES.length - 1),
  time: fc.nat(TIMES.length - 1),
  snapshot: fc.boolean(),
});
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('pull' as const), connector: fc.nat(1), full: fc.boolean(), pages: fc.array(fc.record({ rows: fc.array(row, { maxLength: 5 }) }), { minLength: 1, maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('push' as const), connector: fc.nat(1), record: fc.constantFrom(...RECORDS), subject: fc.nat(SUBJECTS.length - 1), scope: fc.nat(1), state: fc.nat(1) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('webhook' as const), connector: fc.nat(1), record: fc.constantFrom(...RECORDS), subject: fc.nat(SUBJECTS.length - 1), scope: fc.nat(1), state: fc.nat(2), time: fc.nat(2), snapshot: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('cli' as const), subject: fc.nat(SUBJECTS.length - 1), state: fc.nat(1), time: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'absorb' as const }) },
);

function consentObs(source: string, recordId: string | null, subject: string, scope: string, state: ConsentState, statedAt: string | null, how: 'pull' | 'webhook' | 'api', reference: string | null): Observation {
  const [channel, purpose] = scope.split(':') as ['email', string];
  return toObservation({ subject, source, recordId, kind: 'consent', channel, purpose, state, strength: 'explicit', statedAt, how, reference, evidence: null, reason: null }, '2025-01-01T00:00:00.000Z');
}

/** Snapshots of a page: per record, the states its rows state (last wins), under the last row's person. */
function snapshotsOf(connectorId: string, rows: PageSpec['rows']): RecordSnapshot[] {
  const byRecord = new Map<string, RecordSnapshot>();
  for (const r of rows) {
    if (!r.snapshot) continue;
    const prev = byRecord.get(r.record);
    byRecord.set(r.record, {
      connectorId,
      recordId: r.record,
      subject: SUBJECTS[r.subject] as string,
      consent: { ...(prev?.consent ?? {}), [SCOPES[r.scope] as string]: STATES[r.state] as ConsentState },
      suppressed: {},
      meta: { page: 1 },
    });
  }
  return [...byRecord.values()];
}

async function play(store: SqliteStore, ops: readonly Op[], absorbAfterEach: boolean, absorbWhenAsked: boolean): Promise<unknown[]> {
  const drops: unknown[] = [];
  let run = 0;
  let event = 0;
  for (const o of ops) {
    if (o.op === 'pull') {
      const connectorId = CONNECTORS[o.connector] as string;
      run++;
      for (const page of o.pages) {
        const observations = page.rows.map((r) =>
          consentObs(connectorId, r.record, SUBJECTS[r.subject] as string, SCOPES[r.scope] as string, STATES[r.state] as ConsentState, TIMES[r.time] ?? null, 'pull', null),
        );
        await store.ingestPage(connectorId, run, { observations, records: snapshotsOf(connectorId, page.rows) }, null);
        if (absorbAfterEach) await store.absorb();
      }
      if (o.full) drops.push(await store.dropUnseenRecords(connectorId, run));
    } else if (o.op === 'push') {
      const connectorId = CONNECTORS[o.connector] as string;
      const snapshot: RecordSnapshot = { connectorId, recordId: o.record, subject: SUBJECTS[o.subject] as string, consent: { [SCOPES[o.scope] as string]: STATES[o.state] as ConsentState }, suppressed: {}, meta: {} };
      await store.completeOutbox([], [snapshot]);
    } else if (o.op === 'webhook') {
      const connectorId = CONNECTORS[o.connector] as string;
      const subject = SUBJECTS[o.subject] as string;
      const eventId = `e${event++}`;
      const observation = consentObs(connectorId, o.record, subject, SCOPES[o.scope] as string, STATES[o.state] as ConsentState, TIMES[o.time] ?? null, 'webhook', eventId);
      const records = o.snapshot ? [{ connectorId, recordId: o.record, subject, consent: { [SCOPES[o.scope] as string]: STATES[o.state] as ConsentState }, suppressed: {}, meta: {} }] : [];
      await store.recordWebhookEvents([{ connectorId, eventId, eventType: 'unsubscribe', receivedAt: '2025-01-01T00:00:00.000Z', payload: { eventId } }], new Map([[eventId, [observation]]]), records);
    } else if (o.op === 'cli') {
      await store.addObservations([consentObs('cli', null, SUBJECTS[o.subject] as string, 'email:*', STATES[o.state] as ConsentState, TIMES[o.time] ?? null, 'api', null)]);
    } else if (absorbWhenAsked) {
      await store.absorb();
    }
    if (absorbAfterEach) await store.absorb();
  }
  return drops;
}

async function view(store: SqliteStore): Promise<unknown> {
  await store.absorb();
  const people = [];
  for (const st of await store.subjectStates(SUBJECTS)) {
    people.push({
      subject: st.subject,
      observations: [...st.observations].sort((a, b) => (a.id < b.id ? -1 : 1)),
      records: [...st.records].sort((a, b) => `${a.connectorId}/${a.recordId}`.localeCompare(`${b.connectorId}/${b.recordId}`)),
    });
  }
  const dirty = (await store.dirtySubjects(100, null)).map((s) => s.subject);
  const { subjects, records, observations, dirtySubjects } = await store.stats();
  const ledger = (await collect(store.iterateObservations())).map((o) => o.id).sort();
  return { people, dirty, counts: { subjects, records, observations, dirtySubjects }, ledger };
}

function open(opts: SqliteStoreOptions): SqliteStore {
  const t = tempStore(opts);
  cleanups.push(t.cleanup);
  return t.store;
}

describe('sqlite store: absorb in bulk equals absorb little and often', () => {
  it('same people, echo flags, records, dirty set and drops for any history', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 14 }), async (ops) => {
        const bulk = open({ bulkRecords: 1 });
        const eager = open({ absorbChunk: 1, echoProof: false });
        const mixed = open({ absorbChunk: 3 });
        const drops = [await play(bulk, ops, false, false), await play(eager, ops, true, true), await play(mixed, ops, false, true)];
        expect(drops[1]).toEqual(drops[0]);
        expect(drops[2]).toEqual(drops[0]);
        const views = [await view(bulk), await view(eager), await view(mixed)];
        expect(views[1]).toEqual(views[0]);
        expect(views[2]).toEqual(views[0]);
        for (const c of cleanups.splice(0)) await c();
      }),
      { numRuns: 150 },
    );
  });
});
