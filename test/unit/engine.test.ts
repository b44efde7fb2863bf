import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connector, ConnectorCapabilities, PullPage, PushResult } from '../../src/connectors/contract.js';
import { applyOutbox, createEngine, erase, optOut, planReport, pullConnector, reconcile, type Engine, type EngineConfig } from '../../src/engine/index.js';
import { scopeKey, subjectHash, type Change, type ConsentState, type ObservationInput, type RecordSnapshot } from '../../src/model/index.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';
import { InFlightBudget, applyAll } from '../../src/engine/apply.js';

const SALT = 'engine-test-salt-0123456789';
const T0 = Date.parse('2024-06-01T00:00:00.000Z');

interface FakeRow {
  subject: string;
  consent: Record<string, { state: ConsentState; at: string }>;
  suppressed: Record<string, boolean>;
  erasure?: string;
}

type Behaviour = (change: Change, call: number) => PushResult | 'ok' | Error;

/** An in-memory system: records keyed by email, full pull, push applies what it is told. */
class FakeConnector implements Connector {
  readonly kind = 'fake';
  readonly rows = new Map<string, FakeRow>();
  readonly capabilities: ConnectorCapabilities;
  readonly pushed: Change[][] = [];
  behaviour: Behaviour = () => 'ok';
  /** How long each push takes (real time), for tests of the apply loop's timing. */
  pushDelayMs = 0;
  calls = 0;
  constructor(
    readonly id: string,
    readonly clock: { t: number },
    readonly limits = { batchSize: 10, requestsPerInterval: 1000, intervalMs: 1000, concurrency: 1 },
    caps: Partial<ConnectorCapabilities> = {},
  ) {
    this.capabilities = {
      consent: [
        { channel: 'email', purpose: '*' },
        { channel: 'email', purpose: 'newsletter' },
      ],
      suppression: ['email'],
      pushGrants: true,
      erase: true,
      acceptsUnknownAddresses: false,
      ...caps,
    };
  }

  set(subject: string, scope: string, state: ConsentState, at: string): this {
    const row = this.rows.get(subject) ?? { subject, consent: {}, suppressed: {} };
    row.consent[scope] = { state, at };
    this.rows.set(subject, row);
    return this;
  }

  snapshot(row: FakeRow): RecordSnapshot {
    return {
      connectorId: this.id,
      recordId: `${this.id}-${row.subject}`,
      subject: row.subject,
      consent: Object.fromEntries(Object.entries(row.consent).map(([k, v]) => [k, v.state])),
      suppressed: { ...row.suppressed },
      meta: {},
    };
  }

  async *pull(): AsyncIterable<PullPage> {
    const rows = [...this.rows.values()];
    for (let i = 0; i < rows.length || i === 0; i += 2) {
      const page = rows.slice(i, i + 2);
      const observations: ObservationInput[] = [];
      for (const row of page) {
        for (const [k, v] of Object.entries(row.consent)) {
          const [channel, purpose] = k.split(':') as ['email', string];
          observations.push({
            subject: row.subject,
            source: this.id,
            recordId: `${this.id}-${row.subject}`,
            kind: 'consent',
            channel,
            purpose,
            state: v.state,
            strength: 'explicit',
            statedAt: v.at,
            how: 'pull',
            reference: null,
            evidence: 'fake',
            reason: null,
          });
        }
        if (row.erasure !== undefined) {
          observations.push({ subject: row.subject, source: this.id, recordId: null, kind: 'erasure', channel: 'email', purpose: '*', state: 'denied', strength: 'explicit', statedAt: row.erasure, how: 'pull', reference: null, evidence: null, reason: null });
        }
      }
      yield { records: page.map((r) => this.snapshot(r)), observations, cursor: i + 2 >= rows.length ? `v${this.clock.t}` : null };
    }
  }

  async push(changes: Change[]): Promise<PushResult[]> {
    const call = ++this.calls;
    this.pushed.push(changes);
    if (this.pushDelayMs > 0) await new Promise((r) => setTimeout(r, this.pushDelayMs));
    const results: PushResult[] = [];
    for (const c of changes) {
      const b = this.behaviour(c, call);
      if (b instanceof Error) throw b;
      if (b !== 'ok') {
        results.push(b);
        continue;
      }
      const subject = c.subject;
      if (c.op === 'erase') this.rows.delete(subject);
      else if (c.op === 'suppress') {
        const row = this.rows.get(subject) ?? { subject, consent: {}, suppressed: {} };
        row.suppressed[c.channel] = true;
        this.rows.set(subject, row);
      } else if (c.target !== null) this.set(subject, scopeKey(c.channel, c.purpose), c.target, new Date(this.clock.t).toISOString());
      results.push({ key: c.key, status: 'ok' });
    }
    return results;
  }

  async check() {
    return { ok: true, details: [] };
  }
}

const config = (over: Partial<EngineConfig['outbox']> = {}): EngineConfig => ({
  salt: SALT,
  purposes: [{ id: 'newsletter', description: '' }],
  policy: { clockSkewMs: 60_000, reconfirmAfterMs: null, revokeStale: false, grantSources: ['cli', 'api', 'crm'] },
  outbox: { maxAttempts: 4, baseDelayMs: 1_000, maxDelayMs: 60_000, lingerMs: 0, ...over },
});

let store: SqliteStore | undefined;
afterEach(async () => {
  await store?.close();
  store = undefined;
});

function setup(connectors: (clock: { t: number }) => FakeConnector[], outbox: Partial<EngineConfig['outbox']> = {}) {
  const clock = { t: T0 };
  const sleeps: number[] = [];
  store = openSqliteStore(':memory:', { salt: SALT });
  const cs = connectors(clock);
  const engine = createEngine({
    config: config(outbox),
    store,
    connectors: cs,
    logger: pino({ level: 'silent' }),
    now: () => new Date(clock.t),
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock.t += ms;
    },
  });
  return { engine, store, clock, sleeps, cs };
}

async function pullAllFakes(engine: Engine): Promise<void> {
  for (const c of engine.connectors) await pullConnector(engine, c, { full: true });
}

describe('engine: pull -> reconcile -> apply', () => {
  it('converges, and a second reconcile enqueues nothing', async () => {
    const { engine, store, cs } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock)]);
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    crm.set('ann@example.com', 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    esp.set('ann@example.com', 'email:*', 'denied', '2024-02-01T00:00:00.000Z'); // later denial wins
    crm.set('bob@example.com', 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    esp.set('bob@example.com', 'email:newsletter', 'unknown', '2024-01-01T00:00:00.000Z');
    crm.set('cid@example.com', 'email:*', 'denied', '2024-01-01T00:00:00.000Z');

    await pullAllFakes(engine);
    const rec = await reconcile(engine);
    expect(rec.subjects).toBe(3);
    expect(rec.changes).toBeGreaterThan(0);
    expect(rec.enqueued).toBe(rec.changes);

    const a = await applyOutbox(engine, crm);
    const b = await applyOutbox(engine, esp);
    expect(a.dead + b.dead).toBe(0);
    expect(a.ok + b.ok).toBe(rec.changes);
    expect(a.left + b.left).toBe(0);

    // The systems agree now.
    expect(crm.rows.get('ann@example.com')?.consent['email:newsletter']?.state).toBe('denied');
    expect(crm.rows.get('ann@example.com')?.consent['email:*']?.state).toBe('denied');
    expect(esp.rows.get('bob@example.com')?.consent['email:newsletter']?.state).toBe('granted');

    // Echo of our own pushes: nothing to do, whether we re-decide what is dirty or everything.
    expect((await reconcile(engine)).changes).toBe(0);
    await pullAllFakes(engine);
    const again = await reconcile(engine);
    expect(again.subjects).toBe(3);
    expect(again.changes).toBe(0);
    expect(again.enqueued).toBe(0);
    await store.markAllDirty();
    expect((await reconcile(engine)).enqueued).toBe(0);
    expect(await store.outboxDepth()).toEqual({});
  });

  it('plan report writes nothing', async () => {
    const { engine, store, cs } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock)]);
    cs[0]?.set('ann@example.com', 'email:*', 'denied', '2024-01-01T00:00:00.000Z');
    cs[1]?.set('ann@example.com', 'email:*', 'granted', '2023-01-01T00:00:00.000Z');
    await pullAllFakes(engine);
    const seen: Change[] = [];
    const report = await planReport(engine, (c) => void seen.push(c));
    // esp: email:* and email:newsletter denied; crm: email:newsletter denied (rule 4).
    expect(report.changes).toBe(3);
    expect(report.bySystem['esp']).toEqual({ changes: 2, byOp: { 'set_consent:denied': 2 }, records: 1 });
    expect(report.bySystem['crm']).toEqual({ changes: 1, byOp: { 'set_consent:denied': 1 }, records: 1 });
    expect(seen).toHaveLength(3);
    const stats = await store.stats();
    expect(stats.outbox.pending).toBe(0);
    expect(stats.dirtySubjects).toBe(1);
    expect(await store.decision('ann@example.com')).toBeNull();
    // And reconcile then enqueues exactly that.
    expect((await reconcile(engine)).enqueued).toBe(3);
  });

  it('a push answered retry, then ok, is retried after the platform wait', async () => {
    const { engine, cs, sleeps } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock)]);
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    crm.set('ann@example.com', 'email:*', 'denied', '2024-01-01T00:00:00.000Z');
    esp.set('ann@example.com', 'email:*', 'unknown', '2024-01-01T00:00:00.000Z');
    esp.behaviour = (c, call) => (call === 1 ? { key: c.key, status: 'retry', reason: 'busy', retryAfterMs: 5_000 } : 'ok');
    await pullAllFakes(engine);
    await reconcile(engine);
    const s = await applyOutbox(engine, esp);
    expect(s).toMatchObject({ retried: 2, ok: 2, dead: 0, left: 0 });
    expect(esp.calls).toBe(2);
    expect(sleeps).toEqual([5_000]);
    expect(esp.rows.get('ann@example.com')?.consent['email:*']?.state).toBe('denied');
  });

  it('a permanent failure goes to the dead letters and can be replayed', async () => {
    const { engine, store, cs } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock)]);
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    crm.set('ann@example.com', 'email:*', 'denied', '2024-01-01T00:00:00.000Z');
    esp.set('ann@example.com', 'email:newsletter', 'unknown', '2024-01-01T00:00:00.000Z');
    esp.behaviour = (c) => (c.purpose === 'newsletter' ? { key: c.key, status: 'failed', reason: 'no such list', code: 'E_LIST' } : 'ok');
    await pullAllFakes(engine);
    await reconcile(engine);
    const s = await applyOutbox(engine, esp);
    expect(s).toMatchObject({ ok: 1, dead: 1, retried: 0 });
    const dead = await store.listDeadLetters(10);
    expect(dead).toHaveLength(1);
    expect(dead[0]?.reason).toBe('no such list');
    expect(dead[0]?.change.purpose).toBe('newsletter');

    esp.behaviour = () => 'ok';
    expect(await store.replayDeadLetter(dead[0]?.id ?? -1)).toBe(true);
    expect(await applyOutbox(engine, esp)).toMatchObject({ ok: 1, dead: 0 });
    expect(await store.listDeadLetters(10)).toHaveLength(0);
  });

  it('a thrown 429 applies to the whole batch and honours Retry-After', async () => {
    const { engine, store, cs, sleeps } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock)]);
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    for (const who of ['ann', 'bob', 'cid']) {
      crm.set(`${who}@example.com`, 'email:*', 'denied', '2024-01-01T00:00:00.000Z');
      esp.set(`${who}@example.com`, 'email:*', 'unknown', '2024-01-01T00:00:00.000Z');
    }
    esp.behaviour = (_c, call) => (call === 1 ? Object.assign(new Error('Too Many Requests'), { status: 429, headers: { 'retry-after': '7' } }) : 'ok');
    await pullAllFakes(engine);
    const rec = await reconcile(engine);
    expect(rec.byConnector['esp']).toBe(6);
    const s = await applyOutbox(engine, esp);
    expect(s).toMatchObject({ retried: 6, ok: 6, dead: 0, left: 0 });
    expect(sleeps).toEqual([7_000]);
    expect(esp.pushed[0]).toHaveLength(6);
    expect((await store.outboxDepth())['esp']).toBeUndefined();
  });

  it('retries are bounded: exhausted attempts dead-letter; backoff grows', async () => {
    const { engine, store, cs, sleeps } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock)], { maxAttempts: 3 });
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    crm.set('ann@example.com', 'email:*', 'denied', '2024-01-01T00:00:00.000Z');
    esp.set('ann@example.com', 'email:*', 'unknown', '2024-01-01T00:00:00.000Z');
    esp.behaviour = () => Object.assign(new Error('unavailable'), { status: 503 });
    await pullAllFakes(engine);
    await reconcile(engine);
    const s = await applyOutbox(engine, esp);
    expect(s).toMatchObject({ ok: 0, dead: 2, retried: 4 });
    expect(esp.calls).toBe(3);
    // random() = 0.5 with base 1 s: 500 ms, then 1000 ms.
    expect(sleeps).toEqual([500, 1_000]);
    const dead = await store.listDeadLetters(10);
    expect(dead.map((d) => d.reason)).toEqual([expect.stringMatching(/retries exhausted after 3 attempts: transient HTTP 503/), expect.stringMatching(/retries exhausted/)]);
  });

  it('a retry not due within maxWait is left queued and reported', async () => {
    const { engine, cs } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock)]);
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    crm.set('ann@example.com', 'email:*', 'denied', '2024-01-01T00:00:00.000Z');
    esp.set('ann@example.com', 'email:*', 'unknown', '2024-01-01T00:00:00.000Z');
    esp.behaviour = (c) => ({ key: c.key, status: 'retry', reason: 'quota', retryAfterMs: 3_600_000 });
    await pullAllFakes(engine);
    await reconcile(engine);
    const s = await applyOutbox(engine, esp, { maxWaitMs: 60_000 });
    expect(s).toMatchObject({ ok: 0, retried: 2, left: 2 });
  });

  it('erasure: requested in one system, erased everywhere; seen again, erased again', async () => {
    const { engine, store, cs } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock, undefined, { erase: false })]);
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    crm.set('ann@example.com', 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    esp.set('ann@example.com', 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    (crm.rows.get('ann@example.com') as FakeRow).erasure = '2024-03-01T00:00:00.000Z';
    crm.set('bob@example.com', 'email:*', 'denied', '2024-01-01T00:00:00.000Z');
    await pullAllFakes(engine);
    const rec = await reconcile(engine);
    expect(rec.erased).toBe(1);
    const hash = subjectHash('ann@example.com', SALT);
    expect(await store.isTombstoned(hash)).toBe(true);
    expect((await store.subjectState('ann@example.com')).observations).toHaveLength(0);

    await applyOutbox(engine, crm);
    await applyOutbox(engine, esp);
    expect(crm.rows.has('ann@example.com')).toBe(false); // crm can erase
    // esp cannot: anonymize-and-suppress.
    expect(esp.rows.get('ann@example.com')?.suppressed['email']).toBe(true);
    expect(esp.rows.get('ann@example.com')?.consent['email:newsletter']?.state).toBe('denied');
    expect((await store.subjectState('ann@example.com')).records).toHaveLength(0);

    // Someone re-imports her into crm: the pull erases her again and the audit records it.
    crm.set('ann@example.com', 'email:newsletter', 'granted', '2024-04-01T00:00:00.000Z');
    const p = await pullConnector(engine, crm, { full: true });
    expect(p.reerased).toBe(1);
    expect(await applyOutbox(engine, crm)).toMatchObject({ ok: 1 });
    expect(crm.rows.has('ann@example.com')).toBe(false);
    const facts: string[] = [];
    for await (const e of store.iterateErasures()) facts.push(e.source);
    expect(facts).toEqual(['crm', 'crm']);
    expect((await store.subjectState('ann@example.com')).observations).toHaveLength(0);
  });

  it('erasure: a full reconcile erases without an fsync (redone from the erasure request); the instant path and a re-import stay durable', async () => {
    const { engine, store, cs } = setup((clock) => [new FakeConnector('crm', clock)]);
    const [crm] = cs as [FakeConnector];
    crm.set('ann@example.com', 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    (crm.rows.get('ann@example.com') as FakeRow).erasure = '2024-03-01T00:00:00.000Z';
    // What each erasure's commit asked of SQLite: synchronous = NORMAL is the store's unsynced commit.
    const db = (store as unknown as { db: { pragma(sql: string): unknown } }).db;
    const pragma = db.pragma.bind(db);
    const syncs: string[] = [];
    db.pragma = (sql: string) => {
      if (sql.startsWith('synchronous')) syncs.push(sql);
      return pragma(sql);
    };
    const erasing = (): string[] => syncs.splice(0);
    const erase0 = store.eraseSubject.bind(store);
    const durable: boolean[] = [];
    store.eraseSubject = async (...args: Parameters<typeof erase0>) => {
      erasing();
      await erase0(...args);
      durable.push(!erasing().includes('synchronous = NORMAL'));
    };
    await pullAllFakes(engine);
    expect((await reconcile(engine)).erased).toBe(1);
    await applyOutbox(engine, crm);
    expect(crm.rows.has('ann@example.com')).toBe(false);
    // Re-imported: the pull erases again, durably (an incremental cursor would not read it again).
    crm.set('ann@example.com', 'email:newsletter', 'granted', '2024-04-01T00:00:00.000Z');
    expect((await pullConnector(engine, crm, { full: true })).reerased).toBe(1);
    // The CLI's erase answers its caller: durable.
    await erase(engine, 'bob@example.com', { source: 'cli' });
    expect(durable).toEqual([false, true, true]);
    expect(await store.isTombstoned(subjectHash('ann@example.com', SALT))).toBe(true);
    expect(await store.isTombstoned(subjectHash('bob@example.com', SALT))).toBe(true);
    // Every commit put synchronous back to FULL.
    expect(db.pragma('synchronous')).toEqual([{ synchronous: 2 }]);
  });

  it('erasure: the suppression a platform keeps on purpose (eraseKeepsSuppression) is not erased again every pull', async () => {
    const { engine, store, cs } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock, undefined, { erase: false, eraseKeepsSuppression: true })]);
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    crm.set('ann@example.com', 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    (crm.rows.get('ann@example.com') as FakeRow).erasure = '2024-03-01T00:00:00.000Z';
    esp.set('ann@example.com', 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    await pullAllFakes(engine);
    expect((await reconcile(engine)).erased).toBe(1);
    await applyOutbox(engine, crm);
    await applyOutbox(engine, esp);
    expect(esp.rows.get('ann@example.com')?.suppressed['email']).toBe(true); // the residue it keeps
    // Nightly pulls see the residue: not a re-import, nothing erased again.
    expect((await pullConnector(engine, esp, { full: true })).reerased).toBe(0);
    // A real re-import (a grant) on the same platform is erased again.
    esp.set('ann@example.com', 'email:newsletter', 'granted', '2024-05-01T00:00:00.000Z');
    expect((await pullConnector(engine, esp, { full: true })).reerased).toBe(1);
    const facts: string[] = [];
    for await (const e of store.iterateErasures()) facts.push(e.source);
    expect(facts).toEqual(['crm', 'esp']);
  });

  it('instant path: an opt-out is decided at once, only that person, in the high lane', async () => {
    const { engine, store, cs } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock)]);
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    crm.set('ann@example.com', 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    esp.set('ann@example.com', 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    crm.set('bob@example.com', 'email:*', 'denied', '2024-01-01T00:00:00.000Z');
    esp.set('bob@example.com', 'email:*', 'unknown', '2024-01-01T00:00:00.000Z');
    await pullAllFakes(engine);

    const r = await optOut(engine, ' Ann@Example.com ', { channel: 'email', purpose: 'newsletter' }, { source: 'cli', evidence: 'phone call' });
    expect(r.subject).toBe('ann@example.com');
    expect(r.added).toHaveLength(1);
    expect(r.reconcile.subjects).toBe(1);
    expect(r.reconcile.byConnector).toEqual({ crm: 1, esp: 1 });
    expect((await store.stats()).dirtySubjects).toBe(1); // bob is still waiting for the batch reconcile

    const claimed = await store.claimOutbox('esp', 10, Date.now());
    expect(claimed.map((i) => [i.lane, i.change.subject, i.change.target])).toEqual([['high', 'ann@example.com', 'denied']]);
    await store.requeueInFlight();

    await applyOutbox(engine, crm);
    await applyOutbox(engine, esp);
    expect(esp.rows.get('ann@example.com')?.consent['email:newsletter']?.state).toBe('denied');
    await expect(optOut(engine, 'not-an-email', {})).rejects.toMatchObject({ code: 'INVALID_EMAIL' });
    await expect(optOut(engine, 'ann@example.com', { purpose: 'nope' })).rejects.toMatchObject({ code: 'USAGE' });
  });

  it('CLI erase of a person: store forgets, systems get erase changes in the high lane', async () => {
    const { engine, store, cs } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock)]);
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    crm.set('ann@example.com', 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    esp.set('ann@example.com', 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    await pullAllFakes(engine);
    await reconcile(engine);
    const r = await erase(engine, 'ann@example.com', { source: 'cli' });
    expect(r.reconcile.erased).toBe(1);
    expect(await store.outboxDepth()).toEqual({ crm: 1, esp: 1 });
    const claimed = await store.claimOutbox('crm', 10, Date.now());
    expect(claimed.map((i) => [i.lane, i.change.op])).toEqual([['high', 'erase']]);
    await store.requeueInFlight();
    await applyOutbox(engine, crm);
    await applyOutbox(engine, esp);
    expect(crm.rows.size + esp.rows.size).toBe(0);
    const ledger: string[] = [];
    for await (const o of store.iterateObservations()) ledger.push(o.subject);
    expect(ledger).toEqual([]);
  });

  it('a push that waited for its rate-limit slot carries every change that became due meanwhile', async () => {
    // One push per 600 ms. ann goes out at once; bob opts out during that push, cy after it:
    // claimed when the next slot opens, both go in one push (claimed before waiting, bob would go
    // alone and cy would wait for a third slot).
    const { engine, cs } = setup((clock) => [new FakeConnector('crm', clock), new FakeConnector('esp', clock, { batchSize: 10, requestsPerInterval: 1, intervalMs: 600, concurrency: 1 })]);
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    for (const who of ['ann', 'bob', 'cy']) {
      crm.set(`${who}@example.com`, 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
      esp.set(`${who}@example.com`, 'email:newsletter', 'granted', '2024-01-01T00:00:00.000Z');
    }
    await pullAllFakes(engine);
    await applyOutbox(engine, esp);
    esp.pushed.length = 0;
    esp.pushDelayMs = 150;
    const later = (ms: number, email: string): Promise<unknown> => new Promise((r) => setTimeout(r, ms)).then(() => optOut(engine, email, { channel: 'email', purpose: 'newsletter' }, { source: 'cli' }));

    await optOut(engine, 'ann@example.com', { channel: 'email', purpose: 'newsletter' }, { source: 'cli' });
    const applying = applyOutbox(engine, esp, { maxWaitMs: 0 });
    const statements = Promise.all([later(50, 'bob@example.com'), later(250, 'cy@example.com')]);
    const [stats] = await Promise.all([applying, statements]);
    expect(stats.ok).toBe(3);
    expect(esp.pushed.map((b) => b.map((c) => c.subject))).toEqual([['ann@example.com'], ['bob@example.com', 'cy@example.com']]);
  });

  it('applyAll keeps the shared budget of changes in flight across connectors (a batch larger than it runs alone)', async () => {
    for (const capacity of [4, 6, 100]) {
      const { engine, cs } = setup((clock) => [
        new FakeConnector('crm', clock, { batchSize: 6, requestsPerInterval: 1000, intervalMs: 1000, concurrency: 2 }),
        new FakeConnector('esp', clock, { batchSize: 6, requestsPerInterval: 1000, intervalMs: 1000, concurrency: 2 }),
      ]);
      const [crm, esp] = cs as [FakeConnector, FakeConnector];
      for (let i = 0; i < 10; i++) {
        crm.set(`p${i}@example.com`, 'email:*', 'denied', '2024-01-01T00:00:00.000Z');
        esp.set(`p${i}@example.com`, 'email:newsletter', 'denied', '2024-01-01T00:00:00.000Z');
      }
      await pullAllFakes(engine);
      await reconcile(engine);
      let inFlight = 0;
      let most = 0;
      for (const c of cs) {
        const push = c.push.bind(c);
        c.push = async (changes) => {
          inFlight += changes.length;
          most = Math.max(most, inFlight);
          await new Promise((resolve) => setTimeout(resolve, 5));
          inFlight -= changes.length;
          return push(changes);
        };
      }
      const stats = await applyAll(engine, cs, { budget: new InFlightBudget(capacity) });
      expect([...stats.values()].reduce((n, s) => n + s.ok, 0)).toBe(20);
      expect(most).toBeLessThanOrEqual(Math.min(capacity, 24));
      for (const c of cs) expect(Math.max(...c.pushed.map((b) => b.length))).toBeLessThanOrEqual(Math.min(capacity, 6));
      if (capacity === 100) expect(most).toBeGreaterThan(6); // room for both connectors at once
      expect(crm.pushed.length + esp.pushed.length).toBeGreaterThan(0);
      await store?.close();
      store = undefined;
    }
  });

  it('batches respect batchSize', async () => {
    const { engine, cs } = setup((clock) => [
      new FakeConnector('crm', clock),
      new FakeConnector('esp', clock, { batchSize: 3, requestsPerInterval: 1000, intervalMs: 1000, concurrency: 2 }),
    ]);
    const [crm, esp] = cs as [FakeConnector, FakeConnector];
    for (let i = 0; i < 10; i++) {
      crm.set(`p${i}@example.com`, 'email:*', 'denied', '2024-01-01T00:00:00.000Z');
      esp.set(`p${i}@example.com`, 'email:*', 'unknown', '2024-01-01T00:00:00.000Z');
    }
    await pullAllFakes(engine);
    await reconcile(engine);
    const s = await applyOutbox(engine, esp);
    expect(s.ok).toBe(20);
    expect(Math.max(...esp.pushed.map((b) => b.length))).toBe(3);
    expect(esp.pushed).toHaveLength(7);
  });
});
