/*
 * Pure retry classification and capped backoff (nango retry.ts habit). No I/O, no clock of its
 * own: `now` and `random` are parameters so the unit tests are deterministic.
 */

export interface RetryVerdict {
  retry: boolean;
  reason: string;
  /** What the platform asked for (Retry-After), in ms from `now`; absent when it said nothing. */
  waitMs?: number;
}

/** Network errors worth another try. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/** HTTP statuses below 500 that are nevertheless transient. */
const TRANSIENT_STATUS = new Set([408, 425, 429]);

type Headers = Record<string, unknown> | { get(name: string): unknown } | undefined;

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
}

function header(headers: Headers, name: string): string | undefined {
  if (headers === undefined) return undefined;
  let v: unknown;
  if (typeof (headers as { get?: unknown }).get === 'function') v = (headers as { get(n: string): unknown }).get(name);
  else {
    const h = headers as Record<string, unknown>;
    v = h[name] ?? Object.entries(h).find(([k]) => k.toLowerCase() === name)?.[1];
  }
  if (Array.isArray(v)) v = v[0];
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

/**
 * Retry-After: delta-seconds ("120", "1.5") or an HTTP date; ms from `now`, never negative.
 * Undefined when absent or unparseable.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const s = value.trim();
  if (s === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const at = Date.parse(s);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** HTTP status of an error in the shapes SDKs use (axios, fetch, jsforce, @hubspot/api-client). */
function statusOf(e: Record<string, unknown>): number | undefined {
  for (const v of [e['status'], e['statusCode'], obj(e['response'])?.['status'], obj(e['response'])?.['statusCode'], e['code']]) {
    if (typeof v === 'number' && v >= 100 && v < 600) return v;
  }
  return undefined;
}

function headersOf(e: Record<string, unknown>): Headers {
  const h = obj(e['headers']) ?? obj(obj(e['response'])?.['headers']);
  return h as Headers;
}

function retryAfterOf(e: Record<string, unknown>, now: number): number | undefined {
  if (typeof e['retryAfterMs'] === 'number' && e['retryAfterMs'] >= 0) return e['retryAfterMs'];
  const h = headersOf(e);
  const ms = header(h, 'retry-after-ms');
  if (ms !== undefined && /^\d+$/.test(ms.trim())) return Number(ms.trim());
  return parseRetryAfter(header(h, 'retry-after'), now);
}

function withWait(v: RetryVerdict, waitMs: number | undefined): RetryVerdict {
  return waitMs === undefined ? v : { ...v, waitMs };
}

/**
 * Should this failure be retried? Accepts a thrown error (HTTP-ish or network) or a push
 * result ({ status: 'retry' | 'failed', reason, retryAfterMs }).
 * - 429, 408, 425, 5xx, timeouts, connection resets: retry, honouring Retry-After;
 * - other 4xx and `failed` results: permanent;
 * - anything unrecognised: retried (the outbox's maxAttempts bounds it), reason says so.
 */
export function classifyError(err: unknown, now: number = Date.now()): RetryVerdict {
  const e = obj(err);
  if (e === undefined) return { retry: true, reason: `unclassified error: ${String(err)}` };

  // A PushResult.
  if (e['status'] === 'retry') return withWait({ retry: true, reason: String(e['reason'] ?? 'platform asked to retry') }, retryAfterOf(e, now));
  if (e['status'] === 'failed') return { retry: false, reason: String(e['reason'] ?? 'platform refused the change') };
  if (e['status'] === 'ok') return { retry: false, reason: 'ok' };

  const message = typeof e['message'] === 'string' ? e['message'] : String(err);
  const status = statusOf(e);
  if (status !== undefined) {
    if (status === 429) return withWait({ retry: true, reason: `rate limited (HTTP 429): ${message}` }, retryAfterOf(e, now));
    if (status >= 500 || TRANSIENT_STATUS.has(status)) return withWait({ retry: true, reason: `transient HTTP ${status}: ${message}` }, retryAfterOf(e, now));
    if (status >= 400) return { retry: false, reason: `HTTP ${status}: ${message}` };
  }

  const code = typeof e['code'] === 'string' ? e['code'] : typeof obj(e['cause'])?.['code'] === 'string' ? (obj(e['cause'])?.['code'] as string) : undefined;
  if (code !== undefined && TRANSIENT_CODES.has(code)) return { retry: true, reason: `network error ${code}: ${message}` };
  const name = typeof e['name'] === 'string' ? e['name'] : '';
  if (name === 'AbortError' || name === 'TimeoutError' || /timed? ?out/i.test(message)) return { retry: true, reason: `timeout: ${message}` };

  return { retry: true, reason: `unclassified error${code ? ` ${code}` : ''}: ${message}` };
}

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/**
 * Exponential backoff with full jitter, capped: uniform in [0, min(maxMs, baseMs * 2^(attempt-1))).
 * `attempt` is 1 for the first retry. `random` returns [0, 1).
 */
export function backoffMs(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const n = Math.max(1, Math.floor(attempt));
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(n - 1, 52));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * ceiling);
}

/** When to try again: what the platform asked for if it said, else backoff. */
export function retryDelayMs(verdict: RetryVerdict, attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  return verdict.waitMs ?? backoffMs(attempt, opts, random);
}
