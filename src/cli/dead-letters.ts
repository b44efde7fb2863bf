import type { Command } from 'commander';
import { ConsentdError } from '../errors.js';
import { changeLabel } from '../engine/plan-report.js';
import { intArg } from './args.js';
import { out, table, withRuntime, type GlobalOptions } from './runtime.js';

/** `consentd dead-letters [--replay ID] [--json]`: list changes that failed for good, or put one back in the outbox. */
export function registerDeadLetters(program: Command): void {
  program
    .command('dead-letters')
    .description('list dead-lettered changes, or replay one')
    .option('--replay <id>', 'put this dead letter back in the outbox (pushed by the next apply)')
    .option('--limit <n>', 'how many to list', '100')
    .option('--json', 'print as JSON')
    .action(async (opts: { replay?: string; limit: string; json?: boolean }, cmd: Command) => {
      const replay = intArg('--replay', opts.replay, 1);
      const limit = intArg('--limit', opts.limit, 1) ?? 100;
      await withRuntime(cmd.optsWithGlobals<GlobalOptions>(), async (rt) => {
        if (replay !== undefined) {
          if (!(await rt.store.replayDeadLetter(replay))) throw new ConsentdError('NOT_FOUND', `no dead letter ${replay} (or it was already replayed)`);
          out.line(`dead letter ${replay} is pending again; run \`consentd apply --no-pull\` to push it`);
          return;
        }
        const list = await rt.store.listDeadLetters(limit);
        if (opts.json === true) {
          out.line(JSON.stringify(list, null, 2));
          return;
        }
        if (list.length === 0) {
          out.line('no dead letters');
          return;
        }
        const rows: Array<Array<string | number>> = [['id', 'system', 'record', 'change', 'scope', 'attempts', 'dead at', 'reason']];
        for (const d of list) rows.push([d.id, d.change.connectorId, d.change.recordId, changeLabel(d.change), `${d.change.channel}:${d.change.purpose}`, d.attempts, d.deadAt, d.reason]);
        out.line(table(rows));
      });
    });
}
