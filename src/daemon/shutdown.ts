import type { Logger } from 'pino';

/*
 * Graceful shutdown (DESIGN.md section 6): on SIGTERM / SIGINT run the steps in order, each
 * given the time left before the deadline; the standard order (daemonShutdownSteps) is
 *   drain (webhooks and admin writes answer 503) -> close HTTP (stop accepting, let in-flight
 *   requests finish) -> stop the scheduler -> stop the outbox workers -> close connectors ->
 *   close the store.
 * A failing step is logged and the next one still runs (the store is always closed), and the
 * exit code becomes 1. A second signal, or the deadline passing, exits at once with code 1 after
 * logging which step was still in flight and which never ran.
 *
 * Testable without signals: `shutdown()` runs the same sequence; `exit` and the signal source
 * are injectable.
 */

export interface ShutdownStep {
  name: string;
  /** `remainingMs`: time left before the overall deadline. */
  run: (remainingMs: number) => Promise<unknown> | unknown;
}

export interface ShutdownResult {
  ok: boolean;
  /** Names of steps that threw. */
  failed: string[];
  durationMs: number;
}

/** The part of `process` used: signal subscription. */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

export interface ShutdownOptions {
  signals?: readonly NodeJS.Signals[];
  steps: readonly ShutdownStep[];
  deadlineMs: number;
  logger: Logger;
  /** Default process.exit. */
  exit?: (code: number) => void;
  /** Default process. */
  signalSource?: SignalSource;
}

export interface ShutdownHandle {
  /** Run the shutdown sequence (idempotent: later calls return the same promise). */
  shutdown(reason?: string): Promise<ShutdownResult>;
  /** Remove the signal listeners (tests, or a host that handles signals itself). */
  uninstall(): void;
  readonly inProgress: boolean;
}

/** Thrown by a step that finished but left work behind (e.g. a worker past its deadline). */
export class ShutdownIncompleteError extends Error {
  readonly code = 'SHUTDOWN_INCOMPLETE';
  constructor(
    readonly step: string,
    readonly inFlight: readonly string[],
  ) {
    super(`${step}: still in flight: ${inFlight.join(', ')}`);
  }
}

export function installShutdown(opts: ShutdownOptions): ShutdownHandle {
  const signals = opts.signals ?? ['SIGTERM', 'SIGINT'];
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const source: SignalSource = opts.signalSource ?? process;
  const log = opts.logger.child({ component: 'shutdown' });

  let running: Promise<ShutdownResult> | null = null;
  let current: string | null = null;
  let done = new Set<string>();
  let exited = false;

  const exitOnce = (code: number): void => {
    if (exited) return;
    exited = true;
    exit(code);
  };

  const notRun = (): string[] => opts.steps.map((s) => s.name).filter((n) => !done.has(n) && n !== current);

  const shutdown = (reason = 'requested'): Promise<ShutdownResult> => {
    if (running) return running;
    const started = Date.now();
    const deadline = started + opts.deadlineMs;
    log.info({ reason, deadlineMs: opts.deadlineMs }, 'shutting down');
    done = new Set();
    const timer = setTimeout(() => {
      log.error({ inFlight: current, notRun: notRun(), deadlineMs: opts.deadlineMs }, 'shutdown deadline exceeded; exiting');
      exitOnce(1);
    }, opts.deadlineMs);
    timer.unref();

    running = (async () => {
      const failed: string[] = [];
      for (const step of opts.steps) {
        current = step.name;
        const remainingMs = Math.max(0, deadline - Date.now());
        try {
          await step.run(remainingMs);
          log.info({ step: step.name, ms: Date.now() - started }, 'shutdown step done');
        } catch (err) {
          failed.push(step.name);
          log.error({ step: step.name, err }, 'shutdown step failed');
        }
        done.add(step.name);
      }
      current = null;
      clearTimeout(timer);
      const result: ShutdownResult = { ok: failed.length === 0, failed, durationMs: Date.now() - started };
      log.info(result, 'shutdown complete');
      return result;
    })();
    return running;
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (running) {
      log.error({ signal, inFlight: current, notRun: notRun() }, 'second signal during shutdown; exiting now');
      exitOnce(1);
      return;
    }
    void shutdown(signal).then((r) => exitOnce(r.ok ? 0 : 1));
  };

  for (const s of signals) source.on(s, onSignal);

  return {
    shutdown,
    uninstall: () => {
      for (const s of signals) source.off(s, onSignal);
    },
    get inProgress() {
      return running !== null;
    },
  };
}

export interface DaemonShutdownParts {
  /** Flip the flag that makes intake answer 503. */
  setDraining: () => void;
  http?: { close(): Promise<unknown> };
  scheduler?: { stop(deadlineMs?: number): Promise<{ inFlight: readonly string[] }> };
  /** Engine work started by requests already answered (the instant reconcile): let it finish. */
  engine?: { quiesce(): Promise<void> };
  workers?: { stopAll(deadlineMs: number): Promise<{ inFlight: readonly string[] }> };
  /** Connectors' own close() (HTTP agents, file handles). */
  connectors?: Iterable<{ id: string; close?(): Promise<void> }>;
  store?: { close(): Promise<void> };
}

/**
 * The standard order. When workers follow, the scheduler gets at most half of the remaining
 * time (a long pull must not eat the workers' time to finish their batches); the workers leave
 * a little time for closing the store.
 */
export function daemonShutdownSteps(parts: DaemonShutdownParts): ShutdownStep[] {
  const steps: ShutdownStep[] = [{ name: 'drain', run: () => parts.setDraining() }];
  const { http, scheduler, workers, connectors, store } = parts;
  if (http) steps.push({ name: 'http', run: () => http.close() });
  if (scheduler)
    steps.push({
      name: 'scheduler',
      run: async (remainingMs) => {
        const r = await scheduler.stop(workers ? Math.floor(remainingMs / 2) : remainingMs);
        if (r.inFlight.length > 0) throw new ShutdownIncompleteError('scheduler', r.inFlight);
      },
    });
  const { engine } = parts;
  if (engine) steps.push({ name: 'engine', run: () => engine.quiesce() });
  if (workers)
    steps.push({
      name: 'workers',
      run: async (remainingMs) => {
        // keep a little time for closing the store
        const r = await workers.stopAll(Math.max(0, remainingMs - Math.min(1000, remainingMs / 10)));
        if (r.inFlight.length > 0) throw new ShutdownIncompleteError('workers', r.inFlight);
      },
    });
  if (connectors)
    steps.push({
      name: 'connectors',
      run: async () => {
        const list = [...connectors];
        const results = await Promise.allSettled(list.map(async (c) => c.close?.()));
        const failed = list.filter((_, i) => results[i]?.status === 'rejected').map((c) => c.id);
        if (failed.length > 0) throw new ShutdownIncompleteError('connectors', failed);
      },
    });
  if (store) steps.push({ name: 'store', run: () => store.close() });
  return steps;
}
