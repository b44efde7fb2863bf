import { createTask, parse } from 'node-cron';
import type { Logger as CronLogger, ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';

/*
 * Scheduled runs of the daemon (DESIGN.md section 6): node-cron tasks from config.schedule
 * (full reconcile nightly, incremental every few minutes, reconfirm), in config.schedule.timezone.
 *
 * - No two runs of one kind at once: a per-kind mutex; a tick while the kind runs is skipped and
 *   logged. By default `full` and `incremental` also exclude each other (both pull the same
 *   connectors and move the same cursors); `conflicts` changes that.
 * - Catch-up: a run missed while the daemon was down runs at start. node-cron 4 has no "previous
 *   run" API, so previousFireTime() walks back from now over at most `catchUpLookbackMs`
 *   (default 8 days, so weekly schedules are covered) and asks the task's own matcher
 *   (ScheduledTask.match, timezone-aware, the same code that fires the task). It walks hour by
 *   hour: per hour it reads the zone's minute offset once and checks only the minutes/seconds
 *   the expression allows (node-cron's exported parse()); every candidate is confirmed with
 *   match(). If lastSuccess(kind) is older than that time (or null), the kind runs now.
 * - Jobs receive an AbortSignal, aborted by stop(): a long run should stop at its next page
 *   boundary (cursors are checkpointed per page, so the next run resumes).
 */

export const SCHEDULE_KINDS = ['full', 'incremental', 'reconfirm'] as const;
export type ScheduleKind = (typeof SCHEDULE_KINDS)[number];

export interface ScheduleConfig {
  full: string | null;
  incremental: string | null;
  reconfirm: string | null;
  timezone: string;
}

export type ScheduledJob = (signal: AbortSignal) => Promise<void>;
export type TriggerReason = 'cron' | 'catch-up' | 'manual';
export type TriggerOutcome = 'ok' | 'failed' | 'skipped';

export interface SchedulerOptions {
  schedule: ScheduleConfig;
  jobs: Record<ScheduleKind, ScheduledJob>;
  /** When the kind last finished successfully (the engine reads store.lastRun). */
  lastSuccess: (kind: ScheduleKind) => Promise<Date | null>;
  logger: Logger;
  now?: () => Date;
  /** Pairs of kinds that may not run at the same time; default [['full', 'incremental']]. */
  conflicts?: ReadonlyArray<readonly [ScheduleKind, ScheduleKind]>;
  /** Called after every trigger (metrics). */
  onRun?: (kind: ScheduleKind, outcome: TriggerOutcome, durationMs: number) => void;
  catchUpLookbackMs?: number;
}

export const DEFAULT_CATCH_UP_LOOKBACK_MS = 8 * 24 * 3600_000;

const HOUR = 3600_000;
const MINUTE = 60_000;

const minuteFormatters = new Map<string, Intl.DateTimeFormat>();
function localMinute(at: number, timezone: string): number {
  let f = minuteFormatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: timezone, minute: 'numeric' });
    minuteFormatters.set(timezone, f);
  }
  return Number(f.formatToParts(at).find((p) => p.type === 'minute')?.value ?? '0');
}

/** Latest time <= `before` at which `matches` says the expression fires, within the lookback. */
export function previousFireTimeWith(
  expression: string,
  timezone: string,
  matches: (d: Date) => boolean,
  before: Date,
  lookbackMs = DEFAULT_CATCH_UP_LOOKBACK_MS,
): Date | null {
  const fields = parse(expression);
  const minutes = [...new Set(fields.minute)].sort((a, b) => b - a);
  const seconds = [...new Set(fields.second)].sort((a, b) => b - a);
  const end = before.getTime();
  const floor = end - lookbackMs;
  for (let hourStart = Math.floor(end / HOUR) * HOUR; hourStart + HOUR > floor; hourStart -= HOUR) {
    // Zone offsets are whole minutes: the local minute at hourStart gives the shift for the hour.
    const lm0 = localMinute(hourStart, timezone);
    const candidates: number[] = [];
    for (const m of minutes) {
      const delta = (((m - lm0) % 60) + 60) % 60;
      for (const s of seconds) candidates.push(hourStart + delta * MINUTE + s * 1000);
    }
    candidates.sort((a, b) => b - a);
    for (const t of candidates) {
      if (t > end || t < floor) continue;
      if (matches(new Date(t))) return new Date(t);
    }
  }
  return null;
}

/** previousFireTimeWith using a throwaway (never started) node-cron task as the matcher. */
export function previousFireTime(expression: string, timezone: string, before: Date, lookbackMs = DEFAULT_CATCH_UP_LOOKBACK_MS): Date | null {
  const task = createTask(expression, () => undefined, { timezone });
  try {
    return previousFireTimeWith(expression, timezone, (d) => task.match(d), before, lookbackMs);
  } finally {
    void task.destroy();
  }
}

function cronLogger(log: Logger): CronLogger {
  return {
    info: (m) => log.info(m),
    warn: (m) => log.warn(m),
    error: (m, err) => (typeof m === 'string' ? log.error({ err }, m) : log.error({ err: m }, 'node-cron error')),
    debug: (m, err) => (typeof m === 'string' ? log.debug({ err }, m) : log.debug({ err: m }, 'node-cron')),
  };
}

export class Scheduler {
  readonly #opts: SchedulerOptions;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #conflicts: ReadonlyArray<readonly [ScheduleKind, ScheduleKind]>;
  readonly #running = new Map<ScheduleKind, Promise<TriggerOutcome>>();
  readonly #tasks = new Map<ScheduleKind, ScheduledTask>();
  #abort = new AbortController();
  #stopped = false;

  constructor(opts: SchedulerOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'scheduler' });
    this.#now = opts.now ?? (() => new Date());
    this.#conflicts = opts.conflicts ?? [['full', 'incremental']];
  }

  /** Kinds with an expression (null in config = disabled). */
  enabledKinds(): ScheduleKind[] {
    return SCHEDULE_KINDS.filter((k) => this.#opts.schedule[k] !== null);
  }

  running(): ScheduleKind[] {
    return [...this.#running.keys()];
  }

  /** Create and start the cron tasks. */
  start(): void {
    if (this.#tasks.size > 0) return;
    this.#stopped = false;
    this.#abort = new AbortController();
    const logger = cronLogger(this.#log);
    for (const kind of this.enabledKinds()) {
      const expr = this.#opts.schedule[kind];
      if (expr === null) continue;
      const task = createTask(expr, () => this.trigger(kind, 'cron'), { name: `consentd-${kind}`, timezone: this.#opts.schedule.timezone, logger });
      void task.start();
      this.#tasks.set(kind, task);
      this.#log.info({ kind, expression: expr, timezone: this.#opts.schedule.timezone }, 'scheduled');
    }
  }

  /** The latest scheduled time of `kind` at or before now, or null (disabled / beyond lookback). */
  previousFire(kind: ScheduleKind, before: Date = this.#now()): Date | null {
    const expr = this.#opts.schedule[kind];
    if (expr === null) return null;
    return previousFireTime(expr, this.#opts.schedule.timezone, before, this.#opts.catchUpLookbackMs ?? DEFAULT_CATCH_UP_LOOKBACK_MS);
  }

  /**
   * Run now the kinds whose last scheduled time passed since their last success (missed while
   * the daemon was down), sequentially: full, incremental, reconfirm. A successful full catch-up
   * makes an incremental catch-up pointless (the full pull covered it): skipped.
   */
  async catchUp(): Promise<Partial<Record<ScheduleKind, TriggerOutcome>>> {
    const out: Partial<Record<ScheduleKind, TriggerOutcome>> = {};
    for (const kind of this.enabledKinds()) {
      if (this.#stopped) break;
      if (kind === 'incremental' && out.full === 'ok') continue;
      const prev = this.previousFire(kind);
      if (prev === null) continue;
      let last: Date | null;
      try {
        last = await this.#opts.lastSuccess(kind);
      } catch (err) {
        this.#log.error({ kind, err }, 'catch-up: cannot read the last successful run; skipped');
        continue;
      }
      if (last !== null && last.getTime() >= prev.getTime()) continue;
      this.#log.info({ kind, missed: prev.toISOString(), lastSuccess: last?.toISOString() ?? null }, 'catch-up: running a missed scheduled run');
      out[kind] = await this.trigger(kind, 'catch-up');
    }
    return out;
  }

  /** Run one kind now unless it (or a conflicting kind) is running; never throws. */
  async trigger(kind: ScheduleKind, reason: TriggerReason): Promise<TriggerOutcome> {
    if (this.#stopped) {
      this.#log.info({ kind, reason }, 'run skipped: scheduler stopped');
      return 'skipped';
    }
    const busy = [kind, ...this.#conflicts.flatMap(([a, b]) => (a === kind ? [b] : b === kind ? [a] : []))].filter((k) => this.#running.has(k));
    if (busy.length > 0) {
      this.#log.warn({ kind, reason, running: busy }, 'run skipped: previous run still in progress');
      this.#opts.onRun?.(kind, 'skipped', 0);
      return 'skipped';
    }
    const started = Date.now();
    const p = (async (): Promise<TriggerOutcome> => {
      this.#log.info({ kind, reason }, 'run started');
      try {
        await this.#opts.jobs[kind](this.#abort.signal);
        this.#log.info({ kind, reason, ms: Date.now() - started }, 'run finished');
        return 'ok';
      } catch (err) {
        this.#log.error({ kind, reason, err, ms: Date.now() - started }, 'run failed');
        return 'failed';
      }
    })();
    this.#running.set(kind, p);
    try {
      const outcome = await p;
      this.#opts.onRun?.(kind, outcome, Date.now() - started);
      return outcome;
    } finally {
      this.#running.delete(kind);
    }
  }

  /**
   * Stop the cron tasks, abort the running jobs' signal and wait for them up to `deadlineMs`
   * (default: as long as they take). Returns the kinds still running at the deadline.
   */
  async stop(deadlineMs?: number): Promise<{ inFlight: ScheduleKind[] }> {
    this.#stopped = true;
    for (const task of this.#tasks.values()) {
      await task.stop();
      await task.destroy();
    }
    this.#tasks.clear();
    this.#abort.abort(new Error('scheduler stopping'));
    const pending = [...this.#running.values()];
    if (pending.length === 0) return { inFlight: [] };
    const all = Promise.allSettled(pending).then(() => 'done' as const);
    if (deadlineMs === undefined) {
      await all;
      return { inFlight: [] };
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, deadlineMs));
    });
    const r = await Promise.race([all, timeout]);
    clearTimeout(timer);
    return { inFlight: r === 'done' ? [] : this.running() };
  }
}
