import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { Scheduler, previousFireTime } from '../../src/daemon/scheduler.js';
import type { ScheduleKind, SchedulerOptions } from '../../src/daemon/scheduler.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { logger, lines };
}

function deferred() {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function scheduler(over: Partial<SchedulerOptions> = {}) {
  const { logger, lines } = capture();
  const calls: ScheduleKind[] = [];
  const job = (kind: ScheduleKind) => vi.fn(async () => void calls.push(kind));
  const s = new Scheduler({
    schedule: { full: '0 2 * * *', incremental: '*/5 * * * *', reconfirm: '0 6 * * 1', timezone: 'UTC' },
    jobs: { full: job('full'), incremental: job('incremental'), reconfirm: job('reconfirm') },
    lastSuccess: async () => null,
    logger,
    ...over,
  });
  return { s, calls, lines };
}

describe('previousFireTime', () => {
  it('finds the latest scheduled time at or before now', () => {
    const now = new Date('2025-03-12T10:17:30Z'); // a Wednesday
    expect(previousFireTime('*/5 * * * *', 'UTC', now)?.toISOString()).toBe('2025-03-12T10:15:00.000Z');
    expect(previousFireTime('0 2 * * *', 'UTC', now)?.toISOString()).toBe('2025-03-12T02:00:00.000Z');
    expect(previousFireTime('0 6 * * 1', 'UTC', now)?.toISOString()).toBe('2025-03-10T06:00:00.000Z');
    expect(previousFireTime('30 * * * * *', 'UTC', now)?.toISOString()).toBe('2025-03-12T10:17:30.000Z');
    expect(previousFireTime('0 2 * * *', 'UTC', new Date('2025-03-12T02:00:00Z'))?.toISOString()).toBe('2025-03-12T02:00:00.000Z');
  });

  it('honours the time zone, including half-hour offsets and DST', () => {
    // 02:00 in Paris (CET, UTC+1) = 01:00Z
    expect(previousFireTime('0 2 * * *', 'Europe/Paris', new Date('2025-01-15T12:00:00Z'))?.toISOString()).toBe('2025-01-15T01:00:00.000Z');
    // summer (CEST, UTC+2)
    expect(previousFireTime('0 2 * * *', 'Europe/Paris', new Date('2025-07-15T12:00:00Z'))?.toISOString()).toBe('2025-07-15T00:00:00.000Z');
    // India (UTC+5:30): 03:00 local = 21:30Z the day before
    expect(previousFireTime('0 3 * * *', 'Asia/Kolkata', new Date('2025-01-15T12:00:00Z'))?.toISOString()).toBe('2025-01-14T21:30:00.000Z');
  });

  it('returns null beyond the lookback, and is fast', () => {
    const t0 = performance.now();
    expect(previousFireTime('0 0 1 1 *', 'UTC', new Date('2025-06-01T00:00:00Z'))).toBeNull();
    expect(previousFireTime('0 3 * * 0', 'Europe/Paris', new Date('2025-06-01T00:00:00Z'))).not.toBeNull();
    expect(performance.now() - t0).toBeLessThan(500);
    expect(previousFireTime('0 2 * * *', 'UTC', new Date('2025-03-12T10:00:00Z'), 3600_000)).toBeNull();
  });
});

describe('Scheduler', () => {
  it('skips (and logs) a tick of a kind that is still running', async () => {
    const d = deferred();
    const full = vi.fn(() => d.promise);
    const onRun = vi.fn();
    const { s, lines } = scheduler({ onRun, jobs: { full, incremental: async () => {}, reconfirm: async () => {} } });
    const first = s.trigger('full', 'cron');
    expect(s.running()).toEqual(['full']);
    expect(await s.trigger('full', 'cron')).toBe('skipped');
    expect(full).toHaveBeenCalledTimes(1);
    expect(lines.some((l) => l['msg'] === 'run skipped: previous run still in progress' && l['kind'] === 'full')).toBe(true);
    d.resolve();
    expect(await first).toBe('ok');
    expect(s.running()).toEqual([]);
    expect(await s.trigger('full', 'manual')).toBe('ok');
    expect(full).toHaveBeenCalledTimes(2);
    expect(onRun.mock.calls.map((c) => c[1])).toEqual(['skipped', 'ok', 'ok']);
  });

  it('keeps full and incremental exclusive by default, other kinds independent', async () => {
    const d = deferred();
    const { s, calls } = scheduler({
      jobs: { full: () => d.promise, incremental: async () => void calls.push('incremental'), reconfirm: async () => void calls.push('reconfirm') },
    });
    const full = s.trigger('full', 'cron');
    expect(await s.trigger('incremental', 'cron')).toBe('skipped');
    expect(await s.trigger('reconfirm', 'cron')).toBe('ok');
    d.resolve();
    await full;
    expect(await s.trigger('incremental', 'cron')).toBe('ok');
    expect(calls).toEqual(['reconfirm', 'incremental']);
  });

  it('a failing job is logged and reported, never thrown', async () => {
    const { s, lines } = scheduler({ jobs: { full: async () => Promise.reject(new Error('pull failed')), incremental: async () => {}, reconfirm: async () => {} } });
    expect(await s.trigger('full', 'cron')).toBe('failed');
    expect(lines.some((l) => l['msg'] === 'run failed')).toBe(true);
    expect(s.running()).toEqual([]);
  });

  it('catch-up runs kinds whose last scheduled time passed since their last success', async () => {
    const now = new Date('2025-03-12T10:17:30Z');
    const last: Record<ScheduleKind, Date | null> = {
      full: new Date('2025-03-11T02:05:00Z'), // before today's 02:00 -> missed
      incremental: new Date('2025-03-12T10:16:00Z'), // after 10:15 -> fine
      reconfirm: new Date('2025-03-10T06:30:00Z'), // after Monday 06:00 -> fine
    };
    const { s, calls } = scheduler({ now: () => now, lastSuccess: async (k) => last[k] });
    expect(await s.catchUp()).toEqual({ full: 'ok' });
    expect(calls).toEqual(['full']);
  });

  it('catch-up runs everything never run, but no incremental after a successful full', async () => {
    const { s, calls } = scheduler({ now: () => new Date('2025-03-12T10:17:30Z') });
    expect(await s.catchUp()).toEqual({ full: 'ok', reconfirm: 'ok' });
    expect(calls).toEqual(['full', 'reconfirm']);
  });

  it('catch-up runs incremental when the full one failed, and skips disabled kinds', async () => {
    const { s, calls } = scheduler({
      now: () => new Date('2025-03-12T10:17:30Z'),
      schedule: { full: '0 2 * * *', incremental: '*/5 * * * *', reconfirm: null, timezone: 'UTC' },
      jobs: {
        full: async () => Promise.reject(new Error('x')),
        incremental: async () => void calls.push('incremental'),
        reconfirm: async () => void calls.push('reconfirm'),
      },
    });
    expect(await s.catchUp()).toEqual({ full: 'failed', incremental: 'ok' });
    expect(calls).toEqual(['incremental']);
  });

  it('catch-up skips a kind whose last success cannot be read', async () => {
    const { s, calls } = scheduler({
      now: () => new Date('2025-03-12T10:17:30Z'),
      lastSuccess: async (k) => {
        if (k === 'full') throw new Error('store');
        return new Date('2025-03-12T10:17:00Z');
      },
    });
    expect(await s.catchUp()).toEqual({});
    expect(calls).toEqual([]);
  });

  it('fires from cron with real timers, skipping overlapping ticks, and stop() awaits the running job', async () => {
    const d = deferred();
    let starts = 0;
    let signal: AbortSignal | null = null;
    const { s, lines } = scheduler({
      schedule: { full: null, incremental: '* * * * * *', reconfirm: null, timezone: 'UTC' },
      jobs: {
        full: async () => {},
        incremental: (sig) => {
          starts += 1;
          signal = sig;
          return d.promise;
        },
        reconfirm: async () => {},
      },
    });
    s.start();
    await vi.waitFor(() => expect(lines.some((l) => l['msg'] === 'run skipped: previous run still in progress')).toBe(true), { timeout: 4000, interval: 50 });
    expect(starts).toBe(1);
    let stopped = false;
    const p = s.stop().then((r) => {
      stopped = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(stopped).toBe(false);
    expect(signal!.aborted).toBe(true);
    d.resolve();
    expect(await p).toEqual({ inFlight: [] });
    expect(await s.trigger('incremental', 'manual')).toBe('skipped');
  });

  it('stop() with a deadline reports kinds still running', async () => {
    const { s } = scheduler({ jobs: { full: () => new Promise(() => {}), incremental: async () => {}, reconfirm: async () => {} } });
    void s.trigger('full', 'manual');
    expect(await s.stop(30)).toEqual({ inFlight: ['full'] });
  });
});
