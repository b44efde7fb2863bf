import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Connector } from '../connectors/contract.js';
import { buildApp } from './http/app.js';
import type { AdminApi, Readiness, WebhookIntakeFn } from './http/types.js';
import { createMetrics } from './metrics.js';
import type { DaemonMetrics } from './metrics.js';
import { OutboxWorker, OutboxWorkers } from './outbox-worker.js';
import type { DrainResult } from './outbox-worker.js';
import { Scheduler } from './scheduler.js';
import type { ScheduleConfig, ScheduleKind, ScheduledJob } from './scheduler.js';
import { daemonShutdownSteps, installShutdown } from './shutdown.js';
import type { ShutdownHandle, ShutdownResult } from './shutdown.js';

/*
 * `consentd run`: one process with HTTP, scheduler and outbox workers (DESIGN.md section 6).
 * Everything engine-side is injected (DaemonEngineHooks), so this module knows no SQL, no policy
 * and no connector kind. The hooks are built by a factory that receives the daemon's controls:
 * the webhook intake uses `notify()` to wake the outbox workers after the instant reconcile
 * enqueued high-lane changes (for any connector, not only the one the webhook came from).
 */

/** What the engine gives the daemon. */
export interface DaemonEngineHooks {
  intake: WebhookIntakeFn;
  /** The apply step of one connector: claim <= batchSize, push, record results. */
  drainOnce(connectorId: string, signal: AbortSignal): Promise<DrainResult>;
  jobs: Record<ScheduleKind, ScheduledJob>;
  lastSuccess(kind: ScheduleKind): Promise<Date | null>;
  admin: AdminApi;
  readiness(): Promise<Readiness>;
  /** Crash recovery before workers start (store.requeueInFlight, interruptRunningRuns). */
  recover?(): Promise<void>;
  /** At shutdown, after HTTP and the scheduler stopped: finish work already accepted (instant reconciles). */
  quiesce?(): Promise<void>;
}

/** What the daemon gives the engine hooks. */
export interface DaemonControls {
  /** Wake the worker of one connector (or all) after high-lane changes were enqueued. */
  notify(connectorId?: string): void;
  isDraining(): boolean;
  metrics: DaemonMetrics;
}

/** The subset of Config the daemon reads (structural: src/config Config fits). */
export interface DaemonConfig {
  http: { host: string; port: number; adminTokens: string[]; bodyLimitBytes: number; publicUrl?: string | null };
  schedule: ScheduleConfig;
  outbox: { lingerMs: number };
}

export interface StartDaemonOptions {
  config: DaemonConfig;
  logger: Logger;
  connectors: ReadonlyMap<string, Connector>;
  hooks: (controls: DaemonControls) => DaemonEngineHooks;
  /** Closed last at shutdown. */
  store: { close(): Promise<void> };
  metrics?: DaemonMetrics;
  /** Whole shutdown budget; default 30 s. */
  shutdownDeadlineMs?: number;
  /** Listen to SIGTERM / SIGINT (default true); tests pass false and call shutdown(). */
  handleSignals?: boolean;
  /** Run missed scheduled runs at start (default true). */
  catchUp?: boolean;
  /** Worker idle poll; default 5 s. */
  workerPollMs?: number;
  trustProxy?: boolean;
  /** process.exit replacement (tests). */
  exit?: (code: number) => void;
}

export interface RunningDaemon {
  app: FastifyInstance;
  /** e.g. "http://127.0.0.1:8080" */
  address: string;
  metrics: DaemonMetrics;
  scheduler: Scheduler;
  workers: OutboxWorkers;
  /** Resolves when the catch-up runs (if any) finished. */
  catchUp: Promise<unknown>;
  shutdown(reason?: string): Promise<ShutdownResult>;
}

export async function startDaemon(opts: StartDaemonOptions): Promise<RunningDaemon> {
  const { config, logger } = opts;
  const metrics = opts.metrics ?? createMetrics();
  let draining = false;
  let workers: OutboxWorkers | null = null;

  const controls: DaemonControls = {
    notify: (connectorId) => {
      if (!workers) return;
      if (connectorId === undefined) workers.notifyAll();
      else workers.notify(connectorId);
    },
    isDraining: () => draining,
    metrics,
  };
  const hooks = opts.hooks(controls);

  await hooks.recover?.();

  workers = new OutboxWorkers(
    [...opts.connectors.keys()].map(
      (id) =>
        new OutboxWorker({
          connectorId: id,
          drainOnce: (signal) => hooks.drainOnce(id, signal),
          logger,
          lingerMs: config.outbox.lingerMs,
          ...(opts.workerPollMs !== undefined ? { pollMs: opts.workerPollMs } : {}),
        }),
    ),
  );

  const scheduler = new Scheduler({
    schedule: config.schedule,
    jobs: hooks.jobs,
    lastSuccess: (k) => hooks.lastSuccess(k),
    logger,
    onRun: (kind, outcome, ms) => metrics.run(kind, outcome, outcome === 'skipped' ? undefined : ms),
  });

  const app = buildApp({
    logger,
    metrics,
    connectors: opts.connectors,
    intake: hooks.intake,
    admin: hooks.admin,
    readiness: () => hooks.readiness(),
    adminTokens: config.http.adminTokens,
    bodyLimitBytes: config.http.bodyLimitBytes,
    isDraining: () => draining,
    publicUrl: config.http.publicUrl ?? null,
    trustProxy: opts.trustProxy ?? false,
  });

  const address = await app.listen({ host: config.http.host, port: config.http.port });
  workers.startAll();
  scheduler.start();
  const w = workers;
  const catchUp =
    opts.catchUp === false
      ? Promise.resolve()
      : scheduler.catchUp().catch((err: unknown) => {
          logger.error({ err }, 'catch-up failed');
        });

  const steps = daemonShutdownSteps({
    setDraining: () => {
      draining = true;
    },
    http: app,
    scheduler,
    ...(hooks.quiesce ? { engine: { quiesce: () => hooks.quiesce?.() ?? Promise.resolve() } } : {}),
    workers: w,
    connectors: [...opts.connectors.values()].map((c) => ({ id: c.id, close: async () => c.close?.() })),
    store: opts.store,
  });
  const handle: ShutdownHandle = installShutdown({
    steps,
    deadlineMs: opts.shutdownDeadlineMs ?? 30_000,
    logger,
    ...(opts.exit ? { exit: opts.exit } : {}),
    ...(opts.handleSignals === false ? { signals: [] } : {}),
  });
  logger.info({ address, connectors: [...opts.connectors.keys()], scheduled: scheduler.enabledKinds() }, 'consentd daemon started');

  return {
    app,
    address,
    metrics,
    scheduler,
    workers: w,
    catchUp,
    shutdown: async (reason) => {
      const r = await handle.shutdown(reason);
      handle.uninstall();
      return r;
    },
  };
}
