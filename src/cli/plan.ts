import type { Command } from 'commander';
import { stringify } from 'csv-stringify/sync';
import { planReport, type PlanReport } from '../engine/plan-report.js';
import { UsageError } from '../errors.js';
import type { Change } from '../model/index.js';
import { pullEach, pullOutcomeError, type PullOutcome } from './pull.js';
import { out, table, ttyProgress, withRuntime, type GlobalOptions } from './runtime.js';

const CSV_COLUMNS = ['connector', 'record_id', 'subject', 'op', 'channel', 'purpose', 'target', 'rule', 'decided_by', 'key'] as const;

function csvRow(c: Change): string {
  return stringify([[c.connectorId, c.recordId, c.subject, c.op, c.channel, c.purpose, c.target ?? '', c.rule ?? '', c.decidedBy ?? '', c.key]]);
}

export function planTable(report: PlanReport, pulled: PullOutcome | null): string {
  const rows: Array<Array<string | number>> = [['system', 'records read', 'records to fix', 'changes', 'by operation']];
  for (const [id, sys] of Object.entries(report.bySystem)) {
    const ops = Object.entries(sys.byOp)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([op, n]) => `${op}=${n}`)
      .join(' ');
    rows.push([id, pulled?.stats.get(id)?.records ?? '-', sys.records, sys.changes, ops || '-']);
  }
  return table(rows);
}

/** `consentd plan [--json|--csv]`: pull, decide and plan; nothing is queued or pushed. */
export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('dry run: pull, decide, and show what apply would change in each system')
    .option('--full', 'full pull')
    .option('--json', 'print every change as JSON')
    .option('--csv', 'print every change as CSV')
    .action(async (opts: { full?: boolean; json?: boolean; csv?: boolean }, cmd: Command) => {
      if (opts.json === true && opts.csv === true) throw new UsageError('choose one of --json and --csv');
      const tty = opts.json === true || opts.csv === true ? { done: () => undefined } : ttyProgress();
      await withRuntime(
        cmd.optsWithGlobals<GlobalOptions>(),
        async (rt) => {
          const pulled = await pullEach(rt.engine, rt.connectors, opts.full === true);
          let report: PlanReport;
          if (opts.json === true) {
            let first = true;
            out.write('{"changes":[');
            report = await planReport(rt.engine, (c) => {
              out.write(`${first ? '\n' : ',\n'}${JSON.stringify(c)}`);
              first = false;
            });
            out.line(`\n],"summary":${JSON.stringify(report)}}`);
          } else if (opts.csv === true) {
            out.write(stringify([[...CSV_COLUMNS]]));
            report = await planReport(rt.engine, (c) => out.write(csvRow(c)));
          } else {
            report = await planReport(rt.engine);
            tty.done();
            out.line(planTable(report, pulled));
            out.line(
              report.changes === 0
                ? `\nno changes: every system agrees (${report.subjects} people decided)`
                : `\n${report.changes} change(s) for ${report.subjects} people decided${report.erasures > 0 ? `, ${report.erasures} erasure(s)` : ''}; run \`consentd apply\` to make them`,
            );
          }
          const err = pullOutcomeError(pulled);
          if (err) throw err;
        },
        tty.progress ? { progress: tty.progress } : {},
      );
    });
}
