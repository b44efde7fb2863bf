/**
 * The reconcile worker thread: reads dirty subjects from a read-only view of the store, decides
 * and plans them (pure core), and posts the plans page by page to the thread that commits them.
 * A full reconcile of a large store spends about half its CPU here, so this half runs on other
 * cores while the main thread writes, and the main thread's event loop (webhooks, health checks)
 * is never held by deciding. A worker takes one run of subjects, (after, until]; several take
 * the runs of one reconcile side by side (see plan-pages.ts). Protocol: worker-thread.ts.
 */
import { workerData } from 'node:worker_threads';
import type { PlanTarget } from '../plan/index.js';
import { openStoreReader } from '../store/open-reader.js';
import type { StoreReaderSpec } from '../store/store.js';
import { planState } from './decide-subject.js';
import { pagePlan, subjectAfter, type PagePlan, type PlanRequest } from './plan-pages.js';
import { servePages } from './worker-thread.js';

export interface ReconcileWorkerData {
  spec: StoreReaderSpec;
  targets: PlanTarget[];
  pageSize: number;
  /** The run of subjects this worker decides: after `after` (null: from the first) up to and including `until` (null: to the last). */
  after: string | null;
  until: string | null;
}

const data = workerData as ReconcileWorkerData;
const store = openStoreReader(data.spec);
let after: string | null = data.after;
let done = false;

servePages<PlanRequest, PagePlan[]>(
  async ({ opts }) => {
    if (done) return null;
    const read = await store.dirtySubjects(data.pageSize, after);
    after = read[read.length - 1]?.subject ?? after;
    const until = data.until;
    // Past the end of the run: the rest belongs to the next worker's run.
    const page = until === null || (after !== null && !subjectAfter(after, until)) ? read : read.filter((s) => !subjectAfter(s.subject, until));
    // A partial page was the last: the next request needs no read.
    done = read.length < data.pageSize || page.length < read.length;
    if (page.length === 0) return null;
    // The decision goes in its stored form: a string is cheap to pass and the committer stores it as is.
    return page.map((state) => {
      const plan = planState(state, opts, data.targets);
      return pagePlan(plan, store.encodeDecision(plan.decision));
    });
  },
);
