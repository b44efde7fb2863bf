import type { Command } from 'commander';
import { out, table, withRuntime, type GlobalOptions } from './runtime.js';

/** `consentd status [--json]`: store counts, outbox depth, dead letters, last runs. */
export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('store counts, outbox depth per system, dead letters, last runs')
    .option('--json', 'print as JSON')
    .option('--runs <n>', 'how many recent runs to show', '10')
    .action(async (opts: { json?: boolean; runs: string }, cmd: Command) => {
      await withRuntime(cmd.optsWithGlobals<GlobalOptions>(), async (rt) => {
        const stats = await rt.store.stats();
        const depth = await rt.store.outboxDepth();
        const runs = await rt.store.listRuns(Math.max(0, Number.parseInt(opts.runs, 10) || 10));
        if (opts.json === true) {
          out.line(JSON.stringify({ stats, depth, runs }, null, 2));
          return;
        }
        out.line(`store ${rt.config.store.path}`);
        out.line(
          table([
            ['people', stats.subjects],
            ['records', stats.records],
            ['observations', stats.observations],
            ['people to re-decide', stats.dirtySubjects],
            ['erased (tombstones)', stats.tombstones],
            ['dead letters', stats.deadLetters],
          ]),
        );
        out.line(`\noutbox: ${Object.entries(stats.outbox).map(([k, v]) => `${k}=${v}`).join(' ')}${stats.oldestPendingAt ? ` (oldest pending ${stats.oldestPendingAt})` : ''}`);
        const rows: Array<Array<string | number>> = [['system', 'queued']];
        for (const c of rt.connectors) rows.push([c.id, depth[c.id] ?? 0]);
        out.line(table(rows));
        if (runs.length > 0) {
          out.line('\nlast runs:');
          const r: Array<Array<string | number>> = [['id', 'kind', 'system', 'status', 'started', 'stats']];
          for (const run of runs) {
            r.push([run.id, run.kind, run.connectorId ?? '-', run.status, run.startedAt, Object.entries(run.stats).map(([k, v]) => `${k}=${v}`).join(' ') + (run.error ? ` error: ${run.error}` : '')]);
          }
          out.line(table(r));
        }
      });
    });
}
