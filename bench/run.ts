/**
 * npm run bench -- [name] [--people N] [--runs R] [--seed S] [--rate R] [--duration S] [--records N] [--platforms a,b]
 *   [--echoes filtered|all] [--heap-mb M] [--from-source]
 * Benchmarks live in bench/<name>/; figures are written down in bench/README.md.
 * These machines are small (2 cores) and noisy: every bench reports medians.
 */
import { parseArgs } from 'node:util';
import { runPropagateBench } from './propagate/index.js';
import { benchApiEfficiency } from './api-efficiency/index.js';
import { benchConverge } from './converge/index.js';
import { benchReconcile } from './reconcile/index.js';
import { benchSandbox } from './sandbox/index.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    people: { type: 'string' },
    runs: { type: 'string', default: '3' },
    seed: { type: 'string', default: '7' },
    rate: { type: 'string', default: '200' },
    duration: { type: 'string', default: '20' },
    records: { type: 'string', default: '200000' },
    platforms: { type: 'string' },
    echoes: { type: 'string', default: 'filtered' },
    'heap-mb': { type: 'string' },
    'from-source': { type: 'boolean', default: false },
  },
});

const benches: Record<string, () => Promise<void>> = {
  reconcile: () =>
    benchReconcile({
      people: Number(values.people ?? 100_000),
      runs: Number(values.runs),
      seed: Number(values.seed),
      ...(values['heap-mb'] !== undefined ? { heapMb: Number(values['heap-mb']) } : {}),
      fromSource: values['from-source'],
    }),
  'api-efficiency': () => benchApiEfficiency({ people: Number(values.people ?? 10_000), seed: Number(values.seed) }),
  converge: async () => {
    if (!(await benchConverge({ people: Number(values.people ?? 50_000), seed: Number(values.seed) }))) process.exitCode = 1;
  },
  sandbox: () => benchSandbox({ people: Number(values.people ?? 1_000_000), records: Number(values.records), runs: Number(values.runs) }),
  propagate: () =>
    runPropagateBench({
      rate: Number(values.rate),
      durationS: Number(values.duration),
      seed: Number(values.seed),
      echoes: values.echoes === 'all' ? 'all' : 'filtered',
      ...(values.people !== undefined ? { people: Number(values.people) } : {}),
      ...(values.platforms !== undefined ? { platforms: values.platforms.split(',') as Array<'salesforce' | 'hubspot' | 'mailchimp' | 'sendgrid'> } : {}),
    }),
};

const names = positionals.length > 0 ? positionals : Object.keys(benches);
for (const name of names) {
  const bench = benches[name];
  if (!bench) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(benches).join(', ')}`);
    process.exit(64);
  }
  await bench();
}
