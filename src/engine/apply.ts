import PQueue from 'p-queue';
import type { Connector, PushResult } from '../connectors/contract.js';
import type { Change, RecordSnapshot } from '../model/index.js';
import { applyChangeToSnapshot, syntheticSnapshot } from '../plan/index.js';
import type { OutboxItem } from '../store/store.js';
import type { Engine } from './context.js';
import { classifyError, retryDelayMs, type RetryVerdict } from './retry.js';

export interface ApplyOptions {
  /**
   * 'drained' (default): keep going until nothing is pending; retries due within `maxWaitMs`
   * (total time spent waiting for them) are waited for. 'due': stop when nothing is due now.
   */
  until?: 'drained' | 'due';
  /** Most total time spent sleeping for retries that are not due yet (default 60 s). */
  maxWaitMs?: number;
  signal?: AbortSignal;
  /**
   * Write a run row (startRun / finishRun) and count what is left (default true). The daemon's
   * outbox workers drain many times a second: they pass false (no run row, no depth count, the
   * summary logged at debug).
   */
  recordRun?: boolean;
  /**
   * The p-queue enforcing the connector's limits (default: a new one per call). A caller that
   * applies repeatedly (the daemon's worker) passes one long-lived queue per connector, so the
   * rate limit holds across calls.
   */
  queue?: PQueue;
  /**
   * Changes in flight (claimed, not settled) shared with other connectors' applies: claims wait for
   * room, so memory stays bounded however large the connectors' batch sizes (applyAll shares one).
   */
  budget?: InFlightBudget;
}

/**
 * A count of changes in flight, shared by the connectors applied together. A claim takes room for a
 * whole batch (at most the capacity: one batch larger than it runs alone) and gives back what it
 * did not claim; a settled batch gives its room back.
 */
export class InFlightBudget {
  private used = 0;
  private waiters: Array<() => void> = [];
  constructor(readonly capacity: number) {}

  /** Room for up to `n` changes (at most the capacity), waiting until it is free. */
  async acquire(n: number): Promise<number> {
    const want = Math.min(Math.max(1, n), this.capacity);
    while (this.used + want > this.capacity) await new Promise<void>((resolve) => this.waiters.push(resolve));
    this.used += want;
    return want;
  }

  release(n: number): void {
    if (n <= 0) return;
    this.used -= n;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }
}

/**
 * Default room of applyAll: changes in flight across all its connectors. A file connector rewrites
 * its whole file once per batch, so the room sets the number of file passes. Measured at 1M people
 * (693k changes, 4 CSV files, apply alone from the same database, 1 run each): 25k 29.9 s, peak RSS
 * 362-385 MB; 50k 26.8 s, 477 MB; 100k 24.5 s, 650 MB. The live heap stays small (53-100 MB at 50k
 * with a GC forced at every push); the rest is garbage V8 has not collected yet. In the whole 1M
 * pipeline, 50k took the peak RSS from 494 to 555 MB (apply 26.0 s instead of 30.3 s), over the
 * 512 MB target: 25k stays.
 */
export const APPLY_IN_FLIGHT = 25_000;

export interface ApplyStats {
  /** Changes handed to push(). */
  pushed: number;
  ok: number;
  retried: number;
  dead: number;
  batches: number;
  /** Changes still in the outbox (retry not yet due) when apply stopped. */
  left: number;
}

const recordKey = (connectorId: string, recordId: string): string => `${connectorId}\u0000${recordId}`;

/**
 * The connector's limits as a p-queue: concurrency, and requestsPerInterval spread evenly over
 * the interval (one start every intervalMs / requestsPerInterval). Even spacing, not a burst of
 * requestsPerInterval then a wait for the window to end, keeps instant pushes from waiting up to
 * a whole interval; with the claim made inside the slot (see applyOutbox) a push that waited
 * carries everything that became due meanwhile.
 */
export function queueFor(connector: Connector): PQueue {
  const l = connector.limits;
  const perInterval = Math.max(1, l.requestsPerInterval);
  const spacing = Math.max(0, l.intervalMs) / perInterval;
  // Below a millisecond apart there is nothing worth pacing (e.g. a CSV file).
  return spacing >= 1
    ? new PQueue({ concurrency: Math.max(1, l.concurrency), intervalCap: 1, interval: Math.round(spacing) })
    : new PQueue({ concurrency: Math.max(1, l.concurrency) });
}

/**
 * Work one connector's outbox: claim batches of up to `limits.batchSize`, push them through a
 * p-queue honouring the connector's limits, and settle every change (done with the pushed
 * snapshot, retry with backoff / Retry-After, or dead letter).
 */
export async function applyOutbox(engine: Engine, connector: Connector, opts: ApplyOptions = {}): Promise<ApplyStats> {
  const { store, logger } = engine;
  const log = logger.child({ connector: connector.id });
  const stats: ApplyStats = { pushed: 0, ok: 0, retried: 0, dead: 0, batches: 0, left: 0 };
  const queue = opts.queue ?? queueFor(connector);
  const maxWaitMs = opts.maxWaitMs ?? 60_000;
  const until = opts.until ?? 'drained';
  const recordRun = opts.recordRun !== false;
  const runId = recordRun ? await store.startRun('apply', connector.id) : null;
  let waited = 0;
  try {
    // Each slot of the connector's queue claims its batch only once it may push: a push that
    // waited for the rate limit carries everything that became due meanwhile (instant opt-outs
    // arriving one by one go out together rather than one slot each). `concurrency` slots run
    // side by side; a slot whose claim comes back empty ends.
    // With a shared budget (applyAll), a slot first waits for room for its batch: it holds room
    // only while it claims and pushes, never while waiting for more, so connectors cannot deadlock.
    const slot = async (): Promise<boolean> => {
      if (opts.signal?.aborted === true) return false;
      const want = Math.max(1, connector.limits.batchSize);
      const room = opts.budget === undefined ? want : await opts.budget.acquire(want);
      let items: OutboxItem[];
      try {
        items = await store.claimOutbox(connector.id, room, engine.now().getTime());
      } catch (err) {
        opts.budget?.release(room);
        throw err;
      }
      opts.budget?.release(room - items.length);
      if (items.length === 0) return false;
      try {
        await pushBatch(engine, connector, items, stats);
      } finally {
        opts.budget?.release(items.length);
      }
      engine.progress?.({ phase: 'apply', connectorId: connector.id, counts: { pushed: stats.pushed, ok: stats.ok, retried: stats.retried, dead: stats.dead } });
      return true;
    };
    const lane = async (): Promise<void> => {
      let more = true;
      while (more) more = (await queue.add(slot)) === true;
    };
    for (;;) {
      if (opts.signal?.aborted === true) break;
      const before = stats.batches;
      await Promise.all(Array.from({ length: Math.max(1, connector.limits.concurrency) }, lane));
      if (stats.batches > before) continue;
      if (until === 'due') break;
      const next = await store.nextDue(connector.id);
      if (next === null) break;
      const wait = Math.max(0, next - engine.now().getTime());
      if (waited + wait > maxWaitMs) break;
      waited += wait;
      log.debug({ waitMs: wait }, 'waiting for retries to be due');
      await engine.sleep(wait);
    }
    if (runId === null) {
      if (stats.pushed > 0) log.debug({ ...stats }, 'outbox drained');
      return stats;
    }
    stats.left = (await store.outboxDepth())[connector.id] ?? 0;
    await store.finishRun(runId, 'ok', { ...stats });
    log.info({ ...stats }, 'apply finished');
    return stats;
  } catch (err) {
    if (runId !== null) await store.finishRun(runId, 'failed', { ...stats }, err instanceof Error ? err.message : String(err)).catch(() => undefined);
    throw err;
  }
}

/** One push() and the settlement of each of its changes. */
async function pushBatch(engine: Engine, connector: Connector, items: OutboxItem[], stats: ApplyStats): Promise<void> {
  const changes = items.map((i) => i.change);
  stats.batches++;
  stats.pushed += changes.length;
  let results: PushResult[];
  try {
    results = await connector.push(changes);
  } catch (err) {
    const verdict = classifyError(err, engine.now().getTime());
    engine.logger.warn({ connector: connector.id, err, retry: verdict.retry, changes: changes.length }, 'push threw');
    for (const item of items) await settleFailure(engine, item, verdict, stats);
    return;
  }
  const byKey = new Map(results.map((r) => [r.key, r] as const));
  const ok: Array<{ item: OutboxItem; result: Extract<PushResult, { status: 'ok' }> }> = [];
  for (const item of items) {
    const r = byKey.get(item.change.key);
    if (r === undefined) {
      await settleFailure(engine, item, { retry: true, reason: 'the connector returned no result for this change' }, stats);
    } else if (r.status === 'ok') {
      ok.push({ item, result: r });
    } else {
      await settleFailure(engine, item, classifyError(r, engine.now().getTime()), stats);
    }
  }
  if (ok.length > 0) {
    const snapshots = await pushedSnapshots(engine, ok.map((o) => ({ change: o.item.change, snapshot: o.result.snapshot })));
    await engine.store.completeOutbox(
      ok.map((o) => o.item.id),
      snapshots,
    );
    stats.ok += ok.length;
  }
  engine.logger.debug({ connector: connector.id, changes: changes.length, ok: ok.length }, 'batch pushed');
}

async function settleFailure(engine: Engine, item: OutboxItem, verdict: RetryVerdict, stats: ApplyStats): Promise<void> {
  const { store, config } = engine;
  const key = item.change.key;
  if (!verdict.retry) {
    await store.killOutbox(item.id, verdict.reason);
    stats.dead++;
    engine.logger.warn({ connector: item.change.connectorId, key, reason: verdict.reason }, 'change dead-lettered');
    return;
  }
  if (item.attempts >= config.outbox.maxAttempts) {
    await store.killOutbox(item.id, `retries exhausted after ${item.attempts} attempts: ${verdict.reason}`);
    stats.dead++;
    engine.logger.warn({ connector: item.change.connectorId, key, attempts: item.attempts, reason: verdict.reason }, 'change dead-lettered: retries exhausted');
    return;
  }
  const delay = retryDelayMs(verdict, item.attempts, { baseMs: config.outbox.baseDelayMs, maxMs: config.outbox.maxDelayMs }, engine.random);
  await store.retryOutbox(item.id, engine.now().getTime() + delay, verdict.reason);
  stats.retried++;
  engine.logger.info({ connector: item.change.connectorId, key, attempt: item.attempts, delayMs: delay, reason: verdict.reason }, 'change will be retried');
}

/**
 * What each pushed record looks like now: the connector's snapshot when it returned one, else
 * the stored snapshot (or the bare-address placeholder) with the pushed changes applied.
 * Erased records get none (the store dropped them).
 */
async function pushedSnapshots(engine: Engine, pushed: Array<{ change: Change; snapshot: RecordSnapshot | undefined }>): Promise<RecordSnapshot[]> {
  // The stored snapshots needed (changes pushed without one back), loaded together.
  const wanted = new Set<string>();
  const returned = new Set<string>();
  for (const { change, snapshot } of pushed) {
    if (change.op === 'erase') continue;
    const k = recordKey(change.connectorId, change.recordId);
    if (snapshot !== undefined) returned.add(k);
    else if (!returned.has(k)) wanted.add(change.subject);
  }
  const stored = new Map<string, RecordSnapshot[]>();
  if (wanted.size > 0) for (const st of await engine.store.subjectStates([...wanted])) stored.set(st.subject, st.records);
  const current = new Map<string, RecordSnapshot>();
  const erased = new Set<string>();
  for (const { change, snapshot } of pushed) {
    const k = recordKey(change.connectorId, change.recordId);
    if (change.op === 'erase') {
      erased.add(k);
      continue;
    }
    const base =
      snapshot ??
      current.get(k) ??
      (stored.get(change.subject) ?? []).find((r) => r.connectorId === change.connectorId && r.recordId === change.recordId) ??
      syntheticSnapshot(change.connectorId, change.subject);
    current.set(k, applyChangeToSnapshot(base, change, engine.connector(change.connectorId)?.capabilities));
  }
  return [...current.entries()].filter(([k]) => !erased.has(k)).map(([, s]) => s);
}

/**
 * Apply every connector's outbox concurrently (one worker per connector), with at most
 * APPLY_IN_FLIGHT changes in flight across them unless `opts.budget` says otherwise.
 */
export async function applyAll(engine: Engine, connectors: readonly Connector[], opts: ApplyOptions = {}): Promise<Map<string, ApplyStats>> {
  const shared = { ...opts, budget: opts.budget ?? new InFlightBudget(APPLY_IN_FLIGHT) };
  const entries = await Promise.all(connectors.map(async (c) => [c.id, await applyOutbox(engine, c, shared)] as const));
  return new Map(entries);
}
