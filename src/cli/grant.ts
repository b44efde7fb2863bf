import type { Command } from 'commander';
import { grant } from '../engine/statements.js';
import { channelArg, emailArg, purposeArg } from './args.js';
import { withRuntime, type GlobalOptions } from './runtime.js';
import { printStatement } from './statements.js';

/** `consentd grant EMAIL --purpose P --evidence TEXT [--channel email]`: evidence is required. */
export function registerGrant(program: Command): void {
  program
    .command('grant')
    .description('record an explicit grant with its evidence, and queue the corrections')
    .argument('<email>', 'the person')
    .requiredOption('--purpose <purpose>', 'a declared purpose, or * for all marketing on the channel')
    .requiredOption('--evidence <text>', 'the proof: signed form, double opt-in id, call recording')
    .option('--channel <channel>', 'email | sms | phone | post', 'email')
    .action(async (email: string, opts: { channel: string; purpose: string; evidence: string }, cmd: Command) => {
      emailArg(email);
      const channel = channelArg(opts.channel) ?? 'email';
      const purpose = purposeArg(opts.purpose) ?? '*';
      await withRuntime(cmd.optsWithGlobals<GlobalOptions>(), async (rt) => {
        if (!rt.config.policy.grantSources.includes('cli')) {
          process.stderr.write('warning: "cli" is not in policy.grantSources, so this grant will not count (rule 1)\n');
        }
        const r = await grant(rt.engine, email, { channel, purpose }, { source: 'cli', evidence: opts.evidence });
        printStatement('grant', r);
      });
    });
}
