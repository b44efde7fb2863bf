import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Connector } from '../connectors/contract.js';
import type { PlanTarget } from '../plan/index.js';
import type { PolicyOptions } from '../policy/index.js';
import type { Store } from '../store/store.js';

/** The parts of the configuration the engine reads (tests build it by hand). */
export type EngineConfig = Pick<Config, 'salt' | 'policy' | 'purposes' | 'outbox'>;

/** Counters a caller (the CLI's TTY progress line, metrics) may want while a run goes. */
export interface EngineProgress {
  (event: { phase: 'pull' | 'reconcile' | 'apply'; connectorId: string | null; counts: Record<string, number> }): void;
}

export interface Engine {
  readonly config: EngineConfig;
  readonly store: Store;
  /** Enabled connectors; every one is a plan target. */
  readonly connectors: readonly Connector[];
  readonly logger: Logger;
  now(): Date;
  /** Random source of backoff jitter (tests pin it). */
  random(): number;
  /** Sleep (tests may shortcut it). */
  sleep(ms: number): Promise<void>;
  connector(id: string): Connector | undefined;
  policyOptions(): PolicyOptions;
  targets(): PlanTarget[];
  progress?: EngineProgress;
}

export interface CreateEngineOptions {
  config: EngineConfig;
  store: Store;
  connectors: readonly Connector[];
  logger: Logger;
  now?: () => Date;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
  progress?: EngineProgress;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Wire config, store and connectors; the engine never branches on a connector's kind. */
export function createEngine(opts: CreateEngineOptions): Engine {
  const byId = new Map<string, Connector>();
  for (const c of opts.connectors) {
    if (byId.has(c.id)) throw new Error(`connector id "${c.id}" is used twice`);
    byId.set(c.id, c);
  }
  const now = opts.now ?? (() => new Date());
  const purposes = opts.config.purposes.map((p) => p.id);
  const grantSources: ReadonlySet<string> = new Set(opts.config.policy.grantSources);
  const targets: PlanTarget[] = opts.connectors.map((c) => ({ connectorId: c.id, capabilities: c.capabilities }));
  const engine: Engine = {
    config: opts.config,
    store: opts.store,
    connectors: [...opts.connectors],
    logger: opts.logger,
    now,
    random: opts.random ?? Math.random,
    sleep: opts.sleep ?? defaultSleep,
    connector: (id) => byId.get(id),
    policyOptions: () => ({
      purposes,
      grantSources,
      clockSkewMs: opts.config.policy.clockSkewMs,
      reconfirmAfterMs: opts.config.policy.reconfirmAfterMs,
      revokeStale: opts.config.policy.revokeStale,
      now: now(),
    }),
    targets: () => targets,
    ...(opts.progress ? { progress: opts.progress } : {}),
  };
  return engine;
}
