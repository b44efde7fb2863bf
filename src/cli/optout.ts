import type { Command } from 'commander';
import { optOut } from '../engine/statements.js';
import { channelArg, emailArg, purposeArg } from './args.js';
import { withRuntime, type GlobalOptions } from './runtime.js';
import { printStatement } from './statements.js';

/** `consentd optout EMAIL [--channel email] [--purpose '*'] [--evidence TEXT]`. */
export function registerOptout(program: Command): void {
  program
    .command('optout')
    .description('record that a person said no, and queue the corrections')
    .argument('<email>', 'the person')
    .option('--channel <channel>', 'email | sms | phone | post', 'email')
    .option('--purpose <purpose>', 'a declared purpose, or * for all marketing on the channel', '*')
    .option('--evidence <text>', 'how the person said it (ticket, letter, call)')
    .action(async (email: string, opts: { channel: string; purpose: string; evidence?: string }, cmd: Command) => {
      emailArg(email);
      const channel = channelArg(opts.channel) ?? 'email';
      const purpose = purposeArg(opts.purpose) ?? '*';
      await withRuntime(cmd.optsWithGlobals<GlobalOptions>(), async (rt) => {
        const r = await optOut(rt.engine, email, { channel, purpose }, { source: 'cli', evidence: opts.evidence ?? null });
        printStatement('opt-out', r);
      });
    });
}
