import { describe, expect, it, vi } from 'vitest';
import { createMetrics, storeQueueCollector } from '../../src/daemon/metrics.js';
import type { StoreStats } from '../../src/store/store.js';

describe('createMetrics', () => {
  it('uses a private registry per call', async () => {
    const a = createMetrics({ defaultMetrics: false });
    const b = createMetrics({ defaultMetrics: false });
    a.pushes('x', 'ok');
    expect(await a.scrape()).toContain('consentd_pushes_total{connector="x",result="ok"} 1');
    expect(await b.scrape()).not.toContain('connector="x"');
  });

  it('calls the queue collector once per scrape and replaces stale labels', async () => {
    const collector = vi
      .fn()
      .mockResolvedValueOnce({ outboxDepth: { a: 1, b: 2 }, oldestPendingAgeSeconds: { '*': 5 }, deadLetters: 0 })
      .mockResolvedValueOnce({ outboxDepth: { a: 4 }, oldestPendingAgeSeconds: { '*': 1 }, deadLetters: 3 });
    const m = createMetrics({ defaultMetrics: false, collector });
    const first = await m.scrape();
    expect(collector).toHaveBeenCalledTimes(1);
    expect(first).toContain('consentd_outbox_depth{connector="b"} 2');
    await new Promise((r) => setImmediate(r));
    const second = await m.scrape();
    expect(collector).toHaveBeenCalledTimes(2);
    expect(second).toContain('consentd_outbox_depth{connector="a"} 4');
    expect(second).not.toContain('consentd_outbox_depth{connector="b"}');
    expect(second).toContain('consentd_dead_letters 3');
  });

  it('a failing collector keeps the scrape alive and is counted', async () => {
    const m = createMetrics({ defaultMetrics: false, collector: () => Promise.reject(new Error('store closed')) });
    await expect(m.scrape()).resolves.toContain('consentd_outbox_depth');
    await new Promise((r) => setImmediate(r));
    // the counter is serialized alongside the gauges: the next scrape shows the failure
    expect(await m.scrape()).toContain('consentd_metrics_collect_errors_total 1');
  });

  it('observes propagation, run durations and last success', async () => {
    const m = createMetrics({ defaultMetrics: false });
    m.propagation('received', 0.2);
    m.propagation('stated', -5); // clock skew: counted as 0
    m.run('incremental', 'ok', 2500, new Date('2025-01-01T00:00:00Z'));
    m.run('incremental', 'failed', 100);
    const text = await m.scrape();
    expect(text).toContain('consentd_propagation_seconds_bucket{le="0.25",from="received"} 1');
    expect(text).toContain('consentd_propagation_seconds_bucket{le="0.01",from="stated"} 1');
    expect(text).toContain('consentd_run_last_success_timestamp_seconds{kind="incremental"} 1735689600');
    expect(text).toContain('consentd_runs_total{kind="incremental",status="failed"} 1');
  });
});

describe('storeQueueCollector', () => {
  it('reads depth, oldest age and dead letters from the store', async () => {
    const stats = { oldestPendingAt: '2025-01-01T00:00:00.000Z', deadLetters: 2 } as StoreStats;
    const c = storeQueueCollector({ outboxDepth: async () => ({ sf: 3 }), stats: async () => stats }, () => Date.parse('2025-01-01T00:01:00Z'), async () => 7);
    expect(await c()).toEqual({ outboxDepth: { sf: 3 }, oldestPendingAgeSeconds: { '*': 60 }, deadLetters: 2, staleGrants: 7 });
  });
});
