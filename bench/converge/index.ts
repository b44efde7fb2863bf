/**
 * bench/converge (issues #4, #5): the four platform sandboxes seeded with N people who disagree
 * (default 50,000), one full reconcile through the real connectors (pull -> decide -> plan ->
 * apply), then a fresh full pull whose plan must be empty, and a check that every platform's
 * state agrees with the canonical decisions: everyone whose (email, *) is denied is opted out
 * in every platform holding them (SendGrid: globally unsubscribed).
 *   npm run bench -- converge [--people 50000] [--seed 7]
 * Exits non-zero when it does not converge.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRuntime } from '../../src/cli/runtime.js';
import { applyAll } from '../../src/engine/apply.js';
import { planReport } from '../../src/engine/plan-report.js';
import { pullAll } from '../../src/engine/pull.js';
import { reconcile } from '../../src/engine/reconcile.js';
import { optOutView } from '../../src/demo/observe.js';
import { PLATFORMS, startSandboxes } from '../../src/demo/sandboxes.js';
import { generatePeople } from '../../src/sandbox/seed.js';
import { mustNormalizeEmail } from '../../src/model/email.js';

const NOW = '2026-11-01T00:00:00Z';

export async function benchConverge(opts: { people: number; seed: number }): Promise<boolean> {
  const set = await startSandboxes({ people: opts.people, seed: opts.seed, seedNow: NOW, hubspot: { tenSecondlyLimit: 1_000_000, dailyLimit: 100_000_000 } });
  const dir = mkdtempSync(join(tmpdir(), 'consentd-converge-'));
  try {
    const config = join(dir, 'consentd.yaml');
    writeFileSync(config, set.configYaml({ storePath: join(dir, 'consentd.db'), port: 0, logLevel: 'warn', schedule: 'none' }));
    const rt = openRuntime({ config });
    const t0 = performance.now();
    await pullAll(rt.engine, rt.connectors, { full: true });
    const rec = await reconcile(rt.engine, 'normal');
    const applied = await applyAll(rt.engine, rt.connectors, { until: 'drained', maxWaitMs: 120_000 });
    const applyS = (performance.now() - t0) / 1000;
    await pullAll(rt.engine, rt.connectors, { full: true });
    const leftovers: string[] = [];
    const second = await planReport(rt.engine, (c) => {
      if (leftovers.length < 8) leftovers.push(`${c.connectorId} ${c.recordId} ${c.subject} ${c.op} ${c.purpose} ${String(c.target)} ${String(c.rule)}`);
    });

    // The platforms agree with the canonical state: every (email, *) denial is visible everywhere.
    let denied = 0;
    let disagreements = 0;
    const examples: string[] = [];
    for (const person of generatePeople(opts.people, opts.seed, { now: NOW })) {
      const subject = mustNormalizeEmail(person.email);
      const decision = await rt.store.decision(subject);
      const all = decision?.permissions.find((p) => p.channel === 'email' && p.purpose === '*');
      if (decision === null || all?.state !== 'denied') continue;
      denied++;
      for (const platform of PLATFORMS) {
        const view = optOutView(set, platform, subject);
        if (view === 'not_opted_out') {
          disagreements++;
          if (examples.length < 5) examples.push(`${platform}: ${subject}`);
        }
      }
    }
    await rt.close();
    let ok = 0;
    let dead = 0;
    for (const s of applied.values()) {
      ok += s.ok;
      dead += s.dead;
    }
    const figures = {
      people: opts.people,
      corrections_planned: rec.changes,
      applied: ok,
      dead_letters: dead,
      first_reconcile_s: Math.round(applyS * 10) / 10,
      second_plan_changes: second.changes,
      denied_all_email: denied,
      platform_disagreements: disagreements,
    };
    console.log(`\nconverge, ${opts.people} people across four sandboxes:`);
    console.table(figures);
    if (second.changes > 0) console.log('second plan by system:', JSON.stringify(second.bySystem), '\n ', leftovers.join('\n  '));
    if (examples.length > 0) console.log('examples:', examples.join('; '));
    return second.changes === 0 && disagreements === 0 && dead === 0;
  } finally {
    await set.stop();
    if (process.env['CONVERGE_KEEP'] === '1') console.log('kept', dir);
    else rmSync(dir, { recursive: true, force: true });
  }
}
