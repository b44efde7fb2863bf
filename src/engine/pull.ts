import type { Connector, PullReject } from '../connectors/contract.js';
import { ConnectorFailedError } from '../errors.js';
import { subjectHash, toObservation, type Decision, type RecordSnapshot } from '../model/index.js';
import { planSubject } from '../plan/index.js';
import type { IngestPage, StoreEncoding } from '../store/store.js';
import type { Engine } from './context.js';
import { pagedWorker, startWorker } from './worker-thread.js';

export interface PullStats {
  pages: number;
  /** Observations new to the ledger. */
  observations: number;
  /** Observations the connector stated (new or already known). */
  seen: number;
  records: number;
  rejects: number;
  /** Records of erased people seen again: erased again (policy rule 6). */
  reerased: number;
  /** Records forgotten by a complete full pull (gone from the system). */
  dropped: number;
}

export interface PullOptions {
  full: boolean;
  /**
   * Run the connector's pull on a worker thread when it offers one (Connector.pullOffThread):
   * 'auto' (default: from PULL_WORKER_MIN_BYTES to read), 'always', 'never'.
   */
  worker?: 'auto' | 'always' | 'never';
  /** Called for every malformed source row (after it is logged). */
  onReject?: (reject: PullReject) => void;
}

/**
 * Stream one connector's pages into the store: observations and records with the cursor, one
 * transaction per page. Memory is bounded by the page. A thrown pull is a ConnectorFailedError
 * (pages stored before it stay stored; the run is marked failed).
 */
export async function pullConnector(engine: Engine, connector: Connector, opts: PullOptions): Promise<PullStats> {
  const { store, logger } = engine;
  const runId = await store.startRun(opts.full ? 'pull_full' : 'pull_incremental', connector.id);
  const stats: PullStats = { pages: 0, observations: 0, seen: 0, records: 0, rejects: 0, reerased: 0, dropped: 0 };
  const log = logger.child({ connector: connector.id, runId });
  try {
    const cursor = opts.full ? null : await store.getCursor(connector.id);
    log.info({ full: opts.full || cursor === null }, 'pull started');
    for await (const page of pulledPages(engine, connector, cursor, opts.worker ?? 'auto')) {
      const result = await store.ingestPage(connector.id, runId, page.page, page.cursor);
      stats.pages++;
      stats.seen += page.page.observations.length;
      stats.observations += result.observationsAdded;
      stats.records += result.recordsUpserted;
      for (const r of page.rejects) {
        stats.rejects++;
        log.warn({ where: r.where, reason: r.reason }, 'row rejected');
        opts.onReject?.(r);
      }
      if (result.tombstoned.length > 0) stats.reerased += await eraseAgain(engine, connector, result.tombstoned);
      engine.progress?.({ phase: 'pull', connectorId: connector.id, counts: { ...stats } });
    }
    if (cursor === null) stats.dropped = await store.dropUnseenRecords(connector.id, runId);
    await store.finishRun(runId, 'ok', { ...stats });
    log.info({ ...stats }, 'pull finished');
    return stats;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await store.finishRun(runId, 'failed', { ...stats }, message).catch(() => undefined);
    log.error({ err }, 'pull failed');
    const code = (err as { code?: unknown } | null | undefined)?.code;
    if (typeof code === 'string' && /^(STORE_|SQLITE_)/.test(code)) throw err;
    throw new ConnectorFailedError(connector.id, `pull failed: ${message}`, { cause: err });
  }
}

/** A page as the engine stores it: observations made (ids, observedAt), maybe already encoded. */
export interface PulledPage {
  page: IngestPage;
  cursor: string | null;
  rejects: PullReject[];
}

/** From this many bytes to read, an offered off-thread pull runs on a worker (below, starting one costs more). */
export const PULL_WORKER_MIN_BYTES = 4 * 1024 * 1024;
/** Old-generation heap of a pull worker, MB (it holds a few pages at a time). */
const PULL_WORKER_HEAP_MB = 64;
/** Pages a pull worker prepares ahead of the writes. */
const PULL_AHEAD = 3;

/** What a pull worker is started with (pull-worker.ts). */
export interface PullWorkerData {
  module: string;
  args: unknown;
  cursor: string | null;
  encoding: StoreEncoding;
}
/** What each request for a page carries: the time its observations are observed at. */
export type PullRequest = { observedAt: string };

/**
 * The connector's pages, ready to store. On a worker thread when the connector offers an
 * off-thread pull worth a thread: it parses and encodes there while this thread writes (the main
 * thread's event loop stays free for webhooks during a large pull). Else on this thread.
 */
async function* pulledPages(engine: Engine, connector: Connector, cursor: string | null, mode: 'auto' | 'always' | 'never'): AsyncGenerator<PulledPage> {
  const offThread = mode === 'never' || connector.pullOffThread === undefined ? null : await connector.pullOffThread(cursor);
  if (offThread === null || (mode === 'auto' && offThread.bytes < PULL_WORKER_MIN_BYTES)) {
    for await (const page of connector.pull(cursor)) {
      const observedAt = engine.now();
      const observations = page.observations.map((o) => toObservation(o, observedAt));
      yield { page: { observations, records: page.records }, cursor: page.cursor, rejects: page.rejects ?? [] };
    }
    return;
  }
  const data: PullWorkerData = { module: offThread.module, args: offThread.args, cursor, encoding: engine.store.encoding };
  const worker = pagedWorker<PullRequest, PulledPage>(startWorker('pull-worker', data, PULL_WORKER_HEAP_MB), 'worker thread', () => ({ observedAt: engine.now().toISOString() }), PULL_AHEAD);
  try {
    for (let page = await worker.next(); page !== null; page = await worker.next()) yield page;
  } finally {
    await worker.close();
  }
}

/**
 * A record of an erased person showed up again: plan its erasure in that system and record the
 * fact (the tombstone stays; the audit gets a new erasure fact with this connector as source).
 */
async function eraseAgain(engine: Engine, connector: Connector, records: RecordSnapshot[]): Promise<number> {
  const bySubject = new Map<string, RecordSnapshot[]>();
  for (const r of records) {
    if (connector.capabilities.eraseKeepsSuppression === true && isSuppressionResidue(r)) continue;
    const list = bySubject.get(r.subject) ?? [];
    list.push(r);
    bySubject.set(r.subject, list);
  }
  const target = [{ connectorId: connector.id, capabilities: connector.capabilities }];
  for (const [subject, recs] of bySubject) {
    const decision: Decision = { subject, permissions: [], suppressions: [], erasureRequested: true };
    const changes = planSubject(decision, recs, target);
    await engine.store.eraseSubject(subject, subjectHash(subject, engine.config.salt), connector.id, changes);
    engine.logger.warn({ connector: connector.id, subject, records: recs.length, changes: changes.length }, 'erased person seen again: erasing again');
  }
  let n = 0;
  for (const recs of bySubject.values()) n += recs.length;
  return n;
}

/** Nothing but denials and suppressions: what an erasure deliberately left behind. */
function isSuppressionResidue(r: RecordSnapshot): boolean {
  return Object.values(r.consent).every((s) => s !== 'granted') && Object.values(r.suppressed).some((v) => v);
}

/** Pull several connectors one after the other; returns stats per connector id. */
export async function pullAll(engine: Engine, connectors: readonly Connector[], opts: PullOptions): Promise<Map<string, PullStats>> {
  const out = new Map<string, PullStats>();
  for (const c of connectors) out.set(c.id, await pullConnector(engine, c, opts));
  return out;
}
