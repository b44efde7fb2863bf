import axios, { type AxiosInstance, type AxiosRequestConfig } from 'axios';
import type { ConnectorContext } from '../../src/connectors/contract.js';
import { classifyError, retryDelayMs } from '../../src/engine/retry.js';
import type { SendGridSettings } from './settings.js';

/**
 * The SendGrid v3 HTTP client: one axios instance (Bearer, timeout), per-endpoint rate-limit
 * bookkeeping from X-RateLimit-Remaining / -Reset, metrics hooks. Non-2xx answers become a
 * SendGridHttpError that src/engine/retry.ts classifyError understands (status, headers,
 * retryAfterMs).
 */
export class SendGridHttpError extends Error {
  readonly code = 'SENDGRID_HTTP';
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string>,
    /** From Retry-After, else X-RateLimit-Reset (429 / remaining 0); classifyError honours it. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'SendGridHttpError';
  }
}

export interface SgRequest {
  method: 'GET' | 'POST' | 'DELETE';
  /** Path under the base, with values already encoded: "/asm/groups/101/suppressions". */
  path: string;
  /** Route template for rate limits and metrics: "POST /asm/groups/{group_id}/suppressions". */
  endpoint: string;
  params?: Record<string, string | number>;
  data?: unknown;
}

export interface SgResponse<T> {
  status: number;
  data: T;
}

export interface SendGridHttpOptions {
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

const realSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function lowerHeaders(h: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof h !== 'object' || h === null) return out;
  const src = typeof (h as { toJSON?: unknown }).toJSON === 'function' ? ((h as { toJSON(): unknown }).toJSON() as Record<string, unknown>) : (h as Record<string, unknown>);
  for (const [k, v] of Object.entries(src)) {
    if (typeof v === 'string') out[k.toLowerCase()] = v;
    else if (typeof v === 'number') out[k.toLowerCase()] = String(v);
    else if (Array.isArray(v) && typeof v[0] === 'string') out[k.toLowerCase()] = v[0];
  }
  return out;
}

/** SendGrid's error body `{"errors":[{"field","message"}]}` as one line. */
export function errorMessage(status: number, body: unknown): string {
  const errors = typeof body === 'object' && body !== null ? (body as { errors?: unknown }).errors : undefined;
  if (Array.isArray(errors)) {
    const parts = errors.map((e) => {
      const o = (typeof e === 'object' && e !== null ? e : {}) as { field?: unknown; message?: unknown };
      const msg = typeof o.message === 'string' ? o.message : JSON.stringify(e);
      return typeof o.field === 'string' && o.field !== '' ? `${o.field}: ${msg}` : msg;
    });
    if (parts.length > 0) return `SendGrid HTTP ${status}: ${parts.join('; ')}`;
  }
  return `SendGrid HTTP ${status}`;
}

export class SendGridHttp {
  private readonly axios: AxiosInstance;
  /** endpoint -> window state from the last answer. */
  private readonly windows = new Map<string, { remaining: number; resetMs: number }>();
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(
    private readonly settings: SendGridSettings,
    private readonly ctx: Pick<ConnectorContext, 'onApiCall' | 'onRateLimitWait'>,
    opts: SendGridHttpOptions = {},
  ) {
    this.axios = axios.create({
      baseURL: settings.baseUrl,
      timeout: settings.timeoutMs,
      headers: { Authorization: `Bearer ${settings.apiKey}`, Accept: 'application/json' },
      validateStatus: () => true,
      // Never follow a redirect with the key to another host.
      maxRedirects: 0,
    });
    this.now = opts.now ?? ((): number => Date.now());
    this.sleep = opts.sleep ?? realSleep;
    this.random = opts.random ?? Math.random;
  }

  /** Wait out an exhausted window of this endpoint (or fail retryable when the wait is too long). */
  private async honourWindow(endpoint: string): Promise<void> {
    const w = this.windows.get(endpoint);
    if (w === undefined || w.remaining > 0) return;
    const wait = w.resetMs - this.now();
    if (wait <= 0) {
      this.windows.delete(endpoint);
      return;
    }
    if (wait > this.settings.maxRateLimitWaitMs) {
      throw new SendGridHttpError(429, `SendGrid rate limit of ${endpoint} exhausted until ${new Date(w.resetMs).toISOString()}`, {}, wait);
    }
    this.ctx.onRateLimitWait?.(wait);
    await this.sleep(wait);
    this.windows.delete(endpoint);
  }

  private remember(endpoint: string, headers: Record<string, string>): number | undefined {
    const remaining = Number(headers['x-ratelimit-remaining']);
    const reset = Number(headers['x-ratelimit-reset']);
    if (!Number.isFinite(remaining) || !Number.isFinite(reset)) return undefined;
    // Reset is whole unix seconds; +25 ms so the window has really turned when we come back.
    const resetMs = reset * 1000 + 25;
    this.windows.set(endpoint, { remaining, resetMs });
    return remaining <= 0 ? Math.max(0, resetMs - this.now()) : undefined;
  }

  /** One attempt. Throws SendGridHttpError for non-2xx, axios errors for transport failures. */
  async request<T>(req: SgRequest): Promise<SgResponse<T>> {
    await this.honourWindow(req.endpoint);
    let res;
    try {
      const config: AxiosRequestConfig = { method: req.method, url: req.path };
      if (req.params !== undefined) config.params = req.params;
      if (req.data !== undefined) config.data = req.data;
      res = await this.axios.request(config);
    } catch (err) {
      this.ctx.onApiCall?.(req.endpoint, 'error');
      throw err;
    }
    this.ctx.onApiCall?.(req.endpoint, res.status);
    const headers = lowerHeaders(res.headers);
    const resetWait = this.remember(req.endpoint, headers);
    if (res.status >= 200 && res.status < 300) return { status: res.status, data: res.data as T };
    const retryAfter = headers['retry-after'];
    let retryAfterMs: number | undefined;
    if (retryAfter !== undefined && /^\d+(\.\d+)?$/.test(retryAfter.trim())) retryAfterMs = Math.round(Number(retryAfter) * 1000);
    else if (res.status === 429) retryAfterMs = resetWait ?? 1000;
    throw new SendGridHttpError(res.status, errorMessage(res.status, res.data), headers, retryAfterMs);
  }

  /**
   * A read with retries (pull, check): transient failures (classifyError) are retried up to
   * readAttempts, waiting what SendGrid asked for or a capped backoff.
   */
  async read<T>(req: SgRequest): Promise<SgResponse<T>> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.request<T>(req);
      } catch (err) {
        const verdict = classifyError(err, this.now());
        if (!verdict.retry || attempt >= this.settings.readAttempts) throw err;
        const wait = retryDelayMs(verdict, attempt, { baseMs: 250, maxMs: 10_000 }, this.random);
        if (wait > this.settings.maxRateLimitWaitMs) throw err;
        if (verdict.waitMs !== undefined) this.ctx.onRateLimitWait?.(wait);
        await this.sleep(wait);
      }
    }
  }
}
