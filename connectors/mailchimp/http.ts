import axios, { type AxiosInstance } from 'axios';
import PQueue from 'p-queue';
import type { ConnectorContext } from '../../src/connectors/contract.js';
import { classifyError, retryDelayMs } from '../../src/engine/retry.js';
import { baseUrlOf, type MailchimpSettings } from './settings.js';

/**
 * The one HTTP client of the connector: axios with Basic auth (any user, the key as password),
 * a timeout, and a p-queue holding at most `maxConnections` requests in flight (Mailchimp
 * answers 429 beyond 10 simultaneous connections per key). Every call is counted through
 * ctx.onApiCall with its endpoint template. Errors are McApiError: status, Mailchimp's problem
 * title/detail and the headers, and never the request config (which holds the key).
 */

export interface McRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path under the base URL, ids already encoded: "/lists/abc/members". */
  path: string;
  /** Endpoint template for metrics: "/lists/{list_id}/members". */
  endpoint: string;
  params?: Record<string, string | number>;
  data?: unknown;
}

export interface McResponse<T> {
  status: number;
  data: T;
  /** Server time of the answer (HTTP Date header), ms; null if absent. */
  serverTime: number | null;
}

export class McApiError extends Error {
  readonly code: string | undefined;
  constructor(
    message: string,
    /** HTTP status; undefined for network errors and timeouts. */
    readonly status: number | undefined,
    readonly title: string,
    readonly headers: Record<string, unknown> | undefined,
    code?: string,
  ) {
    super(message);
    this.name = 'McApiError';
    this.code = code;
  }
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function toApiError(err: unknown, req: McRequest): McApiError {
  if (axios.isAxiosError(err)) {
    const res = err.response;
    if (res) {
      const body = obj(res.data);
      const title = typeof body?.['title'] === 'string' ? body['title'] : `HTTP ${res.status}`;
      const detail = typeof body?.['detail'] === 'string' ? body['detail'] : '';
      const fieldErrors = Array.isArray(body?.['errors'])
        ? (body['errors'] as unknown[]).map((e) => `${String(obj(e)?.['field'] ?? '')}: ${String(obj(e)?.['message'] ?? '')}`).join('; ')
        : '';
      const msg = `${req.method} ${req.endpoint}: ${title}${detail ? `: ${detail}` : ''}${fieldErrors ? ` (${fieldErrors})` : ''}`;
      return new McApiError(msg, res.status, title, { ...(res.headers as Record<string, unknown>) });
    }
    const code = err.code === 'ECONNABORTED' || err.code === 'ETIMEDOUT' ? 'ETIMEDOUT' : err.code;
    return new McApiError(`${req.method} ${req.endpoint}: ${err.message}`, undefined, 'network error', undefined, code);
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return new McApiError(`${req.method} ${req.endpoint}: ${e.message}`, undefined, 'error', undefined, (e as { code?: string }).code);
}

export interface McHttpOptions {
  /** Attempts for idempotent GETs (pull, check, webhook look-ups); pushes are never retried here. */
  getAttempts?: number;
  backoff?: { baseMs: number; maxMs: number };
}

export class McHttp {
  private readonly axios: AxiosInstance;
  private readonly queue: PQueue;
  readonly baseUrl: string;

  constructor(
    settings: Pick<MailchimpSettings, 'apiKey' | 'baseUrl' | 'maxConnections' | 'timeoutMs'>,
    private readonly ctx: Pick<ConnectorContext, 'onApiCall' | 'onRateLimitWait'>,
    private readonly opts: McHttpOptions = {},
  ) {
    this.baseUrl = baseUrlOf(settings);
    this.axios = axios.create({
      baseURL: this.baseUrl,
      auth: { username: 'consentd', password: settings.apiKey },
      timeout: settings.timeoutMs,
      headers: { 'user-agent': 'consentd', accept: 'application/json' },
      // Never follow redirects with the credential to another host.
      maxRedirects: 0,
    });
    this.queue = new PQueue({ concurrency: settings.maxConnections });
  }

  /** Requests in flight or waiting, for tests. */
  get pending(): number {
    return this.queue.pending + this.queue.size;
  }

  /** One request through the connection queue; throws McApiError. */
  async request<T>(req: McRequest): Promise<McResponse<T>> {
    const endpoint = `${req.method} ${req.endpoint}`;
    return this.queue.add(async () => {
      try {
        const res = await this.axios.request<T>({ method: req.method, url: req.path, params: req.params, data: req.data });
        this.ctx.onApiCall?.(endpoint, res.status);
        const date = res.headers['date'];
        const serverTime = typeof date === 'string' ? Date.parse(date) : NaN;
        return { status: res.status, data: res.data, serverTime: Number.isNaN(serverTime) ? null : serverTime };
      } catch (err) {
        const e = toApiError(err, req);
        this.ctx.onApiCall?.(endpoint, e.status ?? 'error');
        throw e;
      }
    });
  }

  /** A GET retried on 429 / 5xx / network errors (classifyError), with capped backoff. */
  async get<T>(req: Omit<McRequest, 'method'>): Promise<McResponse<T>> {
    const attempts = this.opts.getAttempts ?? 4;
    const backoff = this.opts.backoff ?? { baseMs: 250, maxMs: 5_000 };
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.request<T>({ ...req, method: 'GET' });
      } catch (err) {
        const verdict = classifyError(err);
        if (!verdict.retry || attempt >= attempts) throw err;
        const wait = retryDelayMs(verdict, attempt, backoff);
        if ((err as McApiError).status === 429) this.ctx.onRateLimitWait?.(wait);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  async close(): Promise<void> {
    await this.queue.onIdle();
  }
}
