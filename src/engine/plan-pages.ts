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

/** Pages of plans for dirty subjects, in subject order. An empty page means there are no more. */
export interface PlanPages {
  next(): Promise<PagePlan[]>;
  close(): Promise<void>;
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
    close: () => Promise.resolve(),
  };
}

/** What the main thread sends with each request: the policy options of that moment. */
export type PlanRequest = { opts: PolicyOptions };

/** Old-generation heap of the reconcile worker, MB (it holds a page or two of plans at a time). */
const WORKER_HEAP_MB = 96;

/**
 * Read, decide and plan on a worker thread over a read-only view of the store, while the caller
 * commits on this one. Up to `ahead` pages are requested in advance, so the worker keeps planning
 * while a commit runs; memory holds at most that many pages of plans.
 */
export function workerPages(engine: Engine, spec: StoreReaderSpec, pageSize: number, ahead: number): PlanPages {
  const data: ReconcileWorkerData = { spec, targets: engine.targets(), pageSize };
  const worker = pagedWorker<PlanRequest, PagePlan[]>(startWorker('reconcile-worker', data, WORKER_HEAP_MB), 'reconcile worker', () => ({ opts: engine.policyOptions() }), ahead);
  return {
    next: async () => (await worker.next()) ?? [],
    close: () => worker.close(),
  };
}
