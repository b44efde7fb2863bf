import { Worker } from 'node:worker_threads';
import type { PolicyOptions } from '../policy/index.js';
import type { StoreReaderSpec } from '../store/store.js';
import type { Engine } from './context.js';
import { planSubjectState, type SubjectPlan } from './decide-subject.js';
import type { ReconcileWorkerData } from './reconcile-worker.js';

/** Pages of plans for dirty subjects, in subject order. An empty page means there are no more. */
export interface PlanPages {
  next(): Promise<SubjectPlan[]>;
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
      const plans = page.map((state) => planSubjectState(engine, state, opts));
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
export type WorkerReply = { type: 'page'; plans: SubjectPlan[]; last: boolean } | { type: 'error'; message: string };

/**
 * Start the worker thread: reconcile-worker.js once built; from source (tsx, vitest) the .ts
 * module behind tsx's loader, registered inside the worker (on Node 20 a worker does not inherit
 * the loader hooks of the thread that starts it).
 */
function startWorker(data: ReconcileWorkerData): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./reconcile-worker.js', import.meta.url), { workerData: data });
  const entry = JSON.stringify(new URL('./reconcile-worker.ts', import.meta.url).href);
  const loader = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return new Worker(`import(${loader}).then((tsx) => { tsx.register(); return import(${entry}); });`, { eval: true, workerData: data });
}

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
    if (reply.type === 'error') fail(new Error(`reconcile worker: ${reply.message}`));
    else p?.resolve(reply);
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
