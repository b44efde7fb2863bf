/**
 * The measured part, in its own process so peak RSS is the pipeline's alone: pull every CSV
 * system, reconcile, apply the outbox until drained, then a second plan (must be empty).
 * Prints one JSON line of figures.
 */
import { openRuntime } from '../../src/cli/runtime.js';
import { pullAll } from '../../src/engine/pull.js';
import { reconcile } from '../../src/engine/reconcile.js';
import { applyAll } from '../../src/engine/apply.js';
import { planReport } from '../../src/engine/plan-report.js';

const configPath = process.argv[2];
if (!configPath) throw new Error('usage: pipeline.ts CONFIG');

const rt = openRuntime({ config: configPath });
const phases: Record<string, number> = {};
// The process's peak RSS as each phase ends (it only grows): says which phase set the peak.
const peakByPhase: Record<string, number> = {};
const peakRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);
const t0 = performance.now();
let t = t0;
const lap = (name: string) => {
  const now = performance.now();
  phases[name] = Math.round(now - t);
  peakByPhase[name.replace(/_ms$/, '')] = peakRssMb();
  t = now;
};

const pulled = await pullAll(rt.engine, rt.connectors, { full: true });
lap('pull_ms');
const rec = await reconcile(rt.engine, 'normal');
lap('reconcile_ms');
const applied = await applyAll(rt.engine, rt.connectors, { until: 'drained', maxWaitMs: 0 });
lap('apply_ms');
const total = Math.round(performance.now() - t0);
// Convergence check (not timed): a fresh pull of every system and a plan must find nothing to change.
await pullAll(rt.engine, rt.connectors, { full: true });
peakByPhase.check_pull = peakRssMb();
const second = await planReport(rt.engine);
peakByPhase.check_plan = peakRssMb();
await rt.close();

let rows = 0;
for (const s of pulled.values()) rows += s.observations;
let applyOk = 0;
for (const s of applied.values()) applyOk += s.ok;
console.log(
  JSON.stringify({
    total_ms: total,
    ...phases,
    observations: rows,
    subjects: rec.subjects,
    changes: rec.changes,
    applied: applyOk,
    rows_per_s: Math.round(rows / (total / 1000)),
    peak_rss_mb: peakRssMb(),
    peak_rss_mb_by_phase_end: peakByPhase,
    second_plan_changes: second.changes,
  }),
);
