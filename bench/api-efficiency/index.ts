/**
 * bench/api-efficiency: API calls spent on N corrections, against the minimum the platforms'
 * batch maxima allow (ceil(changes / batch max) per platform). A naive one-call-per-record sync
 * would spend N. The whole engine runs (opt-outs recorded -> reconcile -> outbox -> push), and
 * only the calls made while applying are counted, from each sandbox's own call counter.
 *   npm run bench -- api-efficiency [--people 10000]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRuntime } from '../../src/cli/runtime.js';
import { applyAll } from '../../src/engine/apply.js';
import { pullAll } from '../../src/engine/pull.js';
import { reconcile } from '../../src/engine/reconcile.js';
import { optOut } from '../../src/engine/statements.js';
import { startSandboxes } from '../../src/demo/sandboxes.js';
import { generatePeople } from '../../src/sandbox/seed.js';

/** Changes one call carries, per platform, for an opt-out of all email. */
const BATCH_MAX: Record<string, number> = { salesforce: 200, hubspot: 100, mailchimp: 500, sendgrid: 1000 };

export async function benchApiEfficiency(opts: { people: number; seed: number }): Promise<void> {
  // Clean people (no prior opt-outs, bounces or erasures) present everywhere, so each opt-out
  // is a correction in every platform.
  const seedRates = {
    presence: { salesforce: 1, hubspot: 1, mailchimp: 1, sendgrid: 1 },
    optOutOne: 0, optOutTwo: 0, purposeOptOut: 0, hardBounce: 0, complaint: 0, erasure: 0, duplicate: 0, caseVariant: 0,
  };
  const set = await startSandboxes({ people: opts.people, seed: opts.seed, seedNow: '2026-11-01T00:00:00Z', seedRates, hubspot: { tenSecondlyLimit: 1_000_000, dailyLimit: 100_000_000 } });
  const dir = mkdtempSync(join(tmpdir(), 'consentd-apieff-'));
  try {
    const config = join(dir, 'consentd.yaml');
    writeFileSync(config, set.configYaml({ storePath: join(dir, 'consentd.db'), port: 0, logLevel: 'warn', schedule: 'none' }));
    const rt = openRuntime({ config });
    await pullAll(rt.engine, rt.connectors, { full: true });
    await reconcile(rt.engine, 'normal');
    await applyAll(rt.engine, rt.connectors, { until: 'drained', maxWaitMs: 0 }); // settle the seed's own disagreements first
    const people = [...generatePeople(opts.people, opts.seed, { now: '2026-11-01T00:00:00Z', rates: seedRates })];
    // Each opt-out is decided at once (the instant path) and its corrections queued.
    const byConnector: Record<string, number> = {};
    for (const p of people) {
      const r = await optOut(rt.engine, p.email, { channel: 'email', purpose: '*' }, { evidence: 'bench' });
      for (const [id, n] of Object.entries(r.reconcile.byConnector)) byConnector[id] = (byConnector[id] ?? 0) + n;
    }
    const sandboxes = { salesforce: set.salesforce, hubspot: set.hubspot, mailchimp: set.mailchimp, sendgrid: set.sendgrid };
    for (const sb of Object.values(sandboxes)) sb.calls.reset();
    const applied = await applyAll(rt.engine, rt.connectors, { until: 'drained', maxWaitMs: 60_000 });
    const rows: Record<string, Record<string, number | string>> = {};
    for (const [id, sb] of Object.entries(sandboxes)) {
      const changes = byConnector[id] ?? 0;
      const max = BATCH_MAX[id] ?? 1;
      const minimum = Math.ceil(changes / max);
      const calls = sb.calls.total;
      rows[id] = { corrections: changes, applied: applied.get(id)?.ok ?? 0, api_calls: calls, minimum, ratio: minimum === 0 ? '-' : (calls / minimum).toFixed(3), naive: changes };
    }
    await rt.close();
    console.log(`\napi-efficiency, ${opts.people} people opting out of all email:`);
    console.table(rows);
  } finally {
    await set.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
