/**
 * bench/sandbox: each platform sandbox seeded with N generated people (default 1M), then a
 * timed read of `--records` records through the client a connector uses (jsforce,
 * @hubspot/api-client, axios). Reports seed time, heap growth and records/s (median of runs).
 *   npm run bench -- sandbox --people 1000000 [--records 200000] [--runs 3]
 */
import { Client as HubSpotClient } from '@hubspot/api-client';
import axios from 'axios';
import jsforce from 'jsforce';
import { createHubSpotSandbox } from '../../connectors/hubspot/sandbox/index.js';
import { createMailchimpSandbox, DEFAULT_LISTS } from '../../connectors/mailchimp/sandbox/index.js';
import { createSalesforceSandbox } from '../../connectors/salesforce/sandbox/index.js';
import { createSendGridSandbox } from '../../connectors/sendgrid/sandbox/index.js';
import { generatePeople } from '../../src/sandbox/seed.js';
import { median } from '../stats.js';

interface Platform {
  name: string;
  /** Seeds, starts, and returns a reader of up to `records` records and a stop(). */
  open(people: number): Promise<{ seedMs: number; read(records: number): Promise<number>; stop(): Promise<void> }>;
}

const NOW = '2026-11-01T00:00:00Z';
const seedOf = (people: number) => generatePeople(people, 42, { now: NOW });

async function timed<T>(fn: () => T | Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await fn();
  return [v, performance.now() - t];
}

const platforms: Platform[] = [
  {
    name: 'salesforce',
    async open(people) {
      const sb = createSalesforceSandbox({ dailyApiLimit: 10_000_000 });
      const [, seedMs] = await timed(() => sb.seed(seedOf(people)));
      await sb.start();
      const conn = new jsforce.Connection({ loginUrl: sb.url, version: '59.0' });
      await conn.login(sb.credentials.username, sb.credentials.password);
      return {
        seedMs,
        async read(records) {
          let n = 0;
          let res = await conn.query<{ Id: string }>('SELECT Id, Email, HasOptedOutOfEmail, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id');
          n += res.records.length;
          while (n < records && !res.done && res.nextRecordsUrl) {
            res = await conn.queryMore<{ Id: string }>(res.nextRecordsUrl);
            n += res.records.length;
          }
          return n;
        },
        stop: () => sb.stop(),
      };
    },
  },
  {
    name: 'hubspot',
    async open(people) {
      const sb = createHubSpotSandbox({ tenSecondlyLimit: 10_000_000, dailyLimit: 100_000_000 });
      const [, seedMs] = await timed(() => sb.seed(seedOf(people)));
      await sb.start();
      const hs = new HubSpotClient({ accessToken: sb.credentials.accessToken, basePath: sb.url });
      return {
        seedMs,
        async read(records) {
          let n = 0;
          let after: string | undefined;
          while (n < records) {
            const page = await hs.crm.contacts.basicApi.getPage(100, after, ['email', 'hs_email_optout', 'lastmodifieddate']);
            n += page.results.length;
            after = page.paging?.next?.after;
            if (!after) break;
          }
          return n;
        },
        stop: () => sb.stop(),
      };
    },
  },
  {
    name: 'mailchimp',
    async open(people) {
      const sb = createMailchimpSandbox();
      const [, seedMs] = await timed(() => sb.seed(seedOf(people)));
      await sb.start();
      const listId = DEFAULT_LISTS[0]?.id ?? '';
      const http = axios.create({ baseURL: sb.url, auth: { username: 'consentd', password: sb.credentials.apiKey } });
      return {
        seedMs,
        async read(records) {
          let n = 0;
          for (let offset = 0; n < records; offset += 1000) {
            const r = await http.get<{ members: unknown[] }>(`/lists/${listId}/members`, { params: { count: 1000, offset } });
            n += r.data.members.length;
            if (r.data.members.length < 1000) break;
          }
          return n;
        },
        stop: () => sb.stop(),
      };
    },
  },
  {
    name: 'sendgrid',
    async open(people) {
      const sb = createSendGridSandbox({ rateLimit: { limit: 10_000_000, windowMs: 60_000 } });
      const [, seedMs] = await timed(() => sb.seed(seedOf(people)));
      await sb.start();
      const http = axios.create({ baseURL: sb.url, headers: { authorization: `Bearer ${sb.credentials.apiKey}` } });
      return {
        seedMs,
        // SendGrid holds suppressions, not contacts: read the global unsubscribes list.
        async read(records) {
          let n = 0;
          for (let offset = 0; n < records; offset += 500) {
            const r = await http.get<unknown[]>('/suppression/unsubscribes', { params: { limit: 500, offset, start_time: 0 } });
            n += r.data.length;
            if (r.data.length < 500) break;
          }
          return n;
        },
        stop: () => sb.stop(),
      };
    },
  },
];

export async function benchSandbox(opts: { people: number; records: number; runs: number }): Promise<void> {
  const rows: Record<string, Record<string, number>> = {};
  for (const p of platforms) {
    const seeds: number[] = [];
    const rates: number[] = [];
    const heaps: number[] = [];
    let read = 0;
    for (let run = 0; run < opts.runs; run++) {
      const heap0 = process.memoryUsage().heapUsed;
      const sb = await p.open(opts.people);
      heaps.push((process.memoryUsage().heapUsed - heap0) / 1e6);
      const [n, ms] = await timed(() => sb.read(opts.records));
      read = n;
      seeds.push(sb.seedMs);
      rates.push(n / (ms / 1000));
      await sb.stop();
      globalThis.gc?.();
    }
    rows[p.name] = {
      seed_s: Math.round(median(seeds) / 100) / 10,
      heap_mb: Math.round(median(heaps)),
      records_read: read,
      records_per_s: Math.round(median(rates)),
    };
    console.log(p.name, JSON.stringify(rows[p.name]));
  }
  console.log(`\nsandboxes, ${opts.people} people, median of ${opts.runs}:`);
  console.table(rows);
}
