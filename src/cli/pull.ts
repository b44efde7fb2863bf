import type { Command } from 'commander';
import type { Connector } from '../connectors/contract.js';
import type { Engine } from '../engine/context.js';
import { pullConnector, type PullStats } from '../engine/pull.js';
import { ConsentdError } from '../errors.js';
import { out, selectConnectors, table, ttyProgress, withRuntime, type GlobalOptions } from './runtime.js';

export interface PullOutcome {
  stats: Map<string, PullStats>;
  failures: Map<string, Error>;
  rejects: number;
}

/** Pull each connector; a failing one is reported and the others go on. */
export async function pullEach(engine: Engine, connectors: readonly Connector[], full: boolean): Promise<PullOutcome> {
  const outcome: PullOutcome = { stats: new Map(), failures: new Map(), rejects: 0 };
  for (const c of connectors) {
    try {
      // Rejected rows are logged (JSON, stderr); on a terminal they are also spelled out.
      const onReject = process.stderr.isTTY ? (r: { where: string; reason: string }) => void process.stderr.write(`rejected ${r.where}: ${r.reason}\n`) : undefined;
      const s = await pullConnector(engine, c, { full, ...(onReject ? { onReject } : {}) });
      outcome.stats.set(c.id, s);
      outcome.rejects += s.rejects;
    } catch (err) {
      const code = (err as { code?: unknown } | null | undefined)?.code;
      if (code !== 'CONNECTOR_FAILED') throw err;
      outcome.failures.set(c.id, err as Error);
      process.stderr.write(`${(err as Error).message}\n`);
    }
  }
  return outcome;
}

export function pullTable(o: PullOutcome): string {
  const rows: Array<Array<string | number>> = [['system', 'pages', 'records', 'statements', 'new', 'rejected', 'status']];
  for (const [id, s] of o.stats) rows.push([id, s.pages, s.records, s.seen, s.observations, s.rejects, s.reerased > 0 ? `ok, ${s.reerased} erased again` : 'ok']);
  for (const [id] of o.failures) rows.push([id, '-', '-', '-', '-', '-', 'FAILED']);
  return table(rows);
}

/** Exit status of a run that pulled: connector failures first, then rejected rows. */
export function pullOutcomeError(o: PullOutcome): ConsentdError | null {
  if (o.failures.size > 0) return new ConsentdError('CONNECTOR_FAILED', `pull failed for ${[...o.failures.keys()].join(', ')}`);
  if (o.rejects > 0) return new ConsentdError('PARTIAL', `${o.rejects} source row(s) rejected (see stderr)`);
  return null;
}

/** `consentd pull [--full] [--connector id]`: store what each system says; plans nothing. */
export function registerPull(program: Command): void {
  program
    .command('pull')
    .description('read every system (or one) into the store')
    .option('--full', 'full pull (ignore the saved cursor; forget records no longer there)')
    .option('--connector <id>', 'only this connector')
    .action(async (opts: { full?: boolean; connector?: string }, cmd: Command) => {
      const tty = ttyProgress();
      await withRuntime(
        cmd.optsWithGlobals<GlobalOptions>(),
        async (rt) => {
          const o = await pullEach(rt.engine, selectConnectors(rt, opts.connector), opts.full === true);
          tty.done();
          out.line(pullTable(o));
          const err = pullOutcomeError(o);
          if (err) throw err;
        },
        tty.progress ? { progress: tty.progress } : {},
      );
    });
}
