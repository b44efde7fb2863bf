/**
 * Throughput of the Salesforce sandbox at scale, through jsforce: seed 200k people, pull every
 * Contact, then an incremental pull. Timings are printed for the lead, not asserted.
 */
import { Connection } from 'jsforce';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSalesforceSandbox } from '../../connectors/salesforce/sandbox/index.js';
import { generatePeople } from '../../src/sandbox/seed.js';

const VERSION = '59.0';

describe('Salesforce sandbox: scale', () => {
  const sb = createSalesforceSandbox({ dailyApiLimit: 1_000_000 });
  beforeAll(() => sb.start());
  afterAll(() => sb.stop());

  it('seeds 200k people and serves a full pull through jsforce', async () => {
    let t = performance.now();
    const counts = sb.seed(generatePeople(200_000, 11, { now: '2025-06-01T00:00:00Z' }));
    const seedMs = performance.now() - t;
    const conn = new Connection({ loginUrl: sb.url, version: VERSION });
    await conn.login(sb.credentials.username, sb.credentials.password);

    t = performance.now();
    let n = 0;
    const ids = new Set<string>();
    let last = '';
    await new Promise<void>((resolve, reject) => {
      conn
        .query<{ Id: string; SystemModstamp: string }>('SELECT Id, Email, HasOptedOutOfEmail, EmailBouncedReason, IndividualId, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id')
        .on('record', (r: { Id: string; SystemModstamp: string }) => {
          n++;
          ids.add(r.Id);
          if (r.SystemModstamp < last) reject(new Error('out of order'));
          last = r.SystemModstamp;
        })
        .on('end', () => resolve())
        .on('error', reject)
        .run({ autoFetch: true, maxFetch: 1e9 });
    });
    const pullMs = performance.now() - t;
    expect(n).toBe(counts.contacts);
    expect(ids.size).toBe(counts.contacts);

    // An incremental pull after 300 changes.
    const sample = await conn.query<{ Id: string }>('SELECT Id FROM Contact ORDER BY Id LIMIT 300');
    await conn.sobject('Contact').update(
      sample.records.map((r) => ({ Id: r.Id, HasOptedOutOfEmail: true })),
      { allowRecursive: true },
    );
    t = performance.now();
    const inc = await conn.query(`SELECT Id FROM Contact WHERE SystemModstamp > ${last.replace('+0000', 'Z')} ORDER BY SystemModstamp, Id`).execute({ autoFetch: true });
    const incMs = performance.now() - t;
    expect(inc.totalSize).toBe(300);

    const calls = sb.calls.snapshot();
    console.log(
      `[salesforce sandbox] seeded ${counts.people} people -> ${counts.contacts} Contacts, ${counts.leads} Leads, ${counts.individuals} Individuals, ` +
        `${counts.consents} consents in ${seedMs.toFixed(0)} ms; full pull of ${n} Contacts in ${pullMs.toFixed(0)} ms ` +
        `(${Math.round(n / (pullMs / 1000))} records/s, ${(calls[`GET /services/data/v${VERSION}/query/:locator 200`] ?? 0) + 1} calls); ` +
        `incremental pull of 300 changes in ${incMs.toFixed(0)} ms`,
    );
  });
});
