/**
 * npm run bench -- [name] [--people N] [--runs R] [--seed S]
 * Benchmarks live in bench/<name>/; figures are written down in bench/README.md.
 * These machines are small (2 cores) and noisy: every bench reports medians.
 */
import { parseArgs } from 'node:util';
import { benchReconcile } from './reconcile/index.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    people: { type: 'string' },
    runs: { type: 'string', default: '3' },
    seed: { type: 'string', default: '7' },
  },
});

const benches: Record<string, () => Promise<void>> = {
  reconcile: () => benchReconcile({ people: Number(values.people ?? 100_000), runs: Number(values.runs), seed: Number(values.seed) }),
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
