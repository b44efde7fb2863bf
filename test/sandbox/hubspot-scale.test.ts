/**
 * The HubSpot sandbox at scale: 200k contacts pulled through the SDK (timed, printed), the
 * search 10,000-result cap reached by paging, and incremental search on a large portal.
 * (Seeding 1M: hubspot-scale-1m.test.ts.)
 */
import { Client } from '@hubspot/api-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHubSpotSandbox } from '../../connectors/hubspot/sandbox/index.js';
import { hubspotPeople } from '../../connectors/hubspot/sandbox/people.js';

describe('HubSpot sandbox at scale', () => {
  const sb = createHubSpotSandbox({ tenSecondlyLimit: 1_000_000_000, dailyLimit: 1_000_000_000, searchPerSecond: 1_000_000 });
  let hs: Client;

  beforeAll(async () => {
    await sb.start();
    const t0 = performance.now();
    sb.seed(hubspotPeople(200_000));
    console.log(`[hubspot sandbox] seeded ${sb.state.count()} contacts in ${(performance.now() - t0).toFixed(0)} ms`);
    hs = new Client({ accessToken: sb.credentials.accessToken, basePath: sb.url });
  });
  afterAll(() => sb.stop());

  it('pulls every contact through basicApi.getPage (timed)', async () => {
    const t0 = performance.now();
    let n = 0;
    let pages = 0;
    let after: string | undefined;
    do {
      const page = await hs.crm.contacts.basicApi.getPage(100, after, ['email', 'hs_email_optout', 'hs_email_optout_1001', 'hs_email_optout_1002']);
      n += page.results.length;
      pages++;
      after = page.paging?.next?.after;
    } while (after);
    const ms = performance.now() - t0;
    console.log(`[hubspot sandbox] getPage pull: ${n} contacts, ${pages} pages in ${ms.toFixed(0)} ms (${((n / ms) * 1000).toFixed(0)} contacts/s)`);
    expect(n).toBe(sb.state.count());
  }, 60_000);

  it('search pages up to the 10,000-result cap, then answers 400', async () => {
    const req = (after: string) => ({
      filterGroups: [{ filters: [{ propertyName: 'lastmodifieddate', operator: 'GTE' as never, value: '0' }] }],
      sorts: ['lastmodifieddate'],
      properties: ['email'],
      limit: 200,
      after,
    });
    const t0 = performance.now();
    const first = await hs.crm.contacts.searchApi.doSearch(req('0'));
    console.log(`[hubspot sandbox] first search over ${first.total} contacts in ${(performance.now() - t0).toFixed(0)} ms`);
    expect(first.total).toBe(sb.state.count());
    const last = await hs.crm.contacts.searchApi.doSearch(req('9800'));
    expect(last.results).toHaveLength(200);
    expect(last.paging?.next?.after).toBe('10000');
    const e = (await hs.crm.contacts.searchApi.doSearch(req('10000')).catch((x: unknown) => x)) as { code: number; body: { category: string } };
    expect(e.code).toBe(400);
    expect(e.body.category).toBe('VALIDATION_ERROR');
  });

  it('incremental search by lastmodifieddate finds exactly the recent changes', async () => {
    const since = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    const inputs = Array.from({ length: 100 }, (_, i) => ({ id: String(1001 + i * 1777), properties: { firstname: `Changed${i}` } }));
    await hs.crm.contacts.batchApi.update({ inputs });
    const t0 = performance.now();
    const res = await hs.crm.contacts.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: 'lastmodifieddate', operator: 'GT' as never, value: String(since) }] }],
      sorts: [JSON.stringify({ propertyName: 'lastmodifieddate', direction: 'ASCENDING' })],
      properties: ['firstname'],
      limit: 200,
      after: '0',
    });
    console.log(`[hubspot sandbox] incremental search in ${(performance.now() - t0).toFixed(0)} ms`);
    expect(res.total).toBe(100);
    expect(new Set(res.results.map((r) => r.id))).toEqual(new Set(inputs.map((i) => i.id)));
  });
});
