import type { Command } from 'commander';
import { erase } from '../engine/statements.js';
import { subjectHash } from '../model/index.js';
import { emailArg } from './args.js';
import { out, withRuntime, type GlobalOptions } from './runtime.js';
import { printStatement } from './statements.js';

/** `consentd erase EMAIL`: forget the person here, and queue erasure in every system. */
export function registerErase(program: Command): void {
  program
    .command('erase')
    .description('erase a person (right to be forgotten) in the store and every system')
    .argument('<email>', 'the person')
    .option('--evidence <text>', 'the request (ticket id)')
    .action(async (email: string, opts: { evidence?: string }, cmd: Command) => {
      const subject = emailArg(email);
      await withRuntime(cmd.optsWithGlobals<GlobalOptions>(), async (rt) => {
        if (await rt.store.isTombstoned(subjectHash(subject, rt.config.salt))) {
          const st = await rt.store.subjectState(subject);
          if (st.observations.length === 0 && st.records.length === 0) {
            out.line(`${subject}: already erased`);
            return;
          }
        }
        printStatement('erase', await erase(rt.engine, email, { source: 'cli', evidence: opts.evidence ?? null }));
      });
    });
}
