import { isAbsolute, resolve } from 'node:path';
import { validate as validateCron } from 'node-cron';
import { z } from 'zod';
import { ALL_PURPOSES, Purpose } from '../model/types.js';
import type { ConnectorLimits } from '../connectors/contract.js';
import type { ConnectorRegistry } from '../connectors/registry.js';
import { duration } from './duration.js';
import { collectSecrets, redactConfig, secret } from './secret.js';

/*
 * The configuration file, validated once at start-up (fastify initial-config-validation habit).
 * Every object is strict: an unknown key is an error, so a typo never silently falls back to a
 * default. Durations are written as strings ("30s", "5m", "730d") and come out as milliseconds
 * in fields suffixed `Ms`.
 *
 * Purposes are declared once (`purposes:`) and mapped per connector. Convention for every
 * connector kind: its settings carry `purposes: { "<native name>": "<canonical id>" }`, mapping
 * the platform's own names (a CSV column value, a HubSpot subscription type id, a SendGrid
 * group id, ...) to declared canonical ids or "*". The loader checks that every mapped canonical
 * id is declared, whatever the kind.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Sources that are consentd itself: the CLI and the admin API. Connector ids may not take them. */
export const BUILTIN_SOURCES = ['cli', 'api'] as const;
const RESERVED_IDS = new Set<string>([...BUILTIN_SOURCES, 'manual', 'consentd']);

export const CONNECTOR_ID = /^[a-z][a-z0-9_-]{0,62}$/;

export interface ConnectorConfig {
  /** Unique, lower_snake / kebab; the `source` of its observations. */
  id: string;
  /** A registered kind (see src/connectors/registry.ts). */
  kind: string;
  /** May this source grant (policy rule 1)? */
  grants: boolean;
  enabled: boolean;
  /** Overrides of the connector's own limits; only the keys given. */
  limits: Partial<ConnectorLimits>;
  /** Validated (parsed) by the kind's configSchema; its shape is the kind's business. */
  settings: unknown;
}

export interface PurposeConfig {
  id: string;
  description: string;
}

/** The parsed, deep-frozen configuration. */
export interface Config {
  /** Absolute path of the file it was loaded from (null when parsed from a value). */
  file: string | null;
  /** Directory relative paths resolve against: the config file's directory. */
  baseDir: string;
  store: { path: string };
  /** Secret; keys subject hashes in logs and erasure tombstones. */
  salt: string;
  log: { level: LogLevel; pii: boolean };
  policy: {
    clockSkewMs: number;
    /** null: grants never go stale. */
    reconfirmAfterMs: number | null;
    revokeStale: boolean;
    /** policy.grantSources from the file ∪ ids of connectors with grants: true. */
    grantSources: string[];
  };
  purposes: PurposeConfig[];
  connectors: ConnectorConfig[];
  /** Cron expressions (5 or 6 fields); null disables that run. */
  schedule: { full: string | null; incremental: string | null; reconfirm: string | null; timezone: string };
  http: { host: string; port: number; adminTokens: string[]; bodyLimitBytes: number; publicUrl: string | null };
  outbox: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number; lingerMs: number };
}

const cron = z
  .string()
  .refine((s) => validateCron(s), { message: 'not a valid cron expression (5 fields, or 6 with seconds)' })
  .nullable();

const timezone = z.string().refine(
  (tz) => {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'not an IANA time zone (e.g. "UTC", "Europe/Paris")' },
);

const positiveInt = z.number().int().positive();

const limitsSchema = z.strictObject({
  batchSize: positiveInt.optional(),
  requestsPerInterval: positiveInt.optional(),
  intervalMs: positiveInt.optional(),
  concurrency: positiveInt.optional(),
});

const purposeSchema = z.strictObject({
  id: Purpose.refine((p) => p !== ALL_PURPOSES, { message: '"*" is built in (all purposes of a channel); declare specific purposes only' }),
  description: z.string().default(''),
});

function connectorEntry(kind: string, settings: z.ZodType) {
  return z.strictObject({
    id: z.string().regex(CONNECTOR_ID, 'connector id must be lower_snake or kebab case (a-z, 0-9, _ and -), starting with a letter'),
    kind: z.literal(kind),
    grants: z.boolean().default(false),
    enabled: z.boolean().default(true),
    limits: limitsSchema.default({}),
    settings,
  });
}

function connectorsSchema(registry: ConnectorRegistry) {
  const kinds = registry.kinds();
  const entries = kinds.map((k) => {
    const def = registry.get(k);
    if (!def) throw new Error(`registry lists kind "${k}" but has no definition for it`);
    return connectorEntry(k, def.configSchema);
  });
  const known = kinds.length > 0 ? kinds.join(', ') : '(none registered)';
  const unknownKind = (input: unknown): string => {
    const kind = typeof input === 'object' && input !== null ? (input as Record<string, unknown>)['kind'] : undefined;
    return kind === undefined ? `connector kind is required; registered kinds: ${known}` : `unknown connector kind ${JSON.stringify(kind)}; registered kinds: ${known}`;
  };
  const [first, ...rest] = entries;
  const entry = first
    ? z.discriminatedUnion('kind', [first, ...rest], {
        error: (iss) => (iss.code === 'invalid_union' ? unknownKind(iss.input) : undefined),
      })
    : z.never({ error: `no connector kinds are registered` });
  return z.array(entry).min(1, 'at least one connector is required');
}

export interface ConfigSchemaOptions {
  /** Directory relative paths resolve against (the config file's); default process.cwd(). */
  baseDir?: string;
  /** Recorded in Config.file. */
  file?: string | null;
}

/** Mapped purposes by convention: settings.purposes = { native: canonical }. */
function mappedPurposes(settings: unknown): Array<[string, unknown]> {
  if (typeof settings !== 'object' || settings === null) return [];
  const p = (settings as Record<string, unknown>)['purposes'];
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return [];
  return Object.entries(p);
}

/**
 * The top-level schema for one registry (connector settings are validated by each kind's own
 * configSchema). Input: the YAML document after ${ENV} substitution; output: Config.
 */
export function buildConfigSchema(registry: ConnectorRegistry, opts: ConfigSchemaOptions = {}) {
  const baseDir = resolve(opts.baseDir ?? process.cwd());
  const file = opts.file ?? null;
  const fileSchema = z
    .strictObject({
      store: z.strictObject({ path: z.string().min(1).default('./data/consentd.db') }).default({ path: './data/consentd.db' }),
      salt: secret(z.string().min(16, 'salt must be at least 16 characters (use a long random string, e.g. `openssl rand -hex 32`)')),
      log: z.strictObject({ level: z.enum(LOG_LEVELS).default('info'), pii: z.boolean().default(false) }).default({ level: 'info', pii: false }),
      policy: z
        .strictObject({
          clockSkew: duration().default(5 * 60_000),
          reconfirmAfter: duration().nullable().default(730 * 86_400_000),
          revokeStale: z.boolean().default(false),
          grantSources: z.array(z.string().min(1)).default([...BUILTIN_SOURCES]),
        })
        .default({ clockSkew: 5 * 60_000, reconfirmAfter: 730 * 86_400_000, revokeStale: false, grantSources: [...BUILTIN_SOURCES] }),
      purposes: z.array(purposeSchema).default([]),
      connectors: connectorsSchema(registry),
      schedule: z
        .strictObject({
          full: cron.default('0 3 * * *'),
          incremental: cron.default('*/10 * * * *'),
          reconfirm: cron.default('0 6 * * 1'),
          timezone: timezone.default('UTC'),
        })
        .default({ full: '0 3 * * *', incremental: '*/10 * * * *', reconfirm: '0 6 * * 1', timezone: 'UTC' }),
      http: z
        .strictObject({
          host: z.string().min(1).default('0.0.0.0'),
          port: z.number().int().min(0).max(65535).default(8080),
          adminTokens: z.array(secret(z.string().min(16, 'admin tokens must be at least 16 characters'))).default([]),
          bodyLimitBytes: positiveInt.default(1_048_576),
          publicUrl: z.url().optional(),
        })
        .default({ host: '0.0.0.0', port: 8080, adminTokens: [], bodyLimitBytes: 1_048_576 }),
      outbox: z
        .strictObject({
          maxAttempts: positiveInt.default(8),
          baseDelay: duration().default(1_000),
          maxDelay: duration().default(5 * 60_000),
          linger: duration().default(50),
        })
        .default({ maxAttempts: 8, baseDelay: 1_000, maxDelay: 5 * 60_000, linger: 50 }),
    })
    .superRefine(
      (raw, ctx) => {
        // Cross-field checks. `when: () => true` runs them even when other fields failed, so
        // every problem is reported at once; hence the defensive reads of a possibly bad value.
        const v = raw as unknown as Record<string, unknown>;
        const purposes = Array.isArray(v['purposes']) ? (v['purposes'] as unknown[]) : [];
        const declared = new Set<string>();
        purposes.forEach((p, i) => {
          const id = typeof p === 'object' && p !== null ? (p as Record<string, unknown>)['id'] : undefined;
          if (typeof id !== 'string') return;
          if (declared.has(id)) ctx.addIssue({ code: 'custom', path: ['purposes', i, 'id'], message: `purpose "${id}" is declared twice` });
          declared.add(id);
        });
        const connectors = Array.isArray(v['connectors']) ? (v['connectors'] as unknown[]) : [];
        const ids = new Set<string>();
        connectors.forEach((c, i) => {
          if (typeof c !== 'object' || c === null) return;
          const entry = c as Record<string, unknown>;
          const id = entry['id'];
          if (typeof id === 'string') {
            if (ids.has(id)) ctx.addIssue({ code: 'custom', path: ['connectors', i, 'id'], message: `connector id "${id}" is used twice` });
            if (RESERVED_IDS.has(id)) ctx.addIssue({ code: 'custom', path: ['connectors', i, 'id'], message: `connector id "${id}" is reserved` });
            ids.add(id);
          }
          for (const [native, canonical] of mappedPurposes(entry['settings'])) {
            if (typeof canonical === 'string' && canonical !== ALL_PURPOSES && !declared.has(canonical)) {
              ctx.addIssue({
                code: 'custom',
                path: ['connectors', i, 'settings', 'purposes', native],
                message: `maps to purpose "${canonical}", which is not declared under purposes: (declared: ${[...declared].join(', ') || 'none'})`,
              });
            }
          }
        });
        const policy = v['policy'];
        const grantSources = typeof policy === 'object' && policy !== null ? (policy as Record<string, unknown>)['grantSources'] : undefined;
        if (Array.isArray(grantSources)) {
          grantSources.forEach((s, i) => {
            if (typeof s === 'string' && !ids.has(s) && !(BUILTIN_SOURCES as readonly string[]).includes(s)) {
              ctx.addIssue({ code: 'custom', path: ['policy', 'grantSources', i], message: `"${s}" is neither ${BUILTIN_SOURCES.join(' nor ')} nor a connector id` });
            }
          });
        }
        const outbox = v['outbox'] as Record<string, unknown> | undefined;
        if (outbox && typeof outbox['baseDelay'] === 'number' && typeof outbox['maxDelay'] === 'number' && outbox['baseDelay'] > outbox['maxDelay']) {
          ctx.addIssue({ code: 'custom', path: ['outbox', 'baseDelay'], message: 'baseDelay must not exceed maxDelay' });
        }
      },
      { when: () => true },
    );

  return fileSchema.transform((f): Config => {
    const connectors: ConnectorConfig[] = f.connectors.map((c) => {
      const limits: Partial<ConnectorLimits> = {};
      for (const k of ['batchSize', 'requestsPerInterval', 'intervalMs', 'concurrency'] as const) {
        const n = c.limits[k];
        if (n !== undefined) limits[k] = n;
      }
      return { id: c.id, kind: c.kind, grants: c.grants, enabled: c.enabled, limits, settings: c.settings as unknown };
    });
    const grantSources = [...new Set([...f.policy.grantSources, ...connectors.filter((c) => c.grants).map((c) => c.id)])];
    return {
      file,
      baseDir,
      store: { path: isAbsolute(f.store.path) ? f.store.path : resolve(baseDir, f.store.path) },
      salt: f.salt,
      log: { level: f.log.level, pii: f.log.pii },
      policy: { clockSkewMs: f.policy.clockSkew, reconfirmAfterMs: f.policy.reconfirmAfter, revokeStale: f.policy.revokeStale, grantSources },
      purposes: f.purposes.map((p) => ({ id: p.id, description: p.description })),
      connectors,
      schedule: { ...f.schedule },
      http: { host: f.http.host, port: f.http.port, adminTokens: [...f.http.adminTokens], bodyLimitBytes: f.http.bodyLimitBytes, publicUrl: f.http.publicUrl ?? null },
      outbox: { maxAttempts: f.outbox.maxAttempts, baseDelayMs: f.outbox.baseDelay, maxDelayMs: f.outbox.maxDelay, lingerMs: f.outbox.linger },
    };
  });
}

export type ConfigSchema = ReturnType<typeof buildConfigSchema>;

/** Every secret value in a parsed Config (salt, admin tokens, secret connector settings). */
export function configSecrets(config: Config, registry: ConnectorRegistry): string[] {
  return collectSecrets(buildConfigSchema(registry), config);
}

/** A copy of a parsed Config with every secret replaced by "[REDACTED]" (for `consentd check`). */
export function redactedConfig(config: Config, registry: ConnectorRegistry): Config {
  return redactConfig(buildConfigSchema(registry), config);
}
