import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { daemonShutdownSteps, installShutdown } from '../../src/daemon/shutdown.js';
import type { ShutdownStep, SignalSource } from '../../src/daemon/shutdown.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { logger, lines };
}

const signals = (): SignalSource & EventEmitter => new EventEmitter() as SignalSource & EventEmitter;

afterEach(() => {
  vi.useRealTimers();
});

describe('installShutdown', () => {
  it('runs the steps in order on a signal, then exits 0', async () => {
    const order: string[] = [];
    const steps: ShutdownStep[] = ['a', 'b', 'c'].map((name) => ({ name, run: async () => void order.push(name) }));
    const exit = vi.fn();
    const src = signals();
    const { logger } = capture();
    const h = installShutdown({ steps, deadlineMs: 1000, logger, exit, signalSource: src });
    src.emit('SIGTERM', 'SIGTERM');
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(0));
    expect(order).toEqual(['a', 'b', 'c']);
    expect(h.inProgress).toBe(true);
    h.uninstall();
    expect(src.listenerCount('SIGTERM')).toBe(0);
    expect(src.listenerCount('SIGINT')).toBe(0);
  });

  it('shutdown() without a signal: idempotent, continues past a failing step, reports it, does not exit', async () => {
    const order: string[] = [];
    const exit = vi.fn();
    const { logger, lines } = capture();
    const h = installShutdown({
      steps: [
        { name: 'a', run: () => void order.push('a') },
        {
          name: 'b',
          run: () => {
            order.push('b');
            throw new Error('b broke');
          },
        },
        { name: 'store', run: async () => void order.push('store') },
      ],
      deadlineMs: 1000,
      logger,
      exit,
      signalSource: signals(),
    });
    const p1 = h.shutdown('test');
    const p2 = h.shutdown('again');
    expect(p1).toBe(p2);
    const r = await p1;
    expect(r.ok).toBe(false);
    expect(r.failed).toEqual(['b']);
    expect(order).toEqual(['a', 'b', 'store']);
    expect(exit).not.toHaveBeenCalled();
    expect(lines.some((l) => l['msg'] === 'shutdown step failed' && l['step'] === 'b')).toBe(true);
  });

  it('exits 1 when a step failed during a signal shutdown', async () => {
    const exit = vi.fn();
    const src = signals();
    installShutdown({ steps: [{ name: 'x', run: () => Promise.reject(new Error('no')) }], deadlineMs: 1000, logger: capture().logger, exit, signalSource: src });
    src.emit('SIGINT', 'SIGINT');
    await vi.waitFor(() => expect(exit).toHaveBeenCalledWith(1));
  });

  it('exits 1 at the deadline, logging the step in flight and those not run', async () => {
    vi.useFakeTimers();
    const exit = vi.fn();
    const { logger, lines } = capture();
    const h = installShutdown({
      steps: [
        { name: 'http', run: async () => {} },
        { name: 'workers', run: () => new Promise(() => {}) },
        { name: 'store', run: async () => {} },
      ],
      deadlineMs: 3000,
      logger,
      exit,
      signalSource: signals(),
    });
    void h.shutdown();
    await vi.advanceTimersByTimeAsync(2999);
    expect(exit).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(exit).toHaveBeenCalledWith(1);
    expect(lines.find((l) => l['msg'] === 'shutdown deadline exceeded; exiting')).toMatchObject({ inFlight: 'workers', notRun: ['store'] });
  });

  it('a second signal exits 1 at once', async () => {
    const exit = vi.fn();
    const src = signals();
    const { logger, lines } = capture();
    installShutdown({ steps: [{ name: 'slow', run: () => new Promise(() => {}) }], deadlineMs: 60_000, logger, exit, signalSource: src });
    src.emit('SIGTERM', 'SIGTERM');
    await new Promise((r) => setTimeout(r, 5));
    expect(exit).not.toHaveBeenCalled();
    src.emit('SIGINT', 'SIGINT');
    expect(exit).toHaveBeenCalledWith(1);
    expect(lines.find((l) => l['msg'] === 'second signal during shutdown; exiting now')).toMatchObject({ inFlight: 'slow' });
  });

  it('passes the remaining time to each step', async () => {
    const seen: number[] = [];
    const h = installShutdown({
      steps: [
        { name: 'a', run: (ms) => new Promise<void>((r) => setTimeout(() => (seen.push(ms), r()), 40)) },
        { name: 'b', run: (ms) => void seen.push(ms) },
      ],
      deadlineMs: 1000,
      logger: capture().logger,
      exit: vi.fn(),
      signalSource: signals(),
    });
    await h.shutdown();
    expect(seen[0]).toBeGreaterThan(950);
    expect(seen[1]).toBeLessThanOrEqual(965);
  });
});

describe('daemonShutdownSteps', () => {
  it('drains, closes HTTP, stops scheduler and workers, closes connectors, then the store', async () => {
    const order: string[] = [];
    let draining = false;
    const steps = daemonShutdownSteps({
      setDraining: () => {
        draining = true;
        order.push('drain');
      },
      http: { close: async () => void order.push(`http(draining=${draining})`) },
      scheduler: { stop: async (ms) => (order.push(`scheduler(${ms})`), { inFlight: [] }) },
      workers: { stopAll: async (ms) => (order.push(`workers(${ms})`), { inFlight: [] }) },
      connectors: [{ id: 'sf', close: async () => void order.push('connectors') }, { id: 'csv' }],
      store: { close: async () => void order.push('store') },
    });
    expect(steps.map((s) => s.name)).toEqual(['drain', 'http', 'scheduler', 'workers', 'connectors', 'store']);
    for (const s of steps) await s.run(10_000);
    expect(order).toEqual(['drain', 'http(draining=true)', 'scheduler(5000)', 'workers(9000)', 'connectors', 'store']);
  });

  it('reports work left in flight as a failed step but still closes the store', async () => {
    const closed = vi.fn(async () => {});
    const steps = daemonShutdownSteps({
      setDraining: () => {},
      workers: { stopAll: async () => ({ inFlight: ['hubspot'] }) },
      store: { close: closed },
    });
    const h = installShutdown({ steps, deadlineMs: 1000, logger: capture().logger, exit: vi.fn(), signalSource: signals() });
    const r = await h.shutdown();
    expect(r.failed).toEqual(['workers']);
    expect(closed).toHaveBeenCalled();
  });
});
