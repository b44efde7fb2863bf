/**
 * The reconcile worker thread: reads dirty subjects from a read-only view of the store, decides
 * and plans them (pure core), and posts the plans page by page to the thread that commits them.
 * A full reconcile of a large store spends about half its CPU here, so this half runs on a
 * second core while the main thread writes, and the main thread's event loop (webhooks,
 * health checks) is never held by deciding. See plan-pages.ts for the protocol.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { PlanTarget } from '../plan/index.js';
import type { PolicyOptions } from '../policy/index.js';
import { openStoreReader } from '../store/open-reader.js';
import type { StoreReaderSpec } from '../store/store.js';
import { planState } from './decide-subject.js';
import { pagePlan, type WorkerReply, type WorkerRequest } from './plan-pages.js';

export interface ReconcileWorkerData {
  spec: StoreReaderSpec;
  targets: PlanTarget[];
  pageSize: number;
}

const port = parentPort;
if (port === null) throw new Error('reconcile-worker.ts runs as a worker thread only');
const data = workerData as ReconcileWorkerData;
const store = openStoreReader(data.spec);
let after: string | null = null;
let done = false;
// Requests are served one at a time, in order (each continues after the last page read).
let chain: Promise<void> = Promise.resolve();

async function serve(req: Extract<WorkerRequest, { type: 'next' }>): Promise<void> {
  if (done) {
    port?.postMessage({ type: 'page', plans: [], last: true } satisfies WorkerReply);
    return;
  }
  const page = await store.dirtySubjects(data.pageSize, after);
  const opts: PolicyOptions = req.opts;
  // The decision goes in its stored form: a string is cheap to pass and the committer stores it as is.
  const plans = page.map((state) => {
    const plan = planState(state, opts, data.targets);
    return pagePlan(plan, store.encodeDecision(plan.decision));
  });
  after = page[page.length - 1]?.subject ?? after;
  done = page.length < data.pageSize;
  port?.postMessage({ type: 'page', plans, last: done } satisfies WorkerReply);
}

port.on('message', (req: WorkerRequest) => {
  if (req.type === 'close') {
    chain = chain.then(() => store.close()).then(() => port.close());
    return;
  }
  chain = chain
    .then(() => serve(req))
    .catch((err: unknown) => {
      done = true;
      port.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) } satisfies WorkerReply);
    });
});
