/**
 * bench/reconcile: N people across 4 CSV systems with realistic disagreement, the full
 * pipeline (pull -> store -> decide -> plan -> outbox -> apply) to an applied plan.
 *   npm run bench -- reconcile --people 100000 [--runs 3] [--seed 7] [--heap-mb 256] [--from-source]
 * Reports the median of the runs; each run starts from freshly generated files and an empty store.
 * The pipeline runs compiled (tsc, into a temp dir), as the container runs consentd: run from
 * source, tsx's loader thread and its compile caches add about 80 MB to the RSS (--from-source).
 * --heap-mb caps the pipeline process's V8 old space (--max-old-space-size), as Node sizes it
 * by itself under a container memory limit; without it V8 on a large machine lets garbage grow
 * to several times the live heap before collecting, which peak RSS then counts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from '../stats.js';
import { configYaml, generateSystems } from './generate.js';

export interface ReconcileFigures {
  total_ms: number;
  pull_ms: number;
  reconcile_ms: number;
  apply_ms: number;
  observations: number;
  subjects: number;
  changes: number;
  applied: number;
  rows_per_s: number;
  peak_rss_mb: number;
  /** Peak RSS as each phase (pull, reconcile, apply, the untimed check) ended. */
  peak_rss_mb_by_phase_end: Record<string, number>;
  second_plan_changes: number;
}


const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Compile the pipeline and what it runs (tsconfig.bench.json) into `outDir` (inside the repository,
 * so that its imports find node_modules); the path of its entry.
 */
function buildPipeline(outDir: string): string {
  const root = ROOT;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.bench.json'), '--outDir', outDir, '--sourceMap', 'false'], { stdio: 'inherit' });
  return join(outDir, 'bench', 'reconcile', 'pipeline.js');
}

export async function benchReconcile(opts: { people: number; runs: number; seed: number; heapMb?: number; fromSource?: boolean }): Promise<void> {
  const buildDir = opts.fromSource === true ? null : join(ROOT, 'node_modules', '.cache', 'consentd-bench-build');
  if (buildDir !== null) rmSync(buildDir, { recursive: true, force: true });
  const pipeline = buildDir === null ? fileURLToPath(new URL('./pipeline.ts', import.meta.url)) : buildPipeline(buildDir);
  const loader = buildDir === null ? ['--import', 'tsx'] : [];
  const results: ReconcileFigures[] = [];
  for (let run = 0; run < opts.runs; run++) {
    const dir = mkdtempSync(join(tmpdir(), 'consentd-bench-'));
    try {
      const rows = await generateSystems(dir, opts.people, opts.seed);
      writeFileSync(join(dir, 'bench.yaml'), configYaml(dir));
      const heap = opts.heapMb === undefined ? [] : [`--max-old-space-size=${opts.heapMb}`];
      const out = execFileSync(process.execPath, [...heap, ...loader, pipeline, join(dir, 'bench.yaml')], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 24,
      });
      const figures = JSON.parse(out.trim().split('\n').pop() ?? '{}') as ReconcileFigures;
      results.push(figures);
      console.log(`run ${run + 1}/${opts.runs}: ${JSON.stringify({ csv_rows: rows, ...figures })}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (buildDir !== null) rmSync(buildDir, { recursive: true, force: true });
  // One flat row per figure; the peak after each phase as peak_rss_mb_<phase>.
  const flat = results.map((r) => {
    const { peak_rss_mb_by_phase_end: byPhase, ...numbers } = r;
    return { ...numbers, ...Object.fromEntries(Object.entries(byPhase).map(([p, mb]) => [`peak_rss_mb_${p}`, mb])) } as Record<string, number>;
  });
  const keys = Object.keys(flat[0] ?? {});
  const med = Object.fromEntries(keys.map((k) => [k, Math.round(median(flat.map((r) => r[k] ?? Number.NaN)))]));
  console.log(`\nreconcile, ${opts.people} people${opts.heapMb === undefined ? '' : `, V8 old space ${opts.heapMb} MB`}${buildDir === null ? ', from source (tsx)' : ', compiled'}, median of ${opts.runs}:`);
  console.table(med);
}
