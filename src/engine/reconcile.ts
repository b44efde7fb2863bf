import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { subjectHash, type Change } from '../model/index.js';
import type { Lane, ReconcileResult } from '../store/store.js';
import type { Engine } from './context.js';
import { inThreadPages, workerPages, type PlanPages } from './plan-pages.js';

/** Subjects decided per store round trip. */
export const RECONCILE_PAGE = 2000;
/**
 * Most subjects whose decisions and changes are committed together (fewer with several workers:
 * see reconcilePages). Each commit rewrites the pages its rows touch, so a full reconcile commits
 * in groups of pages; memory holds one group's results (a few KB per subject).
 */
export const RECONCILE_COMMIT = 20_000;
/**
 * From this many dirty subjects on, a full reconcile decides and plans on a worker thread while
 * this thread commits (below it, starting the thread costs more than it saves).
 */
export const RECONCILE_WORKER_MIN = 20_000;
/**
 * Worker threads a full reconcile decides on, each taking a run of the dirty subjects. With one,
 * the deciding worker was the slower thread and the committing thread idle a third of the time
 * (1M people: 25 s busy against 16 s).
 */
export const RECONCILE_WORKERS = 2;
/**
 * Pages taken from one worker before the next one's (and asked of each in advance). Few: a page
 * that waits is promoted to the old generation of this thread's heap and becomes garbage there
 * (1M people, 2 workers: peak RSS 436 MB with 2 / 3, 537 MB with 10 / 11, the same time).
 */
const RECONCILE_TURN = 2;
const RECONCILE_AHEAD = RECONCILE_TURN + 1;

export interface ReconcileOptions {
  /** Decide on a worker thread: 'auto' (default: from RECONCILE_WORKER_MIN dirty subjects, when the store has a reader view), 'always' (when it has one), 'never'. */
  worker?: 'auto' | 'always' | 'never';
  /** Most subjects per commit (default RECONCILE_COMMIT). */
  commitSubjects?: number;
}

export interface ReconcileStats {
  subjects: number;
  /** Changes planned (disagreements found), per connector and in total. */
  changes: number;
  byConnector: Record<string, number>;
  /** Changes the outbox did not already hold. */
  enqueued: number;
  erased: number;
}

function emptyStats(engine: Engine): ReconcileStats {
  return { subjects: 0, changes: 0, byConnector: Object.fromEntries(engine.connectors.map((c) => [c.id, 0])), enqueued: 0, erased: 0 };
}

/**
 * Re-decide dirty subjects page by page, plan their changes and commit them to the outbox
 * (one transaction per RECONCILE_COMMIT subjects). Erasure requests erase instead (tombstone + erase changes).
 */
/** Told, once a commit is done, which changes each of its (not erased) subjects needs. */
export type PlannedListener = (subject: string, changes: readonly Change[]) => void;

/**
 * Where the plans come from: worker threads for a large full reconcile (`workers`, each over a
 * run of the dirty subjects) or one for a dry run, else this thread.
 */
export async function planPages(engine: Engine, only: readonly string[] | undefined, opts: ReconcileOptions, workers = 1): Promise<PlanPages> {
  const mode = opts.worker ?? 'auto';
  if (only === undefined && mode !== 'never' && (mode === 'always' || (await engine.store.dirtyCount()) >= RECONCILE_WORKER_MIN)) {
    const spec = await engine.store.readerSpec();
    if (spec !== null) {
      const splits = workers > 1 ? await engine.store.dirtySplits(workers) : [];
      return workerPages(engine, spec, RECONCILE_PAGE, RECONCILE_AHEAD, splits, RECONCILE_TURN);
    }
  }
  return inThreadPages(engine, RECONCILE_PAGE, only);
}

async function reconcilePages(engine: Engine, lane: Lane, only?: readonly string[], onPlanned?: PlannedListener, opts: ReconcileOptions = {}): Promise<ReconcileStats> {
  const { store } = engine;
  const stats = emptyStats(engine);
  const runId = only === undefined ? await store.startRun('reconcile', null) : null;
  let pages: PlanPages | null = null;
  try {
    pages = await planPages(engine, only, opts, RECONCILE_WORKERS);
    let batch: ReconcileResult[] = [];
    let part = 0;
    const commit = async (): Promise<void> => {
      if (batch.length > 0) {
        // A full reconcile may be queued in bulk (a first load's hundreds of thousands of changes).
        stats.enqueued += (await store.commitReconcile(batch, lane, { bulk: only === undefined })).enqueued;
        if (onPlanned) for (const r of batch) onPlanned(r.subject, r.changes);
      }
      batch = [];
    };
    for (;;) {
      const page = await pages.next();
      if (page.length === 0) break;
      // A commit holds one run's subjects (PlanPages.part), so a bulk commit's outbox batches cover
      // a range no other run's batches overlap (outbox-batches.ts). With several workers a commit
      // thus holds one turn's pages: kept as one batch per run until RECONCILE_COMMIT, the waiting
      // results took the peak RSS from 413 to 500 MB at 1M people, and 1.5 s more.
      if (pages.part() !== part) {
        await commit();
        part = pages.part();
      }
      for (const plan of page) {
        stats.subjects++;
        stats.changes += plan.changes.length;
        for (const c of plan.changes) stats.byConnector[c.connectorId] = (stats.byConnector[c.connectorId] ?? 0) + 1;
        if (plan.erasure !== undefined) {
          // A full reconcile's erasure is redone from the (durable) erasure request if lost; the
          // instant path (a CLI or webhook statement, `only`) answers its caller: durable.
          await store.eraseSubject(plan.subject, subjectHash(plan.subject, engine.config.salt), plan.erasure.source ?? 'unknown', plan.changes, {
            redoable: only === undefined,
          });
          stats.erased++;
          stats.enqueued += plan.changes.length;
          engine.logger.info({ subject: plan.subject, changes: plan.changes.length, source: plan.erasure.source }, 'subject erased');
        } else {
          const result: ReconcileResult = { subject: plan.subject, decision: plan.decision, changes: plan.changes };
          if (plan.dirty !== undefined) result.dirty = plan.dirty;
          batch.push(result);
        }
      }
      if (batch.length >= (opts.commitSubjects ?? RECONCILE_COMMIT)) await commit();
      engine.progress?.({ phase: 'reconcile', connectorId: null, counts: { subjects: stats.subjects, changes: stats.changes } });
      // Webhooks and timers get a turn between pages (a full reconcile takes a while).
      await yieldToLoop();
    }
    await commit();
    if (runId !== null) await store.finishRun(runId, 'ok', flatten(stats));
    return stats;
  } catch (err) {
    if (runId !== null) await store.finishRun(runId, 'failed', flatten(stats), err instanceof Error ? err.message : String(err)).catch(() => undefined);
    throw err;
  } finally {
    await pages?.close();
  }
}

function flatten(s: ReconcileStats): Record<string, number> {
  return { subjects: s.subjects, changes: s.changes, enqueued: s.enqueued, erased: s.erased };
}

/** Every dirty subject (after a pull). */
export function reconcile(engine: Engine, lane: Lane = 'normal', opts: ReconcileOptions = {}): Promise<ReconcileStats> {
  return reconcilePages(engine, lane, undefined, undefined, opts);
}

/** The instant path: only these subjects (if dirty), e.g. after a CLI opt-out or a webhook. */
export function reconcileSubjects(engine: Engine, subjects: readonly string[], lane: Lane = 'high', onPlanned?: PlannedListener): Promise<ReconcileStats> {
  if (subjects.length === 0) return Promise.resolve(emptyStats(engine));
  return reconcilePages(engine, lane, [...new Set(subjects)], onPlanned);
}
