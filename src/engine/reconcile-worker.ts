/**
 * The reconcile worker thread: reads dirty subjects from a read-only view of the store, decides
 * and plans them (pure core), and posts the plans page by page to the thread that commits them.
 * A full reconcile of a large store spends about half its CPU here, so this half runs on a
 * second core while the main thread writes, and the main thread's event loop (webhooks,
 * health checks) is never held by deciding. Protocol: worker-thread.ts.
 */
import { workerData } from 'node:worker_threads';
import type { PlanTarget } from '../plan/index.js';
import { openStoreReader } from '../store/open-reader.js';
import type { StoreReaderSpec } from '../store/store.js';
import { planState } from './decide-subject.js';
import { pagePlan, type PagePlan, type PlanRequest } from './plan-pages.js';
import { servePages } from './worker-thread.js';

export interface ReconcileWorkerData {
  spec: StoreReaderSpec;
  targets: PlanTarget[];
  pageSize: number;
}

const data = workerData as ReconcileWorkerData;
const store = openStoreReader(data.spec);
let after: string | null = null;
let done = false;

servePages<PlanRequest, PagePlan[]>(
  async ({ opts }) => {
    if (done) return null;
    const page = await store.dirtySubjects(data.pageSize, after);
    after = page[page.length - 1]?.subject ?? after;
    // A partial page was the last: the next request needs no read.
    done = page.length < data.pageSize;
    if (page.length === 0) return null;
    // The decision goes in its stored form: a string is cheap to pass and the committer stores it as is.
    return page.map((state) => {
      const plan = planState(state, opts, data.targets);
      return pagePlan(plan, store.encodeDecision(plan.decision));
    });
  },
);
