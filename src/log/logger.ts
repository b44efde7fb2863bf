import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';
import { normalizeEmail, subjectHash } from '../model/email.js';

export type { Logger } from 'pino';

/*
 * Logs are pino JSON lines (DESIGN.md section 6). Three layers keep secrets and personal data
 * out of them:
 * 1. `redact`: values under well-known secret keys (authorization, password, token, ...) at the
 *    top level and up to two levels down, plus HTTP header paths.
 * 2. `formatters.log` (and a wrapper of `child()`, whose bindings pino does not format):
 *    values under `email` / `subject` (and `emails` / `subjects` arrays), at any depth, become
 *    subjectHash(normalized, salt) unless `pii: true`.
 * 3. `hooks.streamWrite`, on the final line: every configured secret value (from the config
 *    schema's secret() fields) becomes "[REDACTED]" wherever it appears, and, unless `pii`,
 *    every email-looking substring (in msg, err.message, err.stack, anything) becomes
 *    "[email:<hash>]".
 */

export const REDACTED = '[REDACTED]';

const SECRET_KEYS = [
  'authorization',
  'Authorization',
  'password',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'apiKey',
  'api_key',
  'token',
  'clientSecret',
  'client_secret',
  'secret',
  'privateKey',
  'cookie',
];

export const REDACT_PATHS: readonly string[] = [
  ...SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
  'headers["x-api-key"]',
  '*.headers["x-api-key"]',
  'headers["set-cookie"]',
  '*.headers["set-cookie"]',
];

/** Secrets shorter than this are not scrubbed from lines: they would shred the JSON. */
export const MIN_SCRUBBED_SECRET_LENGTH = 4;

const PII_KEYS = new Set(['email', 'subject']);
const PII_LIST_KEYS = new Set(['emails', 'subjects']);
const EMAIL_LIKE = /[\p{L}\p{N}._%+'!#$&*=?^`{|}~-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.\p{L}{2,}/gu;

export interface ScrubOptions {
  pii: boolean;
  salt: string;
  secrets: readonly string[];
}

function hashValue(v: unknown, salt: string): unknown {
  if (typeof v !== 'string') return v;
  const n = normalizeEmail(v);
  return subjectHash(n.ok ? n.email : v.trim().normalize('NFC').toLowerCase(), salt);
}

/** Copy of a log object with PII keys hashed (plain objects and arrays only; Errors kept). */
function hashPiiKeys(value: unknown, salt: string, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== 'object' || value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((v) => hashPiiKeys(v, salt, depth + 1));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (PII_KEYS.has(k)) out[k] = hashValue(v, salt);
    else if (PII_LIST_KEYS.has(k) && Array.isArray(v)) out[k] = v.map((x) => hashValue(x, salt));
    else out[k] = hashPiiKeys(v, salt, depth + 1);
  }
  return out;
}

/** A line scrubber: secrets always, email-looking substrings unless pii. Reusable for CLI output. */
export function createScrubber(opts: ScrubOptions): (line: string) => string {
  const needles = new Set<string>();
  for (const s of opts.secrets) {
    if (s.length < MIN_SCRUBBED_SECRET_LENGTH) continue;
    needles.add(s);
    needles.add(JSON.stringify(s).slice(1, -1)); // as it appears inside a JSON string
  }
  const ordered = [...needles].sort((a, b) => b.length - a.length);
  return (line) => {
    let out = line;
    for (const n of ordered) if (out.includes(n)) out = out.split(n).join(REDACTED);
    if (!opts.pii) out = out.replace(EMAIL_LIKE, (m) => `[email:${String(hashValue(m, opts.salt))}]`);
    return out;
  };
}

export interface CreateLoggerOptions extends ScrubOptions {
  level: string;
  /** Where lines go; default stdout. Tests pass a stream to capture output. */
  destination?: DestinationStream;
  /** Extra fields on every line. */
  base?: Record<string, unknown>;
}

export function createLogger(opts: CreateLoggerOptions): Logger {
  const scrub = createScrubber(opts);
  const logger = pino(
    {
      level: opts.level,
      base: { service: 'consentd', ...opts.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
      formatters: {
        ...(opts.pii ? {} : { log: (obj: Record<string, unknown>) => hashPiiKeys(obj, opts.salt) as Record<string, unknown> }),
      },
      hooks: { streamWrite: scrub },
    },
    opts.destination ?? pino.destination(1),
  );
  return opts.pii ? logger : hashChildBindings(logger, opts.salt);
}

/** pino does not run formatters on child bindings: hash PII keys of `child({ email })` here. */
function hashChildBindings(root: Logger, salt: string): Logger {
  // pino's own child(), from the prototype; children inherit from their parent via Object.create,
  // so each one gets its own wrapper calling pino's child() on itself.
  const pinoChild = root.child as unknown as (this: Logger, bindings: Record<string, unknown>, options?: unknown) => Logger;
  const wrap = (instance: Logger): Logger => {
    const child = (bindings: Record<string, unknown>, options?: unknown): Logger => wrap(pinoChild.call(instance, hashPiiKeys(bindings, salt) as Record<string, unknown>, options));
    Object.defineProperty(instance, 'child', { value: child, configurable: true, writable: true });
    return instance;
  };
  return wrap(root);
}
