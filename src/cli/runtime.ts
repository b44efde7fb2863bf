import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { loadConfig } from '../config/loader.js';
import { configSecrets } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import type { Connector } from '../connectors/contract.js';
import { defaultRegistry, type ConnectorRegistry } from '../connectors/registry.js';
import { createEngine, type Engine, type EngineProgress } from '../engine/context.js';
import { ConsentdError, UsageError } from '../errors.js';
import { createLogger } from '../log/logger.js';
import { openSqliteStore } from '../store/sqlite/index.js';
import type { Store } from '../store/store.js';

/** Options every command receives (commander's global options). */
export interface GlobalOptions {
  config: string;
  logLevel?: string;
}

export interface Runtime {
  config: Config;
  registry: ConnectorRegistry;
  logger: Logger;
  connectors: Connector[];
  close(): Promise<void>;
}

export interface StoreRuntime extends Runtime {
  store: Store;
  engine: Engine;
}

/** Output streams (tests of the commands may swap them). */
export const out = {
  write(s: string): void {
    process.stdout.write(s);
  },
  line(s = ''): void {
    process.stdout.write(`${s}\n`);
  },
};

/** Optional extras of loadRuntime / openRuntime (the daemon's). */
export interface RuntimeExtras {
  progress?: EngineProgress;
  /** Another registry than the built-in one (tests register extra kinds). */
  registry?: ConnectorRegistry;
  /** Per-connector API call and rate-limit callbacks (the daemon's metrics). */
  onApiCall?: (connectorId: string, endpoint: string, status: number | 'error') => void;
  onRateLimitWait?: (connectorId: string, ms: number) => void;
}

/** Load and validate the config; nothing is written (no store opened). Throws ConfigError (CONFIG_INVALID). */
export function loadRuntime(opts: GlobalOptions, extra: RuntimeExtras = {}): Runtime {
  const registry = extra.registry ?? defaultRegistry();
  const config = loadConfig(opts.config, { env: process.env, registry });
  const logger = createLogger({
    level: opts.logLevel ?? config.log.level,
    pii: config.log.pii,
    salt: config.salt,
    secrets: configSecrets(config, registry),
    destination: pino.destination({ dest: 2, sync: true }),
    base: { pid: process.pid },
  });
  const purposes = config.purposes.map((p) => p.id);
  const connectors: Connector[] = [];
  for (const c of config.connectors) {
    if (!c.enabled) continue;
    const { onApiCall, onRateLimitWait } = extra;
    connectors.push(
      registry.create(c, {
        purposes,
        logger: logger.child({ connector: c.id }),
        baseDir: config.baseDir,
        ...(onApiCall ? { onApiCall: (endpoint: string, status: number | 'error') => onApiCall(c.id, endpoint, status) } : {}),
        ...(onRateLimitWait ? { onRateLimitWait: (ms: number) => onRateLimitWait(c.id, ms) } : {}),
      }),
    );
  }
  return {
    config,
    registry,
    logger,
    connectors,
    async close() {
      for (const c of connectors) await c.close?.().catch(() => undefined);
    },
  };
}

/** As loadRuntime, plus the store (created and migrated if needed) and the engine. */
export function openRuntime(opts: GlobalOptions, extra: RuntimeExtras = {}): StoreRuntime {
  const rt = loadRuntime(opts, extra);
  let store: Store;
  try {
    mkdirSync(dirname(rt.config.store.path), { recursive: true });
    store = openSqliteStore(rt.config.store.path, { salt: rt.config.salt });
  } catch (err) {
    throw new ConsentdError('STORE_FAILED', `cannot open the store ${rt.config.store.path}: ${(err as Error).message}`, { cause: err });
  }
  const engine = createEngine({
    config: rt.config,
    store,
    connectors: rt.connectors,
    logger: rt.logger,
    ...(extra.progress ? { progress: extra.progress } : {}),
  });
  return {
    ...rt,
    store,
    engine,
    async close() {
      await rt.close();
      await store.close();
    },
  };
}

/** Run a command body with a runtime, closing it whatever happens. */
export async function withRuntime<T>(opts: GlobalOptions, fn: (rt: StoreRuntime) => Promise<T>, extra: { progress?: EngineProgress } = {}): Promise<T> {
  const rt = openRuntime(opts, extra);
  try {
    return await fn(rt);
  } finally {
    await rt.close();
  }
}

/** The connectors a command should work on: all enabled, or the one named by --connector. */
export function selectConnectors(rt: Runtime, id: string | undefined): Connector[] {
  if (id === undefined) return rt.connectors;
  const c = rt.connectors.find((x) => x.id === id);
  if (!c) {
    const configured = rt.config.connectors.find((x) => x.id === id);
    throw new UsageError(
      configured ? `connector "${id}" is disabled in the config` : `no connector "${id}" in the config (connectors: ${rt.connectors.map((x) => x.id).join(', ')})`,
    );
  }
  return [c];
}

/**
 * A one-line progress display, only when stdout is a TTY (nothing otherwise: the JSON logs on
 * stderr tell the story).
 */
export function ttyProgress(): { progress?: EngineProgress; done(): void } {
  if (!process.stdout.isTTY) return { done: () => undefined };
  const state = new Map<string, string>();
  let shown = false;
  const progress: EngineProgress = (e) => {
    const counts = Object.entries(e.counts)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    state.set(`${e.phase}:${e.connectorId ?? '*'}`, `${e.phase} ${e.connectorId ?? ''} ${counts}`.replace(/\s+/g, ' '));
    const line = [...state.values()].join(' | ');
    const width = process.stdout.columns ?? 120;
    process.stdout.write(`\r${line.slice(0, width - 1).padEnd(Math.min(width - 1, line.length))}\u001b[K`);
    shown = true;
  };
  return {
    progress,
    done() {
      if (shown) process.stdout.write('\r\u001b[K');
    },
  };
}

/** Fixed-width table for human output. */
export function table(rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, String(c).length)));
  return rows.map((r) => r.map((c, i) => (typeof c === 'number' ? String(c).padStart(widths[i] ?? 0) : String(c).padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n');
}

/** Resolves on the first SIGINT / SIGTERM (commands that stay up until Ctrl-C). */
export function untilInterrupted(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
