import type { Command } from 'commander';
import { applyAll, type ApplyStats } from '../engine/apply.js';
import { reconcile, type ReconcileStats } from '../engine/reconcile.js';
import { ConsentdError } from '../errors.js';
import { durationArg } from './args.js';
import { pullEach, pullOutcomeError, pullTable, type PullOutcome } from './pull.js';
import { out, table, ttyProgress, withRuntime, type GlobalOptions } from './runtime.js';

export function applyTable(rec: ReconcileStats | null, applied: Map<string, ApplyStats>): string {
  const rows: Array<Array<string | number>> = [['system', 'disagreements found', 'fixed', 'retried', 'failed', 'still queued']];
  for (const [id, s] of applied) rows.push([id, rec?.byConnector[id] ?? '-', s.ok, s.retried, s.dead, s.left]);
  return table(rows);
}

/** `consentd apply`: pull, reconcile, and push every correction until the outbox is drained. */
export function registerApply(program: Command): void {
  program
    .command('apply')
    .description('pull, reconcile and apply the changes until the outbox is drained')
    .option('--full', 'full pull')
    .option('--no-pull', 'only push what the outbox already holds')
    .option('--max-wait <duration>', 'longest total wait for retries that are not yet due (e.g. 30s, 5m)', '60s')
    .action(async (opts: { full?: boolean; pull: boolean; maxWait: string }, cmd: Command) => {
      const maxWaitMs = durationArg('--max-wait', opts.maxWait) ?? 60_000;
      const tty = ttyProgress();
      await withRuntime(
        cmd.optsWithGlobals<GlobalOptions>(),
        async (rt) => {
          const { store, engine } = rt;
          // Crash recovery: a previous apply killed mid-push left items in flight (pushes are idempotent).
          const interrupted = await store.interruptRunningRuns();
          const requeued = await store.requeueInFlight();
          if (interrupted + requeued > 0) rt.logger.warn({ interrupted, requeued }, 'recovered from an interrupted run');

          let pulled: PullOutcome | null = null;
          let rec: ReconcileStats | null = null;
          if (opts.pull) {
            pulled = await pullEach(engine, rt.connectors, opts.full === true);
            rec = await reconcile(engine, 'normal');
          }
          const applied = await applyAll(engine, rt.connectors, { until: 'drained', maxWaitMs });
          tty.done();
          if (pulled) out.line(pullTable(pulled) + '\n');
          out.line(applyTable(rec, applied));
          const totals = [...applied.values()].reduce((a, s) => ({ ok: a.ok + s.ok, dead: a.dead + s.dead, left: a.left + s.left }), { ok: 0, dead: 0, left: 0 });
          out.line(
            `\n${totals.ok} change(s) applied${totals.dead > 0 ? `, ${totals.dead} dead-lettered (see \`consentd dead-letters\`)` : ''}${totals.left > 0 ? `, ${totals.left} still queued (retry not yet due)` : ''}${rec && rec.erased > 0 ? `, ${rec.erased} person(s) erased` : ''}`,
          );
          const pullErr = pulled ? pullOutcomeError(pulled) : null;
          if (pullErr?.code === 'CONNECTOR_FAILED') throw pullErr;
          if (totals.dead > 0) throw new ConsentdError('PARTIAL', `${totals.dead} change(s) dead-lettered`);
          if (pullErr) throw pullErr;
          if (totals.left > 0) throw new ConsentdError('PARTIAL', `${totals.left} change(s) still queued for retry`);
        },
        tty.progress ? { progress: tty.progress } : {},
      );
    });
}
