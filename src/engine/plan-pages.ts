import { Worker } from 'node:worker_threads';
import type { Change, Decision } from '../model/index.js';
import type { PolicyOptions } from '../policy/index.js';
import type { EncodedDecision, StoreReaderSpec } from '../store/store.js';
import type { Engine } from './context.js';
import { planSubjectState, type SubjectPlan } from './decide-subject.js';
import type { ReconcileWorkerData } from './reconcile-worker.js';

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

/** Main thread -> worker: plan the next page (with the policy options of this moment), or stop. */
export type WorkerRequest = { type: 'next'; opts: PolicyOptions } | { type: 'close' };
/** Worker -> main thread, one reply per 'next', in order. */
export type WorkerReply = { type: 'page'; plans: PagePlan[]; last: boolean } | { type: 'error'; message: string };

/**
 * Start the worker thread: reconcile-worker.js once built; from source (tsx, vitest) the .ts
 * module behind tsx's loader, registered inside the worker (on Node 20 a worker does not inherit
 * the loader hooks of the thread that starts it).
 */
function startWorker(data: ReconcileWorkerData): Worker {
  // The worker holds one page at a time: a small heap keeps its garbage from growing the RSS.
  const options = { workerData: data, resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./reconcile-worker.js', import.meta.url), options);
  const entry = JSON.stringify(new URL('./reconcile-worker.ts', import.meta.url).href);
  const loader = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return new Worker(`import(${loader}).then((tsx) => { tsx.register(); return import(${entry}); });`, { ...options, eval: true });
}

/** Old-generation heap of the reconcile worker, MB. */
const WORKER_HEAP_MB = 96;

interface Pending {
  resolve(reply: Extract<WorkerReply, { type: 'page' }>): void;
  reject(err: Error): void;
}

/**
 * Read, decide and plan on a worker thread over a read-only view of the store, while the caller
 * commits on this one. Up to `ahead` pages are requested in advance, so the worker keeps planning
 * while a commit runs; memory holds at most that many pages of plans.
 */
export function workerPages(engine: Engine, spec: StoreReaderSpec, pageSize: number, ahead: number): PlanPages {
  const worker = startWorker({ spec, targets: engine.targets(), pageSize });
  const pending: Pending[] = [];
  let failure: Error | null = null;
  const fail = (err: Error): void => {
    failure ??= err;
    for (const p of pending.splice(0)) p.reject(failure);
  };
  worker.on('message', (reply: WorkerReply) => {
    const p = pending.shift();
    if (reply.type === 'page') {
      p?.resolve(reply);
      return;
    }
    const err = new Error(`reconcile worker: ${reply.message}`);
    p?.reject(err);
    fail(err);
  });
  worker.on('error', (err) => fail(err));
  worker.on('exit', (code) => fail(new Error(`reconcile worker exited (code ${code})`)));

  const requested: Array<Promise<Extract<WorkerReply, { type: 'page' }>>> = [];
  let last = false;
  const request = (): void => {
    const reply = new Promise<Extract<WorkerReply, { type: 'page' }>>((resolve, reject) => {
      if (failure) reject(failure);
      else pending.push({ resolve, reject });
    });
    // Awaited in order by next(); until then a rejection must not count as unhandled.
    reply.catch(() => undefined);
    requested.push(reply);
    if (!failure) worker.postMessage({ type: 'next', opts: engine.policyOptions() } satisfies WorkerRequest);
  };
  const topUp = (): void => {
    while (!last && requested.length < ahead) request();
  };
  topUp();
  return {
    async next() {
      const reply = requested.shift();
      if (reply === undefined) return [];
      const page = await reply;
      if (page.last) last = true;
      topUp();
      return page.plans;
    },
    async close() {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}
