import type { Command } from 'commander';
import { printDemoUrls, runDemo } from '../demo/run-demo.js';
import { PartialError, UsageError } from '../errors.js';
import { intArg } from './args.js';
import { out, untilInterrupted, type GlobalOptions } from './runtime.js';

/*
 * `consentd demo`: the four sandboxes seeded with disagreeing people, the daemon on SQLite under
 * ./data/demo (wiped at start; config/demo.yaml, filled in through DEMO_* variables), a full
 * reconcile with a drift report, then a few people unsubscribing in different platforms and how
 * fast each opt-out reached the others. Stays up until Ctrl-C, or exits (--exit-after-demo):
 * exit code 4 (PARTIAL) when a correction failed or an opt-out did not reach every system.
 */

interface DemoCliOptions {
  people: string;
  seed: string;
  dir: string;
  port: string;
  portBase: string;
  plays: string;
  exitAfterDemo?: boolean;
  json?: boolean;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('see consentd at work on local sandboxes of Salesforce, HubSpot, Mailchimp and SendGrid')
    .option('--people <n>', 'people seeded in the sandboxes', '2000')
    .option('--seed <n>', 'seed of the generator', '42')
    .option('--dir <dir>', 'store directory (wiped at start)', './data/demo')
    .option('--port <n>', 'daemon port (0 = a free one)', '8080')
    .option('--port-base <n>', 'sandbox ports port..port+3 (0 = free ones)', '4010')
    .option('--plays <n>', 'opt-outs to play, round-robin over the platforms', '4')
    .option('--exit-after-demo', 'stop once the demo has run (tests, CI)')
    .option('--json', 'print the results as one JSON line at the end')
    .action(async (opts: DemoCliOptions, cmd: Command) => {
      const people = intArg('--people', opts.people, 10) ?? 2000;
      const seed = intArg('--seed', opts.seed) ?? 42;
      const port = intArg('--port', opts.port) ?? 8080;
      const portBase = intArg('--port-base', opts.portBase) ?? 4010;
      const plays = intArg('--plays', opts.plays) ?? 4;
      if (port > 65535 || portBase > 65532) throw new UsageError('ports must be at most 65535');
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const demo = await runDemo({ people, seed, dir: opts.dir, port, portBase, plays, ...(global.logLevel ? { logLevel: global.logLevel } : {}) });
      const r = demo.result;
      if (opts.json === true) out.line(JSON.stringify(r));
      const failed = Object.values(r.drift).some((d) => d.failed > 0 || d.left > 0) || r.plays.some((p) => Object.values(p.reached).some((ms) => ms === null));
      if (opts.exitAfterDemo !== true) {
        printDemoUrls(demo);
        await untilInterrupted();
      }
      await demo.stop();
      if (failed) throw new PartialError('some corrections failed or an opt-out did not reach every system (see above)');
    });
}
