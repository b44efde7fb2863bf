import type { Logger } from 'pino';

/*
 * One outbox worker per connector (DESIGN.md section 4, Apply). The worker owns only the loop;
 * the engine's apply step (`drainOnce`) claims up to batchSize due items, pushes them through
 * the connector's p-queue and records the results.
 *
 *   loop: drainOnce() while it claims something
 *         idle: sleep until the earliest of nextDueAt, the poll interval, or notify() + linger
 *         error: log, back off (capped, doubling), try again; never crash the process
 *
 * notify() is called by the webhook intake after it enqueued high-lane changes. The first
 * notify of an idle period starts a `lingerMs` timer, so events arriving together go out in
 * one batch; further notifies do not extend it (bounded latency). A notify during a drain is
 * remembered: the next idle wait is only the linger, since the new items may have been
 * committed after the claim.
 */

export interface DrainResult {
  /** Items claimed (and pushed / recorded) by this call. */
  claimed: number;
  /** Epoch ms when the earliest retry item becomes due, or null. */
  nextDueAt: number | null;
}

/** The engine's apply step for one connector. `signal` aborts when stop()'s deadline passes. */
export type DrainOnceFn = (signal: AbortSignal) => Promise<DrainResult>;

export interface OutboxWorkerOptions {
  connectorId: string;
  drainOnce: DrainOnceFn;
  logger: Logger;
  /** Batch window after notify(); default 50 ms. */
  lingerMs?: number;
  /** Longest idle sleep (catches changes enqueued by scheduled runs); default 5000 ms. */
  pollMs?: number;
  /** Backoff after a failing drainOnce: base * 2^(n-1), capped; defaults 500 ms and 30 s. */
  errorBaseDelayMs?: number;
  errorMaxDelayMs?: number;
  now?: () => number;
}

export type WorkerState = 'idle' | 'draining' | 'backoff' | 'stopping' | 'stopped';

export class OutboxWorker {
  readonly connectorId: string;
  readonly #drainOnce: DrainOnceFn;
  readonly #log: Logger;
  readonly #lingerMs: number;
  readonly #pollMs: number;
  readonly #errBase: number;
  readonly #errMax: number;
  readonly #now: () => number;

  #state: WorkerState = 'stopped';
  #loop: Promise<void> | null = null;
  #stopping = false;
  #notified = false;
  #wake: (() => void) | null = null;
  #lingerTimer: NodeJS.Timeout | null = null;
  #abort = new AbortController();
  #consecutiveErrors = 0;
  #drains = 0;

  constructor(opts: OutboxWorkerOptions) {
    this.connectorId = opts.connectorId;
    this.#drainOnce = opts.drainOnce;
    this.#log = opts.logger.child({ worker: opts.connectorId });
    this.#lingerMs = Math.max(0, opts.lingerMs ?? 50);
    this.#pollMs = Math.max(1, opts.pollMs ?? 5000);
    this.#errBase = Math.max(1, opts.errorBaseDelayMs ?? 500);
    this.#errMax = Math.max(this.#errBase, opts.errorMaxDelayMs ?? 30_000);
    this.#now = opts.now ?? Date.now;
  }

  get state(): WorkerState {
    return this.#state;
  }

  /** Completed drainOnce calls (successful or not); for tests and status. */
  get drains(): number {
    return this.#drains;
  }

  start(): void {
    if (this.#loop) return;
    this.#stopping = false;
    this.#abort = new AbortController();
    this.#state = 'idle';
    this.#loop = this.#run().catch((err: unknown) => {
      // #run catches everything; this is a last line of defence.
      this.#log.error({ err }, 'outbox worker loop ended unexpectedly');
    });
  }

  /** New high-lane changes were enqueued: drain soon (after the linger). */
  notify(): void {
    if (this.#stopping) return;
    this.#notified = true;
    if (this.#wake && !this.#lingerTimer) {
      this.#lingerTimer = setTimeout(() => {
        this.#lingerTimer = null;
        this.#wakeUp();
      }, this.#lingerMs);
    }
  }

  /**
   * Stop claiming; wait for the in-flight drain up to `deadlineMs`. Past the deadline the drain's
   * signal is aborted and stop() resolves with drained = false (items left in_flight are requeued
   * at the next start by store.requeueInFlight; pushes are idempotent).
   */
  async stop(deadlineMs: number): Promise<{ drained: boolean }> {
    this.#stopping = true;
    if (this.#state !== 'stopped') this.#state = 'stopping';
    this.#clearLinger();
    this.#wakeUp();
    const loop = this.#loop;
    if (!loop) {
      this.#state = 'stopped';
      return { drained: true };
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, deadlineMs));
    });
    const outcome = await Promise.race([loop.then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.#abort.abort(new Error('outbox worker stop deadline exceeded'));
      this.#log.warn({ deadlineMs }, 'outbox worker: in-flight drain did not finish before the deadline');
      return { drained: false };
    }
    this.#state = 'stopped';
    this.#loop = null;
    return { drained: true };
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      this.#state = 'draining';
      // This drain covers every notify so far (a linger still pending would only wake us early).
      this.#notified = false;
      this.#clearLinger();
      let result: DrainResult;
      try {
        result = await this.#drainOnce(this.#abort.signal);
        this.#consecutiveErrors = 0;
      } catch (err) {
        this.#consecutiveErrors += 1;
        const delay = Math.min(this.#errMax, this.#errBase * 2 ** Math.min(30, this.#consecutiveErrors - 1));
        this.#log.error({ err, attempt: this.#consecutiveErrors, retryInMs: delay }, 'outbox drain failed; backing off');
        this.#state = 'backoff';
        await this.#sleep(delay, false);
        continue;
      } finally {
        this.#drains += 1;
      }
      if (this.#stopping) break;
      if (result.claimed > 0) continue;

      this.#state = 'idle';
      let wait = this.#pollMs;
      if (result.nextDueAt !== null) wait = Math.min(wait, Math.max(0, result.nextDueAt - this.#now()));
      // A notify() during the drain: its items may have been committed after our claim.
      if (this.#notified) wait = Math.min(wait, this.#lingerMs);
      if (wait > 0) await this.#sleep(wait, true);
    }
    this.#state = 'stopped';
  }

  /** Sleep `ms`; stop() always wakes it; notify() (via the linger timer) only when `interruptible`. */
  #sleep(ms: number, interruptible: boolean): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.#wake === wake) this.#wake = null;
        resolve();
      };
      const wake = (): void => {
        if (interruptible || this.#stopping) done();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.#wake = wake;
    });
  }

  #wakeUp(): void {
    this.#clearLinger();
    const w = this.#wake;
    if (w) w();
  }

  #clearLinger(): void {
    if (this.#lingerTimer) {
      clearTimeout(this.#lingerTimer);
      this.#lingerTimer = null;
    }
  }
}

/** The workers of a daemon, one per connector. */
export class OutboxWorkers {
  readonly #workers = new Map<string, OutboxWorker>();

  constructor(workers: Iterable<OutboxWorker>) {
    for (const w of workers) this.#workers.set(w.connectorId, w);
  }

  get(connectorId: string): OutboxWorker | undefined {
    return this.#workers.get(connectorId);
  }

  startAll(): void {
    for (const w of this.#workers.values()) w.start();
  }

  notify(connectorId: string): void {
    this.#workers.get(connectorId)?.notify();
  }

  notifyAll(): void {
    for (const w of this.#workers.values()) w.notify();
  }

  /** Stop every worker in parallel within one deadline; returns connector ids still in flight. */
  async stopAll(deadlineMs: number): Promise<{ inFlight: string[] }> {
    const results = await Promise.all([...this.#workers.values()].map(async (w) => ({ id: w.connectorId, r: await w.stop(deadlineMs) })));
    return { inFlight: results.filter((x) => !x.r.drained).map((x) => x.id) };
  }
}
