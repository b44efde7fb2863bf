#!/usr/bin/env node
/*
 * consentd command line. Human output goes to stdout, JSON logs to stderr; a progress line is
 * drawn only when stdout is a TTY.
 *
 * Exit codes (from src/errors.ts; scripts may switch on them):
 *
 *   code  error code        meaning
 *   0     -                 success
 *   1     INTERNAL          unexpected error (a bug; set CONSENTD_DEBUG=1 for the stack)
 *   2     CONFIG_INVALID    the config file is missing or invalid (every problem is listed)
 *   3     CONNECTOR_FAILED  a system could not be reached or read (check, pull)
 *   4     PARTIAL           ran to the end, but some source rows were rejected, or some changes
 *                           were dead-lettered or are still waiting for a retry
 *   5     STORE_FAILED      the store could not be opened or written
 *   6     NOT_FOUND         the thing named does not exist (e.g. dead-letters --replay ID)
 *   64    USAGE             bad command line (unknown option, missing argument, bad value)
 *   64    INVALID_EMAIL     the email given is not a deliverable address (the reason is printed)
 */
import { Command, CommanderError, Option } from 'commander';
import { errorCode, EXIT_CODES } from '../errors.js';
import { registerApply } from './apply.js';
import { registerCheck } from './check.js';
import { registerDeadLetters } from './dead-letters.js';
import { registerDemo } from './demo.js';
import { registerErase } from './erase.js';
import { registerExplain } from './explain.js';
import { registerExport } from './export.js';
import { registerGrant } from './grant.js';
import { registerOptout } from './optout.js';
import { registerPlan } from './plan.js';
import { registerPull } from './pull.js';
import { registerRun } from './run.js';
import { registerSandbox } from './sandbox.js';
import { registerStatus } from './status.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('consentd')
    .description('keeps marketing permissions consistent across every system')
    .version('0.1.0')
    .addOption(new Option('-c, --config <file>', 'config file').env('CONSENTD_CONFIG').default('./consentd.yaml'))
    .addOption(new Option('--log-level <level>', 'override log.level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .showHelpAfterError('(run consentd --help for usage)')
    .exitOverride();
  registerCheck(program);
  registerPull(program);
  registerPlan(program);
  registerApply(program);
  registerExplain(program);
  registerOptout(program);
  registerGrant(program);
  registerErase(program);
  registerStatus(program);
  registerExport(program);
  registerDeadLetters(program);
  registerRun(program);
  registerSandbox(program);
  registerDemo(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

/** Run the CLI; resolves to the exit code (never throws). */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed its message (or the help).
      return err.exitCode === 0 ? 0 : EXIT_CODES.USAGE;
    }
    const code = errorCode(err);
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`consentd: ${code === 'INTERNAL' ? 'internal error: ' : ''}${message}\n`);
    if (code === 'INTERNAL' && process.env['CONSENTD_DEBUG'] && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return EXIT_CODES[code];
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
// Do not let a stray timer keep a finished command alive.
setTimeout(() => process.exit(code), 2000).unref();
