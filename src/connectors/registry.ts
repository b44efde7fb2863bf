import type { Connector, ConnectorContext, ConnectorDefinition } from './contract.js';
import type { ConnectorConfig } from '../config/schema.js';
import { csvConnector } from '../../connectors/csv/index.js';
import { hubspotConnector } from '../../connectors/hubspot/index.js';
import { salesforceConnector } from '../../connectors/salesforce/index.js';
import { mailchimpConnector } from '../../connectors/mailchimp/index.js';
import { sendgridConnector } from '../../connectors/sendgrid/index.js';

/**
 * Connector kinds by name. The engine asks the registry; it never branches on a kind.
 * The config loader takes a registry as a parameter (no import cycle config -> connectors).
 */
export interface ConnectorRegistry {
  /** The definition of a kind, or undefined if none is registered. */
  get(kind: string): ConnectorDefinition | undefined;
  /** Registered kinds, in registration order. */
  kinds(): string[];
  /**
   * A live connector for one `connectors[]` entry of a parsed Config (settings already validated
   * by the kind's configSchema). `limits` from config override the connector's own limits.
   */
  create(config: ConnectorConfig, ctx: Omit<ConnectorContext, 'id'>): Connector;
}

export class UnknownConnectorKindError extends Error {
  readonly code = 'UNKNOWN_CONNECTOR_KIND';
  constructor(readonly kind: string, known: readonly string[]) {
    super(`unknown connector kind "${kind}"; registered kinds: ${known.join(', ') || '(none)'}`);
  }
}

export function createRegistry(defs: readonly ConnectorDefinition[]): ConnectorRegistry {
  const byKind = new Map<string, ConnectorDefinition>();
  for (const d of defs) {
    if (byKind.has(d.kind)) throw new Error(`connector kind "${d.kind}" registered twice`);
    byKind.set(d.kind, d);
  }
  return {
    get: (kind) => byKind.get(kind),
    kinds: () => [...byKind.keys()],
    create(config, ctx) {
      const def = byKind.get(config.kind);
      if (!def) throw new UnknownConnectorKindError(config.kind, [...byKind.keys()]);
      const connector = def.create(config.settings, { ...ctx, id: config.id });
      const overrides = Object.entries(config.limits).filter(([, v]) => v !== undefined);
      if (overrides.length === 0) return connector;
      // Override `limits` without copying methods off the instance: works for object literals and
      // for classes with #private fields (methods are bound to the real instance).
      const limits = Object.freeze({ ...connector.limits, ...Object.fromEntries(overrides) });
      return new Proxy(connector, {
        get(target, prop) {
          if (prop === 'limits') return limits;
          const v: unknown = Reflect.get(target, prop, target);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}

/**
 * The built-in kinds. Adding a platform is one line here (and its folder under connectors/).
 */
export const BUILTIN_CONNECTORS: readonly ConnectorDefinition[] = [
  csvConnector as ConnectorDefinition,
  hubspotConnector as ConnectorDefinition,
  salesforceConnector as ConnectorDefinition,
  mailchimpConnector as ConnectorDefinition,
  sendgridConnector as ConnectorDefinition,
  // salesforceConnector, hubspotConnector, mailchimpConnector, sendgridConnector: later issues.
];

export function defaultRegistry(): ConnectorRegistry {
  return createRegistry(BUILTIN_CONNECTORS);
}
