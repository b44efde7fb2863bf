import type { Change, Decision } from '../model/index.js';
import type { PolicyOptions } from '../policy/index.js';
import type { EncodedDecision, StoreReaderSpec } from '../store/store.js';
import type { Engine } from './context.js';
import { planSubjectState, type SubjectPlan } from './decide-subject.js';
import type { ReconcileWorkerData } from './reconcile-worker.js';
import { pagedWorker, startWorker } from './worker-thread.js';

/** What the committing thread needs of one subject's plan. */
export interface PagePlan {
  subject: string;
  /** The decision, or its stored form when planned on the worker thread. */
  decision: Decision | EncodedDecision;
  changes: Change[];
  /** Set when the decision asks for erasure: the source that asked (null when none is named). */
  erasure?: { source: string | null };
  /** The dirty version planned from. */
  dirty?: number;
}

/** A SubjectPlan as a page carries it, with the decision as given. */
export function pagePlan(plan: SubjectPlan, decision: Decision | EncodedDecision): PagePlan {
  const p: PagePlan = { subject: plan.subject, decision, changes: plan.changes };
  if (plan.decision.erasureRequested) p.erasure = { source: plan.erasureSource };
  if (plan.dirty !== undefined) p.dirty = plan.dirty;
  return p;
}

/**
 * Pages of plans for dirty subjects. An empty page means there are no more. Each page comes from
 * one run of subjects (`part()`, of the page last returned), in subject order within the run; the
 * runs are disjoint, and with several their pages come a group at a time from each in turn.
 */
export interface PlanPages {
  next(): Promise<PagePlan[]>;
  /** The run the page last returned by next() belongs to (0 with a single run). */
  part(): number;
  close(): Promise<void>;
}

/**
 * Does subject `a` sort after `b` in the store's order (SQLite's BINARY: UTF-8 bytes)? JavaScript
 * compares UTF-16 code units, which differs only when a surrogate pair meets U+E000-U+FFFF.
 */
export function subjectAfter(a: string, b: string): boolean {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')) > 0;
}

/** Read, decide and plan on this thread (the instant path, small stores, in-memory stores). */
export function inThreadPages(engine: Engine, pageSize: number, only?: readonly string[]): PlanPages {
  let after: string | null = null;
  let done = false;
  return {
    async next() {
      if (done) return [];
      const page = await engine.store.dirtySubjects(pageSize, after, only);
      const opts = engine.policyOptions();
      const plans = page.map((state) => {
        const plan = planSubjectState(engine, state, opts);
        return pagePlan(plan, plan.decision);
      });
      after = page[page.length - 1]?.subject ?? after;
      done = page.length < pageSize;
      return plans;
    },
    part: () => 0,
    close: () => Promise.resolve(),
  };
}

/** What the main thread sends with each request: the policy options of that moment. */
export type PlanRequest = { opts: PolicyOptions };

/** Old-generation heap of a reconcile worker, MB (it holds a page or two of plans at a time; 96 took no less time at 1M). */
const WORKER_HEAP_MB = 64;

/**
 * Read, decide and plan on worker threads over a read-only view of the store, while the caller
 * commits on this one. `splits` (Store.dirtySplits) cut the dirty subjects into runs, one worker
 * each; pages come `groupPages` at a time from each worker in turn, so a caller committing a group
 * at a time commits one run's subjects together. Each worker is asked for up to `ahead` pages in
 * advance, so it keeps planning while the others' pages are committed; memory holds at most that
 * many pages of plans per worker.
 */
export function workerPages(engine: Engine, spec: StoreReaderSpec, pageSize: number, ahead: number, splits: readonly string[] = [], groupPages = 1): PlanPages {
  const bounds = [null, ...splits];
  const live = bounds.map((after, part) => {
    const data: ReconcileWorkerData = { spec, targets: engine.targets(), pageSize, after, until: splits[part] ?? null };
    const worker = pagedWorker<PlanRequest, PagePlan[]>(startWorker('reconcile-worker', data, WORKER_HEAP_MB), 'reconcile worker', () => ({ opts: engine.policyOptions() }), ahead);
    return { part, worker };
  });
  const all = [...live];
  let turn = 0;
  let served = 0;
  let lastPart = 0;
  return {
    async next() {
      while (live.length > 0) {
        turn %= live.length;
        const current = live[turn] as (typeof live)[number];
        const page = await current.worker.next();
        if (page === null || page.length === 0) {
          // This run is done: the next one's turn (at the same index now).
          live.splice(turn, 1);
          served = 0;
          continue;
        }
        lastPart = current.part;
        if (++served >= groupPages) {
          served = 0;
          turn++;
        }
        return page;
      }
      return [];
    },
    part: () => lastPart,
    close: async () => {
      await Promise.all(all.map((w) => w.worker.close()));
    },
  };
}
