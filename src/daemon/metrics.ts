import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Store } from '../store/store.js';

/*
 * Prometheus metrics of the daemon (DESIGN.md section 6). One private Registry per
 * createMetrics() call (never prom-client's global one), so tests and several daemons in one
 * process do not collide. Callers use the typed helpers, never the raw prom-client objects.
 *
 * Queue gauges (outbox depth, oldest age, dead letters, stale grants) are read at scrape time
 * through one injected async collector: a scrape calls it once (shared by every gauge), and a
 * failing collector leaves the previous values and counts consentd_metrics_collect_errors_total
 * instead of failing the scrape.
 */

export type WebhookEventResult = 'accepted' | 'duplicate' | 'rejected' | 'failed';
export type PushMetricResult = 'ok' | 'retry' | 'failed';
export type PropagationFrom = 'stated' | 'received';
export type RunMetricStatus = 'ok' | 'failed' | 'skipped' | 'interrupted';

/** What the scrape-time collector reports. */
export interface QueueSnapshot {
  /** Pending + retry + in_flight outbox items per connector. */
  outboxDepth: Record<string, number>;
  /**
   * Age in seconds of the oldest pending item, per connector. A store that only knows the global
   * oldest item reports it under the connector label "*".
   */
  oldestPendingAgeSeconds: Record<string, number>;
  deadLetters: number;
  /** Explicit grants older than reconfirmAfter (policy rule 9); omitted when unknown. */
  staleGrants?: number;
}

export type QueueCollector = () => Promise<QueueSnapshot>;

export const PROPAGATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export interface DaemonMetrics {
  readonly registry: Registry;
  /** Webhook events by outcome (accepted = new and durable, duplicate = seen before). */
  webhookEvents(connector: string, result: WebhookEventResult, n?: number): void;
  webhookRejected(connector: string, reason: string): void;
  /** Seconds from the person's statedAt (or our receipt) to the last successful push. */
  propagation(from: PropagationFrom, seconds: number): void;
  pushes(connector: string, result: PushMetricResult, n?: number): void;
  /** One push() call: how long it took and how many changes it carried. */
  pushBatch(connector: string, seconds: number, changes: number): void;
  driftFound(connector: string, n?: number): void;
  driftFixed(connector: string, n?: number): void;
  apiCall(connector: string, endpoint: string, status: number | 'error'): void;
  rateLimitWait(connector: string, ms: number): void;
  /** A scheduled / triggered run finished; `ok` also sets the last-success timestamp. */
  run(kind: string, status: RunMetricStatus, durationMs?: number, at?: Date): void;
  /** Set stale grants directly (e.g. after a reconfirm run) when the collector does not. */
  setStaleGrants(n: number): void;
  /** Install (or replace) the scrape-time collector. */
  setQueueCollector(collector: QueueCollector | null): void;
  /** Prometheus text exposition. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

export interface CreateMetricsOptions {
  /** Default process metrics (CPU, memory, event loop lag, ...); default true. */
  defaultMetrics?: boolean;
  collector?: QueueCollector;
  /** Prefix of default metrics; default "consentd_". */
  prefix?: string;
}

export function createMetrics(opts: CreateMetricsOptions = {}): DaemonMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: opts.prefix ?? 'consentd_' });
  const registers = [registry];

  const webhookEventsTotal = new Counter({
    name: 'consentd_webhook_events_total',
    help: 'Webhook events received, by connector and result',
    labelNames: ['connector', 'result'] as const,
    registers,
  });
  const webhookRejectionsTotal = new Counter({
    name: 'consentd_webhook_rejections_total',
    help: 'Webhook requests rejected, by connector and reason',
    labelNames: ['connector', 'reason'] as const,
    registers,
  });
  const propagationSeconds = new Histogram({
    name: 'consentd_propagation_seconds',
    help: 'Seconds from a statement (statedAt) or its receipt to the last successful push',
    labelNames: ['from'] as const,
    buckets: PROPAGATION_BUCKETS,
    registers,
  });
  const pushesTotal = new Counter({
    name: 'consentd_pushes_total',
    help: 'Changes pushed to connectors, by result',
    labelNames: ['connector', 'result'] as const,
    registers,
  });
  const pushDuration = new Histogram({
    name: 'consentd_push_duration_seconds',
    help: 'Duration of one push (a batch of changes to one connector), rate-limit waits included',
    labelNames: ['connector'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const pushBatchSize = new Histogram({
    name: 'consentd_push_batch_changes',
    help: 'Changes carried by one push',
    labelNames: ['connector'] as const,
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000],
    registers,
  });
  const driftFoundTotal = new Counter({
    name: 'consentd_drift_found_total',
    help: 'Records found disagreeing with the canonical state',
    labelNames: ['connector'] as const,
    registers,
  });
  const driftFixedTotal = new Counter({
    name: 'consentd_drift_fixed_total',
    help: 'Disagreeing records corrected',
    labelNames: ['connector'] as const,
    registers,
  });
  const apiCallsTotal = new Counter({
    name: 'consentd_api_calls_total',
    help: 'Platform API calls, by endpoint and HTTP status',
    labelNames: ['connector', 'endpoint', 'status'] as const,
    registers,
  });
  const rateLimitWaitSeconds = new Counter({
    name: 'consentd_rate_limit_wait_seconds_total',
    help: 'Seconds spent waiting on platform rate limits',
    labelNames: ['connector'] as const,
    registers,
  });
  const runsTotal = new Counter({
    name: 'consentd_runs_total',
    help: 'Runs by kind and status',
    labelNames: ['kind', 'status'] as const,
    registers,
  });
  const runDuration = new Histogram({
    name: 'consentd_run_duration_seconds',
    help: 'Run duration by kind',
    labelNames: ['kind'] as const,
    buckets: [1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400],
    registers,
  });
  const lastSuccess = new Gauge({
    name: 'consentd_run_last_success_timestamp_seconds',
    help: 'Unix time of the last successful run, by kind',
    labelNames: ['kind'] as const,
    registers,
  });
  const collectErrors = new Counter({
    name: 'consentd_metrics_collect_errors_total',
    help: 'Scrapes whose queue collector failed (gauges kept their previous values)',
    registers,
  });

  let collector: QueueCollector | null = opts.collector ?? null;
  // One collector call per scrape: every gauge's collect() awaits the same promise.
  let inFlight: Promise<QueueSnapshot | null> | null = null;
  const snapshot = (): Promise<QueueSnapshot | null> => {
    if (!collector) return Promise.resolve(null);
    if (inFlight) return inFlight;
    const c = collector;
    inFlight = (async () => {
      try {
        return await c();
      } catch {
        collectErrors.inc();
        return null;
      } finally {
        // Cleared on the next macrotask so that all gauges of this scrape share the result.
        setImmediate(() => {
          inFlight = null;
        });
      }
    })();
    return inFlight;
  };

  const setAll = (g: Gauge<'connector'>, values: Record<string, number>): void => {
    g.reset();
    for (const [connector, v] of Object.entries(values)) g.set({ connector }, v);
  };

  new Gauge({
    name: 'consentd_outbox_depth',
    help: 'Outbox items pending, retrying or in flight, per connector',
    labelNames: ['connector'] as const,
    registers,
    async collect() {
      const s = await snapshot();
      if (s) setAll(this, s.outboxDepth);
    },
  });
  new Gauge({
    name: 'consentd_outbox_oldest_age_seconds',
    help: 'Age of the oldest pending outbox item, per connector ("*" = all connectors)',
    labelNames: ['connector'] as const,
    registers,
    async collect() {
      const s = await snapshot();
      if (s) setAll(this, s.oldestPendingAgeSeconds);
    },
  });
  new Gauge({
    name: 'consentd_dead_letters',
    help: 'Changes in the dead-letter list',
    registers,
    async collect() {
      const s = await snapshot();
      if (s) this.set(s.deadLetters);
    },
  });
  const staleGrants = new Gauge({
    name: 'consentd_stale_grants',
    help: 'Explicit grants older than reconfirmAfter (policy rule 9)',
    registers,
    async collect() {
      const s = await snapshot();
      if (s?.staleGrants !== undefined) this.set(s.staleGrants);
    },
  });

  const nonNegative = (n: number): number => (Number.isFinite(n) && n > 0 ? n : 0);

  return {
    registry,
    contentType: registry.contentType,
    webhookEvents: (connector, result, n = 1) => {
      if (n > 0) webhookEventsTotal.inc({ connector, result }, n);
    },
    webhookRejected: (connector, reason) => webhookRejectionsTotal.inc({ connector, reason }),
    propagation: (from, seconds) => propagationSeconds.observe({ from }, nonNegative(seconds)),
    pushes: (connector, result, n = 1) => {
      if (n > 0) pushesTotal.inc({ connector, result }, n);
    },
    pushBatch: (connector, seconds, changes) => {
      pushDuration.observe({ connector }, nonNegative(seconds));
      pushBatchSize.observe({ connector }, nonNegative(changes));
    },
    driftFound: (connector, n = 1) => {
      if (n > 0) driftFoundTotal.inc({ connector }, n);
    },
    driftFixed: (connector, n = 1) => {
      if (n > 0) driftFixedTotal.inc({ connector }, n);
    },
    apiCall: (connector, endpoint, status) => apiCallsTotal.inc({ connector, endpoint, status: String(status) }),
    rateLimitWait: (connector, ms) => rateLimitWaitSeconds.inc({ connector }, nonNegative(ms) / 1000),
    run: (kind, status, durationMs, at = new Date()) => {
      runsTotal.inc({ kind, status });
      if (durationMs !== undefined) runDuration.observe({ kind }, nonNegative(durationMs) / 1000);
      if (status === 'ok') lastSuccess.set({ kind }, at.getTime() / 1000);
    },
    setStaleGrants: (n) => staleGrants.set(n),
    setQueueCollector: (c) => {
      collector = c;
    },
    scrape: () => registry.metrics(),
  };
}

/**
 * A collector reading the store: depth per connector from outboxDepth(), the global oldest
 * pending age (label "*") and dead letters from stats().
 */
export function storeQueueCollector(
  store: Pick<Store, 'outboxDepth' | 'stats'>,
  now: () => number = Date.now,
  staleGrants?: () => Promise<number>,
): QueueCollector {
  return async () => {
    const [depth, stats, stale] = await Promise.all([store.outboxDepth(), store.stats(), staleGrants ? staleGrants() : Promise.resolve(undefined)]);
    const oldest = stats.oldestPendingAt === null ? null : Date.parse(stats.oldestPendingAt);
    const snap: QueueSnapshot = {
      outboxDepth: depth,
      oldestPendingAgeSeconds: oldest === null || Number.isNaN(oldest) ? { '*': 0 } : { '*': Math.max(0, (now() - oldest) / 1000) },
      deadLetters: stats.deadLetters,
    };
    if (stale !== undefined) snap.staleGrants = stale;
    return snap;
  };
}
