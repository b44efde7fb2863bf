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
}

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
    const slot = async (): Promise<boolean> => {
      if (opts.signal?.aborted === true) return false;
      const items = await store.claimOutbox(connector.id, Math.max(1, connector.limits.batchSize), engine.now().getTime());
      if (items.length === 0) return false;
      await pushBatch(engine, connector, items, stats);
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
      ok.map((o) => o.item.change.key),
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
    await store.killOutbox(key, verdict.reason);
    stats.dead++;
    engine.logger.warn({ connector: item.change.connectorId, key, reason: verdict.reason }, 'change dead-lettered');
    return;
  }
  if (item.attempts >= config.outbox.maxAttempts) {
    await store.killOutbox(key, `retries exhausted after ${item.attempts} attempts: ${verdict.reason}`);
    stats.dead++;
    engine.logger.warn({ connector: item.change.connectorId, key, attempts: item.attempts, reason: verdict.reason }, 'change dead-lettered: retries exhausted');
    return;
  }
  const delay = retryDelayMs(verdict, item.attempts, { baseMs: config.outbox.baseDelayMs, maxMs: config.outbox.maxDelayMs }, engine.random);
  await store.retryOutbox(key, engine.now().getTime() + delay, verdict.reason);
  stats.retried++;
  engine.logger.info({ connector: item.change.connectorId, key, attempt: item.attempts, delayMs: delay, reason: verdict.reason }, 'change will be retried');
}

/**
 * What each pushed record looks like now: the connector's snapshot when it returned one, else
 * the stored snapshot (or the bare-address placeholder) with the pushed changes applied.
 * Erased records get none (the store dropped them).
 */
async function pushedSnapshots(engine: Engine, pushed: Array<{ change: Change; snapshot: RecordSnapshot | undefined }>): Promise<RecordSnapshot[]> {
  const current = new Map<string, RecordSnapshot>();
  const erased = new Set<string>();
  const stored = new Map<string, RecordSnapshot[]>();
  for (const { change, snapshot } of pushed) {
    const k = recordKey(change.connectorId, change.recordId);
    if (change.op === 'erase') {
      erased.add(k);
      continue;
    }
    let base = snapshot ?? current.get(k);
    if (base === undefined) {
      let records = stored.get(change.subject);
      if (records === undefined) {
        records = (await engine.store.subjectState(change.subject)).records;
        stored.set(change.subject, records);
      }
      base = records.find((r) => r.connectorId === change.connectorId && r.recordId === change.recordId) ?? syntheticSnapshot(change.connectorId, change.subject);
    }
    current.set(k, applyChangeToSnapshot(base, change, engine.connector(change.connectorId)?.capabilities));
  }
  return [...current.entries()].filter(([k]) => !erased.has(k)).map(([, s]) => s);
}

/** Apply every connector's outbox concurrently (one worker per connector). */
export async function applyAll(engine: Engine, connectors: readonly Connector[], opts: ApplyOptions = {}): Promise<Map<string, ApplyStats>> {
  const entries = await Promise.all(connectors.map(async (c) => [c.id, await applyOutbox(engine, c, opts)] as const));
  return new Map(entries);
}
