import { Client } from '@hubspot/api-client';
import PQueue from 'p-queue';
import type { ConnectorContext } from '../../src/connectors/contract.js';
import type { HubSpotSettings } from './settings.js';

/*
 * One HubSpot API client per connector: the SDK (CRM v3, communication preferences v3) and raw
 * requests through client.apiRequest (communication preferences v4, GDPR delete), behind one
 * limiter, with HubSpot's errors classified into retry / failed.
 *
 * Retries: the SDK is built with numberOfApiCallRetries 0. Its RetryDecorator is process-wide
 * (a later `new Client` elsewhere changes it), ignores Retry-After, only knows two 429 bodies,
 * and would hide 5xx answers from our metrics while holding a batch for up to 6 attempts. Writes
 * are retried by the engine's outbox instead (push returns `retry` with the wait the platform
 * asked for), which has backoff, jitter, a dead-letter list and idempotency keys. Reads (pull,
 * webhook resolution) are retried here a few times: they are idempotent and a pull cannot
 * answer `retry` per item.
 */

export const BATCH_MAX = 100;
export const PAGE_MAX = 100;
export const SEARCH_LIMIT = 200;
export const SEARCH_CAP = 10_000;
const TEN_SECONDS = 10_000;

/** A failed raw request (apiRequest), shaped like the SDK's ApiException. */
export class HubSpotHttpError extends Error {
  constructor(
    readonly code: number,
    readonly body: unknown,
    readonly headers: Record<string, string>,
  ) {
    super(`HTTP ${code}: ${messageOf(body) ?? 'no message'}`);
  }
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function messageOf(body: unknown): string | undefined {
  const m = obj(body)?.['message'];
  return typeof m === 'string' ? m : undefined;
}

function headerOf(headers: unknown, name: string): string | undefined {
  const h = obj(headers);
  if (!h) return undefined;
  const v = h[name] ?? Object.entries(h).find(([k]) => k.toLowerCase() === name)?.[1];
  const s = Array.isArray(v) ? (v[0] as unknown) : v;
  return typeof s === 'string' ? s : typeof s === 'number' ? String(s) : undefined;
}

const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'ENETUNREACH', 'EHOSTUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET']);

export interface Failure {
  retry: boolean;
  reason: string;
  retryAfterMs?: number;
  status?: number;
  /** HubSpot's error category (VALIDATION_ERROR, OBJECT_NOT_FOUND, RATE_LIMIT ...). */
  category?: string;
}

function untilNextUtcMidnight(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) - now + 1_000;
}

/**
 * HubSpot error -> retry or failed. 429: Retry-After when sent; DAILY -> next midnight (UTC; the
 * account's time zone is not known); SECONDLY (search) -> 1 s; ten-secondly -> the interval
 * (X-HubSpot-RateLimit-Interval-Milliseconds) when the window is spent, else 1 s. 5xx, 408 and
 * network errors / timeouts retry; other 4xx are permanent with HubSpot's message.
 */
export function classifyHubSpotError(err: unknown, now: number = Date.now()): Failure {
  const e = obj(err) ?? {};
  const status = typeof e['code'] === 'number' ? e['code'] : typeof e['status'] === 'number' ? e['status'] : undefined;
  const body = obj(e['body']) ?? (typeof e['body'] === 'string' ? safeJson(e['body']) : undefined);
  const message = messageOf(body) ?? (err instanceof Error ? err.message : String(err));
  const category = typeof body?.['category'] === 'string' ? body['category'] : typeof body?.['errorType'] === 'string' ? body['errorType'] : undefined;
  const headers = e['headers'];
  const retryAfterRaw = headerOf(headers, 'retry-after');
  const retryAfter = retryAfterRaw !== undefined && /^\d+(\.\d+)?$/.test(retryAfterRaw.trim()) ? Math.round(Number(retryAfterRaw) * 1000) : undefined;
  const withCat = (f: Failure): Failure => (category !== undefined ? { ...f, category } : f);
  if (status !== undefined) {
    if (status === 429) {
      const policy = body?.['policyName'];
      let wait = retryAfter;
      if (wait === undefined) {
        if (policy === 'DAILY') wait = untilNextUtcMidnight(now);
        else if (policy === 'SECONDLY' || /secondly limit/i.test(message)) wait = 1_000;
        // The ten-secondly window rolls: a call ages out of it every interval / max on a steady
        // load, so a second (not the whole interval, which held instant opt-outs back 10 s) will do.
        else wait = 1_000;
      }
      return withCat({ retry: true, reason: `rate limited (HTTP 429${typeof policy === 'string' ? ` ${policy}` : ''}): ${message}`, retryAfterMs: wait, status });
    }
    if (status >= 500 || status === 408) {
      const f: Failure = { retry: true, reason: `HubSpot HTTP ${status}: ${message}`, status };
      return withCat(retryAfter !== undefined ? { ...f, retryAfterMs: retryAfter } : f);
    }
    if (status >= 400) return withCat({ retry: false, reason: `HubSpot HTTP ${status}${category ? ` ${category}` : ''}: ${message}`, status });
  }
  const code = typeof e['code'] === 'string' ? e['code'] : typeof e['errno'] === 'string' ? e['errno'] : undefined;
  if (code !== undefined && TRANSIENT_CODES.has(code)) return { retry: true, reason: `network error ${code}: ${message}` };
  if (e['type'] === 'system' || /timed? ?out|socket hang up|ECONNRESET/i.test(message)) return { retry: true, reason: `network error: ${message}` };
  return { retry: true, reason: `unclassified error: ${message}` };
}

function safeJson(s: string): Record<string, unknown> | undefined {
  try {
    return obj(JSON.parse(s));
  } catch {
    return undefined;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The parts of the SDK the connector uses (typed loosely at the edges: the SDK's models are wide). */
export interface SdkContact {
  id: string;
  properties: Record<string, string | null>;
  updatedAt?: Date;
}
export interface BatchReadAnswer {
  results: SdkContact[];
  errors: Array<{ status?: string; category?: string; message?: string; context?: Record<string, string[]> }>;
}
export interface SearchBody {
  filterGroups: Array<{ filters: Array<{ propertyName: string; operator: string; value?: string }> }>;
  sorts: string[] | Array<{ propertyName: string; direction: 'ASCENDING' | 'DESCENDING' }>;
  properties: string[];
  limit: number;
  after?: string;
}
export interface SearchAnswer {
  total: number;
  results: SdkContact[];
  paging?: { next?: { after: string } };
}
export interface RawAnswer {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

export interface HubSpotApiOptions {
  settings: HubSpotSettings;
  ctx: Pick<ConnectorContext, 'onApiCall' | 'onRateLimitWait'>;
  /** Attempts for reads (pull, webhook resolution). Default 4. */
  readAttempts?: number;
  /** Longest wait between read attempts (a test lowers it). Default 10 s. */
  maxReadWaitMs?: number;
}

export class HubSpotApi {
  readonly sdk: Client;
  private readonly queue: PQueue;
  private readonly searchQueue: PQueue;
  private pauseUntil = 0;
  private readonly lowWater: number;

  constructor(private readonly o: HubSpotApiOptions) {
    const { settings } = o;
    this.sdk = new Client({
      accessToken: settings.accessToken,
      basePath: settings.basePath.replace(/\/+$/, ''),
      numberOfApiCallRetries: 0,
      middleware: [{ pre: (c: unknown) => c, post: (c: unknown) => this.observeHeaders(obj(c)?.['headers']) ?? c }],
    });
    // The SDK binds its (process-wide) decorators when an API object is first built: build ours now.
    void this.sdk.crm.contacts.basicApi;
    void this.sdk.communicationPreferences.statusApi;
    this.lowWater = Math.max(2, Math.floor(settings.limits.tenSecondly * 0.05));
    // strict = a rolling window, as HubSpot counts; lowWater calls of headroom, since HubSpot counts
    // a call when it arrives and we when we send it (and other apps may share the window).
    this.queue = new PQueue({ concurrency: settings.limits.concurrency, intervalCap: Math.max(1, settings.limits.tenSecondly - this.lowWater), interval: TEN_SECONDS, strict: true });
    this.searchQueue = new PQueue({ concurrency: 1, intervalCap: settings.limits.searchPerSecond, interval: 1_000, strict: true });
  }

  /** Reads X-HubSpot-RateLimit-* after each answer: slow down before the window is spent (other apps share it). */
  private observeHeaders(headers: unknown): undefined {
    const remaining = Number(headerOf(headers, 'x-hubspot-ratelimit-remaining'));
    const max = Number(headerOf(headers, 'x-hubspot-ratelimit-max'));
    const interval = Number(headerOf(headers, 'x-hubspot-ratelimit-interval-milliseconds') ?? TEN_SECONDS);
    if (!Number.isFinite(remaining) || !Number.isFinite(max) || max <= 0 || remaining >= this.lowWater) return undefined;
    const wait = Math.ceil((interval / max) * (this.lowWater - remaining));
    this.pauseUntil = Math.max(this.pauseUntil, Date.now() + wait);
    return undefined;
  }

  /** Runs one API call through the limiter, with a timeout, counting it. */
  async call<T>(endpoint: string, fn: () => Promise<T>, opts: { search?: boolean; status?: (r: T) => number } = {}): Promise<T> {
    const queued = Date.now();
    const run = async (): Promise<T> => {
      const pause = this.pauseUntil - Date.now();
      if (pause > 0) {
        this.o.ctx.onRateLimitWait?.(pause);
        await sleep(pause);
      }
      const waited = Date.now() - queued;
      if (waited >= 100 && pause <= 0) this.o.ctx.onRateLimitWait?.(waited);
      try {
        const r = await withTimeout(fn(), this.o.settings.timeoutMs);
        this.o.ctx.onApiCall?.(endpoint, opts.status ? opts.status(r) : 200);
        return r;
      } catch (e) {
        const s = obj(e)?.['code'];
        this.o.ctx.onApiCall?.(endpoint, typeof s === 'number' ? s : 'error');
        throw e;
      }
    };
    if (opts.search) return this.searchQueue.add(() => this.queue.add(run));
    return this.queue.add(run);
  }

  /** A read retried on transient failures (idempotent). */
  async read<T>(endpoint: string, fn: () => Promise<T>, opts: { search?: boolean } = {}): Promise<T> {
    const attempts = this.o.readAttempts ?? 4;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.call(endpoint, fn, opts);
      } catch (e) {
        const f = classifyHubSpotError(e);
        if (!f.retry || attempt >= attempts) throw e;
        const wait = Math.min(f.retryAfterMs ?? 250 * 2 ** attempt * (0.5 + Math.random() / 2), this.o.maxReadWaitMs ?? 10_000);
        this.o.ctx.onRateLimitWait?.(wait);
        await sleep(wait);
      }
    }
  }

  getPage(limit: number, after: string | undefined, properties: string[]): Promise<{ results: SdkContact[]; paging?: { next?: { after: string } } }> {
    return this.read('GET /crm/v3/objects/contacts', () => this.sdk.crm.contacts.basicApi.getPage(limit, after, properties, undefined, undefined, false));
  }

  async batchRead(ids: string[], properties: string[], archived = false): Promise<BatchReadAnswer> {
    const r = await this.read('POST /crm/v3/objects/contacts/batch/read', () =>
      this.sdk.crm.contacts.batchApi.read({ inputs: ids.map((id) => ({ id })), properties, propertiesWithHistory: [] }, archived),
    );
    const errors = (r as { errors?: BatchReadAnswer['errors'] }).errors ?? [];
    return { results: r.results, errors };
  }

  search(body: SearchBody): Promise<SearchAnswer> {
    // The SDK's model types sorts as string[]; HubSpot (and the sandbox) accept {propertyName, direction} objects too.
    return this.read('POST /crm/v3/objects/contacts/search', () => this.sdk.crm.contacts.searchApi.doSearch(body as never) as Promise<SearchAnswer>, { search: true });
  }

  /** A raw request (v4 comm prefs, GDPR delete); 2xx (incl. 207) resolves, anything else throws HubSpotHttpError. */
  raw(method: 'GET' | 'POST', path: string, body?: unknown, qs?: Record<string, string>): Promise<RawAnswer> {
    const endpoint = `${method} ${path.replace(/\/statuses\/[^/]+@[^/]+/, '/statuses/{email}')}`;
    const send = async (): Promise<RawAnswer> => {
      const res = await this.sdk.apiRequest({ method, path, ...(body !== undefined ? { body } : {}), ...(qs ? { qs } : {}) });
      const headers: Record<string, string> = {};
      res.headers.forEach((v, k) => {
        headers[k] = v;
      });
      this.observeHeaders(headers);
      const text = await res.text();
      const parsed = text === '' ? undefined : (safeJson(text) ?? text);
      if (res.status >= 400) throw new HubSpotHttpError(res.status, parsed, headers);
      return { status: res.status, body: parsed, headers };
    };
    return this.call(endpoint, send, { status: (r) => r.status });
  }

  /** Raw read, retried on transient failures. */
  async rawRead(method: 'GET' | 'POST', path: string, body?: unknown, qs?: Record<string, string>): Promise<RawAnswer> {
    const attempts = this.o.readAttempts ?? 4;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.raw(method, path, body, qs);
      } catch (e) {
        const f = classifyHubSpotError(e);
        if (!f.retry || attempt >= attempts) throw e;
        const wait = Math.min(f.retryAfterMs ?? 250 * 2 ** attempt, this.o.maxReadWaitMs ?? 10_000);
        this.o.ctx.onRateLimitWait?.(wait);
        await sleep(wait);
      }
    }
  }

  v3Definitions(): Promise<Array<{ id: string; name: string }>> {
    return this.read('GET /communication-preferences/v3/definitions', async () => (await this.sdk.communicationPreferences.definitionApi.getPage()).subscriptionDefinitions);
  }

  v3Unsubscribe(emailAddress: string, subscriptionId: string): Promise<unknown> {
    return this.call('POST /communication-preferences/v3/unsubscribe', () => this.sdk.communicationPreferences.statusApi.unsubscribe({ emailAddress, subscriptionId }));
  }

  /** How many calls wait in the limiter (tests, metrics). */
  get pending(): number {
    return this.queue.size + this.queue.pending + this.searchQueue.size;
  }

  close(): void {
    this.queue.clear();
    this.searchQueue.clear();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(Object.assign(new Error(`HubSpot did not answer within ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
