import type { Command } from 'commander';
import type { ConnectorDefinition } from '../connectors/contract.js';
import { BUILTIN_CONNECTORS, createRegistry, type ConnectorRegistry } from '../connectors/registry.js';
import { startDaemon, type RunningDaemon } from '../daemon/daemon.js';
import { createEngineHooks, type EngineHooks } from '../daemon/hooks.js';
import { createMetrics } from '../daemon/metrics.js';
import type { EngineProgress } from '../engine/context.js';
import { ConsentdError } from '../errors.js';
import { intArg } from './args.js';
import { openRuntime, out, type GlobalOptions, type StoreRuntime } from './runtime.js';

/*
 * `consentd run`: the long-running daemon (DESIGN.md section 6). HTTP (webhooks, admin API,
 * /healthz, /readyz, /metrics), the scheduler and one outbox worker per connector, until SIGTERM
 * or SIGINT; then a graceful shutdown (exit 0, or 1 if a step failed or the deadline passed).
 *
 * CONSENTD_TEST_CONNECTORS=1 adds the test-only connector kinds of test/helpers/test-connectors.ts
 * (used by the daemon fault tests, which run this command as a child process). Nothing else
 * loads that file.
 */

export interface RunOptions {
  port?: string;
  host?: string;
  catchUp: boolean;
  shutdownDeadline?: string;
}

/** The built-in registry, plus the test kinds when CONSENTD_TEST_CONNECTORS=1. */
export async function daemonRegistry(env: NodeJS.ProcessEnv = process.env): Promise<ConnectorRegistry | undefined> {
  if (env['CONSENTD_TEST_CONNECTORS'] !== '1') return undefined;
  const spec = new URL('../../test/helpers/test-connectors.ts', import.meta.url).href;
  const mod = (await import(spec)) as { TEST_CONNECTORS: readonly ConnectorDefinition[] };
  return createRegistry([...BUILTIN_CONNECTORS, ...mod.TEST_CONNECTORS]);
}

export interface StartedDaemon {
  rt: StoreRuntime;
  daemon: RunningDaemon;
  hooks: EngineHooks;
  /** Resolves with the exit code once a signal-triggered shutdown finished. */
  exited: Promise<number>;
}

/** Open the runtime and start the daemon (used by `run` and `demo`). */
export async function launchDaemon(
  global: GlobalOptions,
  opts: {
    port?: number;
    host?: string;
    catchUp?: boolean;
    handleSignals?: boolean;
    shutdownDeadlineMs?: number;
    registry?: ConnectorRegistry;
    progress?: EngineProgress;
  } = {},
): Promise<StartedDaemon> {
  const metrics = createMetrics();
  const registry = opts.registry ?? (await daemonRegistry());
  const rt = openRuntime(global, {
    ...(registry ? { registry } : {}),
    ...(opts.progress ? { progress: opts.progress } : {}),
    onApiCall: (id, endpoint, status) => metrics.apiCall(id, endpoint, status),
    onRateLimitWait: (id, ms) => metrics.rateLimitWait(id, ms),
  });
  let hooks: EngineHooks | null = null;
  let exit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => {
    exit = resolve;
  });
  try {
    const http = { ...rt.config.http, ...(opts.port !== undefined ? { port: opts.port } : {}), ...(opts.host !== undefined ? { host: opts.host } : {}) };
    const daemon = await startDaemon({
      config: { ...rt.config, http },
      logger: rt.logger,
      connectors: new Map(rt.connectors.map((c) => [c.id, c])),
      hooks: (controls) => (hooks = createEngineHooks(rt.engine, controls)),
      store: rt.store,
      metrics,
      handleSignals: opts.handleSignals ?? true,
      catchUp: opts.catchUp ?? true,
      ...(opts.shutdownDeadlineMs !== undefined ? { shutdownDeadlineMs: opts.shutdownDeadlineMs } : {}),
      exit: (code) => {
        hooks?.close();
        exit(code);
      },
    });
    if (!hooks) throw new Error('daemon started without engine hooks');
    return { rt, daemon, hooks, exited };
  } catch (err) {
    (hooks as EngineHooks | null)?.close();
    await rt.close().catch(() => undefined);
    const code = (err as { code?: unknown }).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new ConsentdError('USAGE', `cannot listen on ${rt.config.http.host}:${opts.port ?? rt.config.http.port}: ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run the daemon: webhooks, admin API, health and metrics, scheduled runs and outbox workers, until SIGTERM / SIGINT')
    .option('--port <n>', 'listen on this port instead of http.port')
    .option('--host <addr>', 'listen on this address instead of http.host')
    .option('--no-catch-up', 'do not run scheduled runs missed while the daemon was down')
    .option('--shutdown-deadline <seconds>', 'whole graceful-shutdown budget in seconds', '30')
    .action(async (opts: RunOptions, cmd: Command) => {
      const port = intArg('--port', opts.port);
      if (port !== undefined && port > 65535) throw new ConsentdError('USAGE', '--port must be at most 65535');
      const deadline = intArg('--shutdown-deadline', opts.shutdownDeadline, 1) ?? 30;
      const started = await launchDaemon(cmd.optsWithGlobals<GlobalOptions>(), {
        ...(port !== undefined ? { port } : {}),
        ...(opts.host !== undefined ? { host: opts.host } : {}),
        catchUp: opts.catchUp,
        shutdownDeadlineMs: deadline * 1000,
      });
      const { daemon, rt } = started;
      rt.logger.info({ address: daemon.address }, `listening on ${daemon.address}`);
      out.line(`consentd listening on ${daemon.address} (${rt.connectors.map((c) => c.id).join(', ')}); Ctrl-C to stop`);
      const code = await started.exited;
      if (code !== 0) throw new ConsentdError('INTERNAL', 'shutdown did not complete cleanly (see the logs)');
    });
}
