import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutboxWorker, OutboxWorkers } from '../../src/daemon/outbox-worker.js';
import type { DrainOnceFn, DrainResult } from '../../src/daemon/outbox-worker.js';

const logger = pino({ level: 'silent' });

/** A fake apply step with a queue of `pending` items it claims in batches. */
function fakeDrain(batch = 2) {
  const state = { pending: 0, nextDueAt: null as number | null, calls: 0, claimedAt: [] as number[] };
  const fn = vi.fn<DrainOnceFn>(async (): Promise<DrainResult> => {
    state.calls += 1;
    const claimed = Math.min(batch, state.pending);
    state.pending -= claimed;
    if (claimed > 0) state.claimedAt.push(Date.now());
    return { claimed, nextDueAt: state.nextDueAt };
  });
  return { fn, state };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('OutboxWorker', () => {
  it('drains while it claims, then idles until the poll', async () => {
    const { fn, state } = fakeDrain(2);
    state.pending = 5;
    const w = new OutboxWorker({ connectorId: 'c', drainOnce: fn, logger, pollMs: 5000, lingerMs: 50 });
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    // 2 + 2 + 1, then one empty claim
    expect(state.calls).toBe(4);
    expect(state.pending).toBe(0);
    expect(w.state).toBe('idle');
    await vi.advanceTimersByTimeAsync(4999);
    expect(state.calls).toBe(4);
    await vi.advanceTimersByTimeAsync(1);
    expect(state.calls).toBe(5);
    await w.stop(1000);
    expect(w.state).toBe('stopped');
  });

  it('notify() drains after the linger, batching notifies that arrive together', async () => {
    const { fn, state } = fakeDrain(100);
    const w = new OutboxWorker({ connectorId: 'c', drainOnce: fn, logger, pollMs: 60_000, lingerMs: 100 });
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(state.calls).toBe(1);

    state.pending = 1;
    w.notify();
    await vi.advanceTimersByTimeAsync(60);
    state.pending += 1;
    w.notify(); // does not extend the linger
    await vi.advanceTimersByTimeAsync(39);
    expect(state.calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    // one batch with both items, then an empty claim
    expect(state.calls).toBe(3);
    expect(state.claimedAt).toHaveLength(1);
    expect(state.pending).toBe(0);
    await w.stop(1000);
  });

  it('a notify during a drain is not lost', async () => {
    let release!: (r: DrainResult) => void;
    let calls = 0;
    const fn = vi.fn<DrainOnceFn>(() => {
      calls += 1;
      if (calls === 1) return new Promise<DrainResult>((r) => (release = r));
      return Promise.resolve({ claimed: 0, nextDueAt: null });
    });
    const w = new OutboxWorker({ connectorId: 'c', drainOnce: fn, logger, pollMs: 60_000, lingerMs: 20 });
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    w.notify(); // arrives while the first (empty) claim is in flight
    release({ claimed: 0, nextDueAt: null });
    await vi.advanceTimersByTimeAsync(19);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
    await w.stop(1000);
  });

  it('wakes up when the next retry is due', async () => {
    const { fn, state } = fakeDrain();
    state.nextDueAt = Date.now() + 1500;
    const w = new OutboxWorker({ connectorId: 'c', drainOnce: fn, logger, pollMs: 60_000 });
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(state.calls).toBe(1);
    state.nextDueAt = null;
    await vi.advanceTimersByTimeAsync(1499);
    expect(state.calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(state.calls).toBe(2);
    await w.stop(1000);
  });

  it('backs off on errors (capped, doubling) and recovers without crashing', async () => {
    let calls = 0;
    const at: number[] = [];
    const fn = vi.fn<DrainOnceFn>(async () => {
      calls += 1;
      at.push(Date.now());
      if (calls <= 5) throw new Error('store unavailable');
      return { claimed: 0, nextDueAt: null };
    });
    const lines: string[] = [];
    const log = pino({ level: 'error' }, { write: (l: string) => void lines.push(l) });
    const w = new OutboxWorker({ connectorId: 'c', drainOnce: fn, logger: log, pollMs: 60_000, errorBaseDelayMs: 100, errorMaxDelayMs: 400 });
    w.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toBe(6);
    const gaps = at.slice(1).map((t, i) => t - (at[i] ?? 0));
    expect(gaps).toEqual([100, 200, 400, 400, 400]);
    expect(lines).toHaveLength(5);
    expect(w.state).toBe('idle');
    await w.stop(1000);
  });

  it('notify does not interrupt an error backoff', async () => {
    let calls = 0;
    const fn = vi.fn<DrainOnceFn>(async () => {
      calls += 1;
      if (calls === 1) throw new Error('x');
      return { claimed: 0, nextDueAt: null };
    });
    const w = new OutboxWorker({ connectorId: 'c', drainOnce: fn, logger, pollMs: 60_000, lingerMs: 10, errorBaseDelayMs: 1000 });
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    w.notify();
    await vi.advanceTimersByTimeAsync(500);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(500);
    expect(calls).toBe(2);
    await w.stop(100);
  });

  it('stop() waits for the in-flight drain and claims nothing more', async () => {
    let release!: () => void;
    let calls = 0;
    const fn = vi.fn<DrainOnceFn>(() => {
      calls += 1;
      return new Promise<DrainResult>((r) => (release = () => r({ claimed: 3, nextDueAt: null })));
    });
    const w = new OutboxWorker({ connectorId: 'c', drainOnce: fn, logger });
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    let stopped: { drained: boolean } | null = null;
    const p = w.stop(5000).then((r) => (stopped = r));
    await vi.advanceTimersByTimeAsync(1000);
    expect(stopped).toBeNull();
    expect(w.state).toBe('stopping');
    release();
    await vi.advanceTimersByTimeAsync(0);
    await p;
    expect(stopped).toEqual({ drained: true });
    expect(calls).toBe(1); // claimed 3, but stopping: no further claim
    expect(w.state).toBe('stopped');
  });

  it('stop() gives up at the deadline and aborts the drain signal', async () => {
    let signal: AbortSignal | null = null;
    const fn = vi.fn<DrainOnceFn>((s) => {
      signal = s;
      return new Promise<DrainResult>(() => {});
    });
    const w = new OutboxWorker({ connectorId: 'c', drainOnce: fn, logger });
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    const p = w.stop(2000);
    await vi.advanceTimersByTimeAsync(2000);
    expect(await p).toEqual({ drained: false });
    expect(signal!.aborted).toBe(true);
  });

  it('stop() wakes an idle worker at once', async () => {
    const { fn } = fakeDrain();
    const w = new OutboxWorker({ connectorId: 'c', drainOnce: fn, logger, pollMs: 60_000 });
    w.start();
    await vi.advanceTimersByTimeAsync(0);
    const p = w.stop(10_000);
    await vi.advanceTimersByTimeAsync(0);
    expect(await p).toEqual({ drained: true });
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('stop() of a worker never started resolves', async () => {
    const w = new OutboxWorker({ connectorId: 'c', drainOnce: fakeDrain().fn, logger });
    expect(await w.stop(10)).toEqual({ drained: true });
  });
});

describe('OutboxWorkers', () => {
  it('routes notify by connector and reports workers still in flight at stop', async () => {
    const a = fakeDrain(10);
    const hang = vi.fn<DrainOnceFn>(() => new Promise<DrainResult>(() => {}));
    const wa = new OutboxWorker({ connectorId: 'a', drainOnce: a.fn, logger, pollMs: 60_000, lingerMs: 5 });
    const wb = new OutboxWorker({ connectorId: 'b', drainOnce: hang, logger });
    const all = new OutboxWorkers([wa, wb]);
    all.startAll();
    await vi.advanceTimersByTimeAsync(0);
    a.state.pending = 1;
    all.notify('a');
    all.notify('unknown');
    await vi.advanceTimersByTimeAsync(5);
    expect(a.state.pending).toBe(0);
    const p = all.stopAll(100);
    await vi.advanceTimersByTimeAsync(100);
    expect(await p).toEqual({ inFlight: ['b'] });
  });
});
