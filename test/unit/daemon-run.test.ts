import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { Connector } from '../../src/connectors/contract.js';
import { startDaemon } from '../../src/daemon/daemon.js';
import type { DaemonControls, DaemonEngineHooks } from '../../src/daemon/daemon.js';

function connector(id: string): Connector {
  return {
    id,
    kind: 'fake',
    limits: { batchSize: 10, requestsPerInterval: 10, intervalMs: 1000, concurrency: 1 },
    capabilities: { consent: [], suppression: [], pushGrants: false, erase: false, acceptsUnknownAddresses: false },
    // eslint-disable-next-line require-yield
    async *pull() {
      return;
    },
    push: async () => [],
    check: async () => ({ ok: true, details: [] }),
    webhook: {
      verify: async (req) => [{ id: req.rawBody.toString('utf8'), type: 't', occurredAt: null, payload: null }],
      toObservations: async () => ({ observations: [] }),
    },
    close: vi.fn(async () => {}),
  };
}

describe('startDaemon', () => {
  it('listens, catches up, wakes workers from intake, and shuts down in order', async () => {
    const order: string[] = [];
    let controls!: DaemonControls;
    const drained: string[] = [];
    const hooks = (c: DaemonControls): DaemonEngineHooks => {
      controls = c;
      return {
        recover: async () => void order.push('recover'),
        intake: async (id, events) => {
          c.notify('b'); // the instant reconcile enqueued a change for another connector
          return { accepted: events.length, duplicates: 0 };
        },
        drainOnce: async (id) => {
          drained.push(id);
          return { claimed: 0, nextDueAt: null };
        },
        jobs: { full: async () => void order.push('full'), incremental: async () => void order.push('incremental'), reconfirm: async () => {} },
        lastSuccess: async (k) => (k === 'full' ? null : new Date()),
        admin: {
          explain: async () => null,
          optOut: async () => {},
          grant: async () => {},
          erase: async () => {},
          listRuns: async () => [],
          listDeadLetters: async () => [],
          replayDeadLetter: async () => false,
        },
        readiness: async () => ({ ok: true, checks: {} }),
      };
    };
    const a = connector('a');
    const b = connector('b');
    const d = await startDaemon({
      config: {
        http: { host: '127.0.0.1', port: 0, adminTokens: [], bodyLimitBytes: 65536, publicUrl: null },
        schedule: { full: '0 2 * * *', incremental: null, reconfirm: null, timezone: 'UTC' },
        outbox: { lingerMs: 10 },
      },
      logger: pino({ level: 'silent' }),
      connectors: new Map([
        ['a', a],
        ['b', b],
      ]),
      hooks,
      store: { close: async () => void order.push('store') },
      handleSignals: false,
      workerPollMs: 60_000,
    });
    await d.catchUp;
    expect(order).toEqual(['recover', 'full']);
    expect(d.address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const health = await fetch(`${d.address}/healthz`);
    expect(health.status).toBe(200);
    await vi.waitFor(() => expect(drained.sort()).toEqual(['a', 'b']));
    const res = await fetch(`${d.address}/webhooks/a?token=x`, { method: 'POST', body: 'ev1', headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: 1, duplicates: 0 });
    await vi.waitFor(() => expect(drained.filter((x) => x === 'b')).toHaveLength(2));
    expect(drained.filter((x) => x === 'a')).toHaveLength(1);

    const metrics = await (await fetch(`${d.address}/metrics`)).text();
    expect(metrics).toContain('consentd_runs_total{kind="full",status="ok"} 1');

    expect(controls.isDraining()).toBe(false);
    const r = await d.shutdown('test');
    expect(r).toMatchObject({ ok: true, failed: [] });
    expect(controls.isDraining()).toBe(true);
    expect(order.at(-1)).toBe('store');
    expect(a.close).toHaveBeenCalled();
    await expect(fetch(`${d.address}/healthz`)).rejects.toThrow();
  });
});
