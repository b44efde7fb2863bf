/** Seeding 1M HubSpot contacts (timed, printed) and building the lastmodifieddate index. */
import { Client } from '@hubspot/api-client';
import { describe, expect, it } from 'vitest';
import { createHubSpotSandbox } from '../../connectors/hubspot/sandbox/index.js';
import { hubspotPeople } from '../../connectors/hubspot/sandbox/people.js';

describe('HubSpot sandbox with 1M contacts', () => {
  it('seeds 1M contacts (timed), then pages and searches fast', async () => {
    const big = createHubSpotSandbox({ tenSecondlyLimit: 1_000_000, searchPerSecond: 1000 });
    const heap0 = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    big.seed(hubspotPeople(1_000_000, { seed: 2 }));
    const seedMs = performance.now() - t0;
    const t1 = performance.now();
    let n = 0;
    big.state.raw.scanByLastModified(Date.parse('2025-05-25T00:00:00Z'), Infinity, false, () => {
      n++;
      return true;
    });
    const heapMb = (process.memoryUsage().heapUsed - heap0) / 1e6;
    console.log(`[hubspot sandbox] seeded ${big.state.count()} contacts in ${seedMs.toFixed(0)} ms; index build + scan (${n}) ${(performance.now() - t1).toFixed(0)} ms; heap +${heapMb.toFixed(0)} MB`);
    expect(big.state.count()).toBe(1_020_000);
    expect(n).toBeGreaterThan(50_000);

    await big.start();
    try {
      const hs = new Client({ accessToken: big.credentials.accessToken, basePath: big.url });
      let t = performance.now();
      const page = await hs.crm.contacts.basicApi.getPage(100, '900000', ['email', 'hs_email_optout']);
      const pageMs = performance.now() - t;
      expect(page.results).toHaveLength(100);
      t = performance.now();
      const recent = await hs.crm.contacts.searchApi.doSearch({
        filterGroups: [{ filters: [{ propertyName: 'lastmodifieddate', operator: 'GTE' as never, value: String(Date.parse('2025-05-31T00:00:00Z')) }] }],
        sorts: ['lastmodifieddate'],
        properties: ['email'],
        limit: 200,
        after: '0',
      });
      const searchMs = performance.now() - t;
      t = performance.now();
      await hs.crm.contacts.searchApi.doSearch({
        filterGroups: [{ filters: [{ propertyName: 'lastmodifieddate', operator: 'GTE' as never, value: String(Date.parse('2025-05-31T00:00:00Z')) }] }],
        sorts: ['lastmodifieddate'],
        properties: ['email'],
        limit: 200,
        after: '200',
      });
      console.log(`[hubspot sandbox] 1M: getPage deep in ${pageMs.toFixed(0)} ms; search (total ${recent.total}) ${searchMs.toFixed(0)} ms, next page (cached) ${(performance.now() - t).toFixed(0)} ms`);
      expect(recent.total).toBeGreaterThan(5000);
    } finally {
      await big.stop();
    }
  }, 60_000);
});
