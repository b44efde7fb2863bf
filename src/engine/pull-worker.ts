/**
 * The pull worker thread: runs a connector's pull from the module its OffThreadPull names (e.g.
 * parsing a CSV file), makes the observations (ids are content hashes) and encodes each page in
 * the store's stored form, so that the main thread only writes. A large file's pull spends about
 * half its CPU here. Protocol: worker-thread.ts; see pull.ts.
 */
import { workerData } from 'node:worker_threads';
import type { OffThreadPullModule, PullPage } from '../connectors/contract.js';
import { toObservation } from '../model/index.js';
import { encodePullPage } from '../store/page-encoding.js';
import type { PulledPage, PullRequest, PullWorkerData } from './pull.js';
import { servePages } from './worker-thread.js';

const data = workerData as PullWorkerData;
let pages: AsyncIterator<PullPage> | null = null;

servePages<PullRequest, PulledPage>(
  async ({ observedAt }) => {
    pages ??= ((await import(data.module)) as OffThreadPullModule).pull(data.args, data.cursor)[Symbol.asyncIterator]();
    const next = await pages.next();
    if (next.done === true) return null;
    const p = next.value;
    const observations = p.observations.map((o) => toObservation(o, observedAt));
    return { page: encodePullPage(data.encoding, { observations, records: p.records }), cursor: p.cursor, rejects: p.rejects ?? [] };
  },
);
