import type PQueue from 'p-queue';
import type { Connector, PushResult, WebhookEvent, WebhookRequest, WebhookTranslation } from '../connectors/contract.js';
import { applyOutbox, queueFor } from '../engine/apply.js';
import type { Engine } from '../engine/context.js';
import { planSubjectState } from '../engine/decide-subject.js';
import { pullConnector } from '../engine/pull.js';
import { RECONCILE_PAGE, reconcile, reconcileSubjects, type ReconcileStats } from '../engine/reconcile.js';
import { erase, grant, optOut, type StatementResult } from '../engine/statements.js';
import { ConsentdError } from '../errors.js';
import { ALL_PURPOSES, subjectHash, toObservation, type Change, type Observation, type ObservationInput, type RecordSnapshot } from '../model/index.js';
import { decide, explainDecision } from '../policy/index.js';
import type { RunInfo, WebhookIntake } from '../store/store.js';
import type { DaemonControls, DaemonEngineHooks } from './daemon.js';
import { HttpError } from './http/errors.js';
import type { AdminApi, Readiness, ReadinessCheck, WebhookIntakeResult } from './http/types.js';
import { storeQueueCollector } from './metrics.js';
import type { DaemonMetrics } from './metrics.js';
import type { ScheduleKind } from './scheduler.js';

/*
 * The engine side of `consentd run` (DaemonEngineHooks): webhook intake and the instant path,
 * the outbox workers' apply step, the scheduled jobs, the admin API, readiness and recovery.
 *
 * Instant path (DESIGN.md section 4): intake -> toObservations -> store.recordWebhookEvents
 * (durable, dedupe by event id; requests arriving together share one transaction, see
 * "group commit") -> answer. Only then, without holding the answer, the subjects
 * are re-decided in the high lane and every connector's worker is woken: an opt-out received
 * from one platform goes out to all the others at once, even while a nightly run is busy (the
 * store claims the high lane first). Instant reconciles are coalesced: while one runs, the
 * subjects of further webhooks wait in a set and go in the next batch. If the process dies
 * between the answer and the reconcile, the subjects stay dirty in the store and recover()
 * reconciles them at the next start.
 *
 * Observations are matched to the events they came from by their `reference` (the event id,
 * or "<prefix>:<event id>"); an observation no event claims is attached to every event of the
 * request, which is harmless (observation ids are content hashes, stored once) and means it is
 * dropped only when every event of the request is a duplicate.
 *
 * Propagation metric (consentd_propagation_seconds), best effort and in memory: for each
 * subject of an accepted webhook (or admin statement) the receipt time and the earliest statedAt
 * are kept; after its instant reconcile the keys of its pending changes are planned again from the
 * store; each successful push of one of those keys removes it, and the last one observes
 * `received -> push` and `stated -> push`. Entries that never complete (a change dead-lettered or
 * superseded) are dropped after an hour; at most `maxTracked` subjects are tracked. A restart
 * loses the pending entries (and their observations).
 *
 * Reconfirmation (policy rule 9): the store offers no cheap scan of stale grants, so the
 * reconfirm job marks every subject dirty, counts stale explicit grants while reading them
 * (one read pass, page by page) and re-decides everyone in the normal lane (which revokes stale
 * grants when policy.revokeStale is on). It is recorded as a `reconcile` run whose connector is
 * "(reconfirm)", which is how lastSuccess('reconfirm') finds it.
 *
 * Readiness: ready while the store answers (stats, cached 15 s). Each connector's last check()
 * (run at start and every `checkIntervalMs`) is reported under `connector:<id>` but does not make
 * the daemon unready: a platform outage must not stop the intake of the others' webhooks.
 */

export const RECONFIRM_RUN = '(reconfirm)';

export interface EngineHooksOptions {
  /** Connector checks for /readyz: at start and then this often; default 5 min; 0 = only at start. */
  checkIntervalMs?: number;
  /** Longest a check() may take before it counts as failed; default 30 s. */
  checkTimeoutMs?: number;
  /** Most subjects tracked for the propagation metric; default 100,000. */
  maxTracked?: number;
  /** Run the connector checks at all (default true). */
  checks?: boolean;
}

export interface EngineHooks extends DaemonEngineHooks {
  /** Stops the periodic checks (the daemon's shutdown leaves the rest to the store close). */
  close(): void;
  /** Resolves when no instant reconcile is running or pending (tests, benchmarks). */
  idle(): Promise<void>;
}

interface Tracked {
  receivedAt: number;
  statedAt: number | null;
  /** Change keys still to push; null until planned after the instant reconcile. */
  keys: Set<string> | null;
  lastPushAt: number | null;
}

const TRACK_TTL_MS = 3600_000;

/** In-memory, best-effort propagation timing (see the header comment). */
class PropagationTracker {
  readonly #bySubject = new Map<string, Tracked>();
  #lastSweep = Date.now();

  constructor(
    private readonly metrics: DaemonMetrics,
    private readonly max: number,
  ) {}

  get size(): number {
    return this.#bySubject.size;
  }

  has(subject: string): boolean {
    return this.#bySubject.get(subject)?.keys === null;
  }

  track(subject: string, receivedAt: number, statedAt: number | null): void {
    this.#sweep(receivedAt);
    const t = this.#bySubject.get(subject);
    if (t) {
      // A newer statement for a subject still propagating: keep the earlier times, plan again.
      t.keys = null;
      if (statedAt !== null && (t.statedAt === null || statedAt < t.statedAt)) t.statedAt = statedAt;
      return;
    }
    if (this.#bySubject.size >= this.max) return;
    this.#bySubject.set(subject, { receivedAt, statedAt, keys: null, lastPushAt: null });
  }

  /** The changes still to push for a subject after its instant reconcile. */
  planned(subject: string, keys: readonly string[]): void {
    const t = this.#bySubject.get(subject);
    if (!t) return;
    if (keys.length === 0) {
      // Nothing to push (already agreeing), or everything went out before we looked.
      if (t.lastPushAt !== null) this.#observe(t, t.lastPushAt);
      this.#bySubject.delete(subject);
      return;
    }
    t.keys = new Set(keys);
  }

  pushed(change: Change, at: number): void {
    const t = this.#bySubject.get(change.subject);
    if (!t) return;
    t.lastPushAt = at;
    if (t.keys === null) return;
    t.keys.delete(change.key);
    if (t.keys.size === 0) {
      this.#observe(t, at);
      this.#bySubject.delete(change.subject);
    }
  }

  #observe(t: Tracked, at: number): void {
    this.metrics.propagation('received', (at - t.receivedAt) / 1000);
    if (t.statedAt !== null) this.metrics.propagation('stated', (at - t.statedAt) / 1000);
  }

  #sweep(now: number): void {
    if (now - this.#lastSweep < 60_000) return;
    this.#lastSweep = now;
    for (const [s, t] of this.#bySubject) if (now - t.receivedAt > TRACK_TTL_MS) this.#bySubject.delete(s);
  }
}

/** event id -> observations, matched by reference (see the header comment). */
export function observationsByEvent(events: readonly WebhookEvent[], observations: readonly Observation[]): Map<string, Observation[]> {
  const byEvent = new Map<string, Observation[]>(events.map((e) => [e.id, []]));
  const unmatched: Observation[] = [];
  for (const o of observations) {
    const list = eventOf(o.reference, byEvent);
    if (list) list.push(o);
    else unmatched.push(o);
  }
  if (unmatched.length > 0) for (const list of byEvent.values()) list.push(...unmatched);
  return byEvent;
}

function eventOf(reference: string | null, byEvent: Map<string, Observation[]>): Observation[] | undefined {
  if (reference === null) return undefined;
  const exact = byEvent.get(reference);
  if (exact) return exact;
  const first = reference.indexOf(':');
  if (first >= 0) {
    const rest = byEvent.get(reference.slice(first + 1));
    if (rest) return rest;
    const last = byEvent.get(reference.slice(reference.lastIndexOf(':') + 1));
    if (last) return last;
  }
  return undefined;
}

function timeOf(run: RunInfo | null): number | null {
  if (!run) return null;
  const t = Date.parse(run.startedAt);
  return Number.isNaN(t) ? null : t;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function createEngineHooks(engine: Engine, controls: DaemonControls, opts: EngineHooksOptions = {}): EngineHooks {
  const { store } = engine;
  const log = engine.logger.child({ component: 'engine-hooks' });
  const metrics = controls.metrics;
  const tracker = new PropagationTracker(metrics, opts.maxTracked ?? 100_000);
  metrics.setQueueCollector(storeQueueCollector(store));

  // ---- apply: one long-lived queue and a push-observing wrapper per connector -------------
  const queues = new Map<string, PQueue>();
  const observed = new Map<string, Connector>();
  const observedConnector = (c: Connector): Connector => {
    let w = observed.get(c.id);
    if (w) return w;
    w = {
      id: c.id,
      kind: c.kind,
      get limits() {
        return c.limits;
      },
      capabilities: c.capabilities,
      pull: (cursor) => c.pull(cursor),
      check: () => c.check(),
      push: async (changes: Change[]): Promise<PushResult[]> => {
        let results: PushResult[];
        const started = Date.now();
        try {
          results = await c.push(changes);
        } catch (err) {
          metrics.pushBatch(c.id, (Date.now() - started) / 1000, changes.length);
          metrics.pushes(c.id, 'retry', changes.length);
          throw err;
        }
        const at = Date.now();
        metrics.pushBatch(c.id, (at - started) / 1000, changes.length);
        const byKey = new Map(changes.map((ch) => [ch.key, ch] as const));
        let ok = 0;
        let retry = changes.length - results.length;
        let failed = 0;
        for (const r of results) {
          if (r.status === 'ok') {
            ok++;
            const ch = byKey.get(r.key);
            if (ch) tracker.pushed(ch, at);
          } else if (r.status === 'retry') retry++;
          else failed++;
        }
        metrics.pushes(c.id, 'ok', ok);
        metrics.driftFixed(c.id, ok);
        metrics.pushes(c.id, 'retry', Math.max(0, retry));
        metrics.pushes(c.id, 'failed', failed);
        return results;
      },
    };
    observed.set(c.id, w);
    return w;
  };

  const connectorOf = (id: string): Connector => {
    const c = engine.connector(id);
    if (!c) throw new Error(`no connector "${id}"`);
    return c;
  };

  const countDrift = (stats: ReconcileStats): void => {
    for (const [id, n] of Object.entries(stats.byConnector)) metrics.driftFound(id, n);
  };

  // ---- the instant path: coalesced high-lane reconciles ----------------------------------
  const pending = new Set<string>();
  let instant: Promise<void> | null = null;

  const planTracked = async (subjects: readonly string[]): Promise<void> => {
    const opts = engine.policyOptions();
    for (const s of subjects) {
      if (!tracker.has(s)) continue;
      const plan = planSubjectState(engine, await store.subjectState(s), opts);
      tracker.planned(
        s,
        plan.changes.map((c) => c.key),
      );
    }
  };

  const instantLoop = async (): Promise<void> => {
    while (pending.size > 0) {
      const batch = [...pending];
      pending.clear();
      try {
        // The tracker learns each subject's pending change keys from the reconcile itself; a
        // tracked subject it did not plan (no longer dirty: another run took it) is planned from the store.
        const planned = new Set<string>();
        const stats = await reconcileSubjects(engine, batch, 'high', (subject, changes) => {
          if (!tracker.has(subject)) return;
          planned.add(subject);
          tracker.planned(
            subject,
            changes.map((c) => c.key),
          );
        });
        countDrift(stats);
        if (tracker.size > 0) await planTracked(batch.filter((s) => !planned.has(s)));
        if (stats.changes > 0) log.debug({ subjects: stats.subjects, changes: stats.changes, enqueued: stats.enqueued }, 'instant reconcile');
      } catch (err) {
        // The subjects stay dirty: the next reconcile (scheduled, or recover() at start) takes them.
        log.error({ err, subjects: batch.length }, 'instant reconcile failed');
      }
      controls.notify();
    }
  };

  const kick = (subjects: Iterable<string>): void => {
    for (const s of subjects) pending.add(s);
    if (instant !== null || pending.size === 0) return;
    instant = instantLoop().finally(() => {
      instant = null;
      if (pending.size > 0) kick([]);
    });
  };

  const idle = async (): Promise<void> => {
    while (instant !== null) await instant;
  };

  // ---- group commit of webhook intakes -------------------------------------------------------
  // Every store write is fsynced; one transaction per webhook request would cap intake at the
  // disk's fsync rate. Requests parsed in the same event-loop turn are written together, one
  // recordWebhookEvents call (one transaction) per connector, and each answered once it is durable.
  interface QueuedIntake {
    intakes: WebhookIntake[];
    byEvent: Map<string, Observation[]>;
    records: RecordSnapshot[];
    resolve: (fresh: Set<string>) => void;
    reject: (err: unknown) => void;
  }
  const intakeQueue = new Map<string, QueuedIntake[]>();
  let flushScheduled = false;
  const flushIntakes = async (): Promise<void> => {
    flushScheduled = false;
    const batches = [...intakeQueue];
    intakeQueue.clear();
    for (const [connectorId, list] of batches) {
      const byEvent = new Map<string, Observation[]>();
      for (const q of list) for (const [id, obs] of q.byEvent) if (!byEvent.has(id)) byEvent.set(id, obs);
      try {
        const fresh = new Set(
          await store.recordWebhookEvents(
            list.flatMap((q) => q.intakes),
            byEvent,
            list.flatMap((q) => q.records),
          ),
        );
        // An event delivered twice in one batch is new for the first request only.
        const claimed = new Set<string>();
        for (const q of list) {
          const mine = new Set<string>();
          for (const i of q.intakes) {
            if (fresh.has(i.eventId) && !claimed.has(i.eventId)) {
              claimed.add(i.eventId);
              mine.add(i.eventId);
            }
          }
          q.resolve(mine);
        }
      } catch (err) {
        log.error({ connector: connectorId, err, requests: list.length }, 'webhook intake could not be stored');
        for (const q of list) q.reject(err);
      }
    }
  };
  const recordIntake = (connectorId: string, q: Omit<QueuedIntake, 'resolve' | 'reject'>): Promise<Set<string>> =>
    new Promise((resolve, reject) => {
      const list = intakeQueue.get(connectorId) ?? [];
      list.push({ ...q, resolve, reject });
      intakeQueue.set(connectorId, list);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(() => void flushIntakes());
      }
    });

  /**
   * Erasure requests the platform could only name by record (the person is already gone there):
   * the person is the one the store holds that record for. Unknown records are logged, not lost
   * silently: the platform no longer has them and consentd never had them.
   */
  const resolveErasures = async (connectorId: string, requests: NonNullable<WebhookTranslation['erasuresByRecord']>): Promise<ObservationInput[]> => {
    const out: ObservationInput[] = [];
    for (const r of requests) {
      const subject = await engine.store.subjectOfRecord(connectorId, r.recordId);
      if (subject === null) {
        log.warn({ connector: connectorId, recordId: r.recordId }, 'erasure request for a record consentd never stored: nothing to erase');
        continue;
      }
      out.push({ subject, source: connectorId, recordId: r.recordId, kind: 'erasure', channel: 'email', purpose: ALL_PURPOSES, state: 'denied', strength: 'explicit', statedAt: r.statedAt, how: 'webhook', reference: r.reference, evidence: 'erasure request (record already deleted by the platform)', reason: null });
    }
    return out;
  };

  /**
   * A person moved to a new address: their denials and suppressions follow them (never their
   * grants: consent is given to an address by its owner), each with its own time and source.
   */
  const followAddressChanges = async (connectorId: string, moves: NonNullable<WebhookTranslation['addressChanges']>): Promise<ObservationInput[]> => {
    const out: ObservationInput[] = [];
    for (const m of moves) {
      const old = await engine.store.subjectState(m.from);
      for (const o of old.observations) {
        if (o.echo === true || o.kind === 'erasure' || (o.kind === 'consent' && o.state !== 'denied')) continue;
        out.push({ ...o, subject: m.to, source: connectorId, recordId: null, how: 'webhook', reference: m.reference, evidence: `${o.evidence ?? o.kind} (followed from the previous address on ${connectorId})` });
      }
    }
    return out;
  };

  const intake = async (connectorId: string, events: WebhookEvent[], req: WebhookRequest): Promise<WebhookIntakeResult> => {
    const webhook = connectorOf(connectorId).webhook;
    if (!webhook) throw new Error(`connector "${connectorId}" takes no webhooks`);
    const translation = await webhook.toObservations(events, { subjectOf: (recordId) => store.subjectOfRecord(connectorId, recordId) });
    const inputs = [
      ...translation.observations,
      ...(await resolveErasures(connectorId, translation.erasuresByRecord ?? [])),
      ...(await followAddressChanges(connectorId, translation.addressChanges ?? [])),
    ];
    const observations = inputs.map((o) => toObservation(o, engine.now()));
    const byEvent = observationsByEvent(events, observations);
    const receivedAt = req.receivedAt.toISOString();
    const intakes: WebhookIntake[] = events.map((e) => ({ connectorId, eventId: e.id, eventType: e.type, receivedAt, payload: e.payload }));
    const fresh = await recordIntake(connectorId, { intakes, byEvent, records: translation.records ?? [] });

    // Durable. Now the instant path, without holding the answer.
    const subjects = new Set<string>();
    for (const r of translation.records ?? []) subjects.add(r.subject);
    for (const e of events) {
      for (const o of byEvent.get(e.id) ?? []) {
        subjects.add(o.subject);
        if (fresh.has(e.id)) {
          const stated = o.statedAt === null ? null : Date.parse(o.statedAt);
          tracker.track(o.subject, req.receivedAt.getTime(), stated !== null && !Number.isNaN(stated) ? stated : null);
        }
      }
    }
    kick(subjects);
    const result: WebhookIntakeResult = { accepted: fresh.size, duplicates: events.length - fresh.size };
    log.debug({ connector: connectorId, accepted: result.accepted, duplicates: result.duplicates, observations: observations.length }, 'webhook intake');
    const ack = webhook.acknowledge?.();
    if (ack) result.response = ack;
    return result;
  };

  // ---- apply step of one worker ------------------------------------------------------------
  const drainOnce = async (connectorId: string, signal: AbortSignal) => {
    const c = connectorOf(connectorId);
    let queue = queues.get(connectorId);
    if (!queue) {
      queue = queueFor(c);
      queues.set(connectorId, queue);
    }
    const stats = await applyOutbox(engine, observedConnector(c), { until: 'due', recordRun: false, queue, signal });
    return { claimed: stats.pushed, nextDueAt: await store.nextDue(connectorId) };
  };

  // ---- scheduled jobs ---------------------------------------------------------------------------
  /** Pages of a pull stop at the next boundary once the signal is aborted (the run fails; cursors stay). */
  const abortable = (c: Connector, signal: AbortSignal): Connector => {
    const w = observedConnector(c);
    return {
      ...w,
      limits: c.limits,
      pull: async function* (cursor) {
        for await (const page of c.pull(cursor)) {
          if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('run aborted');
          yield page;
        }
      },
    };
  };

  const pullJob = async (full: boolean, signal: AbortSignal): Promise<void> => {
    const failed: string[] = [];
    for (const c of engine.connectors) {
      if (signal.aborted) break;
      try {
        await pullConnector(engine, abortable(c, signal), { full });
      } catch (err) {
        failed.push(c.id);
        log.warn({ connector: c.id, err }, 'pull failed; the other systems go on');
      }
    }
    if (!signal.aborted) {
      const stats = await reconcile(engine, 'normal');
      countDrift(stats);
      log.info({ full, subjects: stats.subjects, changes: stats.changes, enqueued: stats.enqueued, erased: stats.erased }, 'reconciled');
      controls.notify();
    }
    if (signal.aborted) throw new Error('run aborted (shutting down)');
    if (failed.length > 0) throw new Error(`pull failed for ${failed.join(', ')}`);
  };

  const reconfirmJob = async (signal: AbortSignal): Promise<void> => {
    const runId = await store.startRun('reconcile', RECONFIRM_RUN);
    let stale = 0;
    let subjects = 0;
    try {
      await store.markAllDirty();
      let after: string | null = null;
      for (;;) {
        if (signal.aborted) throw new Error('run aborted (shutting down)');
        const page = await store.dirtySubjects(RECONCILE_PAGE, after);
        if (page.length === 0) break;
        const opts = engine.policyOptions();
        for (const st of page) {
          subjects++;
          const d = decide(st.subject, st.observations, opts);
          for (const p of d.permissions) if (p.stale) stale++;
        }
        after = page[page.length - 1]?.subject ?? after;
        if (page.length < RECONCILE_PAGE) break;
      }
      const stats = await reconcile(engine, 'normal');
      countDrift(stats);
      metrics.setStaleGrants(stale);
      log.info({ subjects, staleGrants: stale, revoked: engine.config.policy.revokeStale, changes: stats.changes }, 'reconfirmation: stale explicit grants counted');
      await store.finishRun(runId, 'ok', { subjects, staleGrants: stale, changes: stats.changes });
      controls.notify();
    } catch (err) {
      await store.finishRun(runId, 'failed', { subjects, staleGrants: stale }, err instanceof Error ? err.message : String(err)).catch(() => undefined);
      throw err;
    }
  };

  const lastSuccess = async (kind: ScheduleKind): Promise<Date | null> => {
    if (kind === 'reconfirm') {
      const t = timeOf(await store.lastRun('reconcile', RECONFIRM_RUN, 'ok'));
      return t === null ? null : new Date(t);
    }
    if (engine.connectors.length === 0) return null;
    let oldest = Infinity;
    for (const c of engine.connectors) {
      let t = timeOf(await store.lastRun('pull_full', c.id, 'ok'));
      if (kind === 'incremental') {
        const inc = timeOf(await store.lastRun('pull_incremental', c.id, 'ok'));
        if (inc !== null && (t === null || inc > t)) t = inc;
      }
      if (t === null) return null;
      oldest = Math.min(oldest, t);
    }
    return new Date(oldest);
  };

  // ---- admin API ----------------------------------------------------------------------------
  const afterStatement = async (r: StatementResult): Promise<void> => {
    countDrift(r.reconcile);
    tracker.track(r.subject, Date.now(), Date.now());
    await planTracked([r.subject]);
    controls.notify();
  };

  const usage = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ConsentdError && err.code === 'USAGE') throw new HttpError('BAD_REQUEST', 'invalid request', { reason: err.message });
      throw err;
    }
  };

  const admin: AdminApi = {
    explain: async (email) => {
      const state = await store.subjectState(email);
      const erased = await store.isTombstoned(subjectHash(email, engine.config.salt));
      if (state.observations.length === 0 && state.records.length === 0 && !erased) return null;
      const decision = decide(email, state.observations, engine.policyOptions());
      const observations = [...state.observations].sort((a, b) => (a.observedAt < b.observedAt ? -1 : a.observedAt > b.observedAt ? 1 : a.id < b.id ? -1 : 1));
      return { subject: email, erased, observations, records: state.records, explanation: explainDecision(decision, state.observations) };
    },
    optOut: (i) =>
      usage(async () => {
        const r = await optOut(engine, i.email, { channel: i.channel, purpose: i.purpose }, { source: 'api', evidence: i.evidence });
        await afterStatement(r);
        return { observations: r.added.length, changes: r.reconcile.enqueued };
      }),
    grant: (i) =>
      usage(async () => {
        const r = await grant(engine, i.email, { channel: i.channel, purpose: i.purpose }, { source: 'api', evidence: i.evidence });
        await afterStatement(r);
        return { observations: r.added.length, changes: r.reconcile.enqueued };
      }),
    erase: (i) =>
      usage(async () => {
        const r = await erase(engine, i.email, { source: 'api' });
        countDrift(r.reconcile);
        controls.notify();
        return { erased: r.reconcile.erased, changes: r.reconcile.enqueued };
      }),
    listRuns: (limit) => store.listRuns(limit),
    listDeadLetters: (limit) => store.listDeadLetters(limit),
    replayDeadLetter: async (id) => {
      const ok = await store.replayDeadLetter(id);
      if (ok) controls.notify();
      return ok;
    },
  };

  // ---- readiness -------------------------------------------------------------------------------
  const checks = new Map<string, ReadinessCheck>(engine.connectors.map((c) => [c.id, { ok: true, detail: 'not checked yet' }]));
  const checkTimeoutMs = opts.checkTimeoutMs ?? 30_000;
  let checking: Promise<void> | null = null;
  const runChecks = (): Promise<void> =>
    (checking ??= (async () => {
      await Promise.all(
        engine.connectors.map(async (c) => {
          try {
            const r = await withTimeout(c.check(), checkTimeoutMs, 'check');
            checks.set(c.id, { ok: r.ok, detail: r.ok ? 'check ok' : 'check failed (see the logs, or run consentd check)' });
            if (!r.ok) log.warn({ connector: c.id, details: r.details }, 'connector check failed');
          } catch (err) {
            checks.set(c.id, { ok: false, detail: 'check failed (see the logs, or run consentd check)' });
            log.warn({ connector: c.id, err }, 'connector check threw');
          }
        }),
      );
    })().finally(() => {
      checking = null;
    }));
  let checkTimer: NodeJS.Timeout | null = null;
  if (opts.checks !== false) {
    setImmediate(() => void runChecks());
    const every = opts.checkIntervalMs ?? 300_000;
    if (every > 0) {
      checkTimer = setInterval(() => void runChecks(), every);
      checkTimer.unref();
    }
  }

  let storeCheck: { at: number; check: ReadinessCheck } | null = null;
  const readiness = async (): Promise<Readiness> => {
    const now = Date.now();
    if (!storeCheck || now - storeCheck.at > 15_000) {
      let check: ReadinessCheck;
      try {
        const s = await store.stats();
        check = { ok: true, detail: `${s.subjects} subjects, ${s.outbox.pending + s.outbox.retry + s.outbox.in_flight} changes queued, ${s.deadLetters} dead letters` };
      } catch {
        check = { ok: false, detail: 'the store does not answer' };
      }
      storeCheck = { at: now, check };
    }
    const out: Record<string, ReadinessCheck> = { store: storeCheck.check };
    for (const [id, c] of checks) out[`connector:${id}`] = c;
    return { ok: storeCheck.check.ok, checks: out };
  };

  // ---- crash recovery ---------------------------------------------------------------------------
  let recovering: Promise<void> | null = null;
  const recover = async (): Promise<void> => {
    const interrupted = await store.interruptRunningRuns();
    const requeued = await store.requeueInFlight();
    if (interrupted + requeued > 0) log.warn({ interrupted, requeued }, 'recovered from an interrupted run');
    // Webhooks acknowledged just before a crash left their subjects dirty: reconcile them now, in
    // the high lane, in the background (the HTTP server starts meanwhile).
    const dirty = (await store.stats()).dirtySubjects;
    if (dirty > 0) {
      setImmediate(() => {
        recovering = reconcile(engine, 'high')
          .then((stats) => {
            countDrift(stats);
            log.info({ subjects: stats.subjects, changes: stats.changes }, 'recovery: dirty subjects reconciled');
            controls.notify();
          })
          .catch((err: unknown) => log.error({ err }, 'recovery reconcile failed'))
          .finally(() => {
            recovering = null;
          });
      });
    }
  };

  return {
    intake,
    drainOnce,
    jobs: {
      full: (signal) => pullJob(true, signal),
      incremental: (signal) => pullJob(false, signal),
      reconfirm: reconfirmJob,
    },
    lastSuccess,
    admin,
    readiness,
    recover,
    idle,
    quiesce: async () => {
      if (checkTimer) clearInterval(checkTimer);
      checkTimer = null;
      if (flushScheduled) await flushIntakes();
      await idle();
      if (recovering) await recovering;
    },
    close: () => {
      if (checkTimer) clearInterval(checkTimer);
      checkTimer = null;
    },
  };
}
