import { Connection } from 'jsforce';
import type { ConnectorContext } from '../../src/connectors/contract.js';
import type { SalesforceSettings } from './settings.js';

/**
 * One jsforce Connection per connector instance: authentication (SOAP or OAuth password flow,
 * client credentials), re-authorization on 401 through jsforce's refresh delegate, a per-request
 * timeout, API call counting and the daily-usage reserve. Everything goes through the real
 * jsforce; the only hook is a thin wrapper around its transport, which sees every request and
 * response (jsforce exposes no connection-level response event).
 */

export const API_RESERVE_CODE = 'SF_API_RESERVE';
export const API_LIMIT_CODE = 'SF_API_LIMIT';
const HOUR = 3_600_000;
/** Usage knowledge older than this is refreshed by letting one call through. */
const USAGE_STALE_MS = 10 * 60_000;

/** The daily API allowance minus the configured reserve is used up: stop (pull) or retry later (push). */
export class ApiReserveError extends Error {
  readonly code = API_RESERVE_CODE;
  /** The daily limit is rolling (24 h): usage falls as old calls age out; try again in an hour. */
  readonly retryAfterMs = HOUR;
  constructor(message: string) {
    super(message);
    this.name = 'ApiReserveError';
  }
}

export interface ApiUsage {
  used: number;
  limit: number;
  /** Epoch ms of the response that said it. */
  at: number;
}

/** What jsforce's transport is called with / answers (the parts used here). */
interface HttpRequestLike {
  method: string;
  url: string;
  headers?: Record<string, string>;
}
interface HttpResponseLike {
  statusCode: number;
  headers: Record<string, string>;
}
interface TransportLike {
  httpRequest(req: HttpRequestLike, options?: Record<string, unknown>): Promise<HttpResponseLike>;
}

/** The endpoint label of a URL for metrics: ids and query locators become placeholders. */
export function endpointLabel(method: string, url: string): string {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    path = url.split('?')[0] ?? url;
  }
  const segs = path.split('/').map((s) => (/^[0-9A-Za-z]{15,18}(?:-\d+)?$/.test(s) && /\d/.test(s) ? ':id' : s));
  return `${method} ${segs.join('/')}`;
}

export function parseReserve(reserve: number | string, limit: number): number {
  if (typeof reserve === 'number') return reserve;
  return Math.ceil((limit * Number(reserve.slice(0, -1))) / 100);
}

const fmt = (n: number): string => n.toLocaleString('en-US');

export interface ClientOptions {
  now?: () => number;
}

export class SalesforceClient {
  readonly conn: Connection;
  usage: ApiUsage | null = null;
  private loggedIn: Promise<void> | null = null;
  private refreshes: number[] = [];
  private readonly now: () => number;

  constructor(
    private readonly settings: SalesforceSettings,
    private readonly ctx: ConnectorContext,
    opts: ClientOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    const auth = settings.auth;
    const oauthUrl = auth.flow === 'client_credentials' ? (settings.instanceUrl ?? settings.loginUrl) : settings.loginUrl;
    const oauth2 =
      auth.flow === 'client_credentials'
        ? { loginUrl: oauthUrl, clientId: auth.clientId, clientSecret: auth.clientSecret }
        : auth.clientId !== undefined && auth.clientSecret !== undefined
          ? { loginUrl: oauthUrl, clientId: auth.clientId, clientSecret: auth.clientSecret }
          : undefined;
    this.conn = new Connection({
      loginUrl: oauthUrl,
      version: settings.apiVersion,
      ...(settings.instanceUrl !== undefined ? { instanceUrl: settings.instanceUrl } : {}),
      ...(oauth2 ? { oauth2 } : {}),
      // Our own refresh for every flow: a 401 re-authorizes, then jsforce retries the call once.
      refreshFn: (_conn, callback) => {
        this.reauthorize().then(
          () => callback(null, this.conn.accessToken ?? undefined),
          (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
        );
      },
    });
    this.wrapTransport();
  }

  /** Counts calls, reads Sforce-Limit-Info, applies the timeout and retry policy, enforces the reserve. */
  private wrapTransport(): void {
    const holder = this.conn as unknown as { _transport: TransportLike };
    const inner = holder._transport;
    const retry = { maxRetries: this.settings.requestRetries, minTimeout: 300, timeoutFactor: 2 };
    holder._transport = {
      httpRequest: (req, options) => {
        const isLogin = /\/services\/(?:Soap\/u|oauth2)\//.test(req.url);
        if (!isLogin) this.checkReserve();
        const label = endpointLabel(req.method, req.url);
        const p = inner.httpRequest(req, { ...options, timeout: this.settings.timeoutMs, retry });
        p.then(
          (res) => {
            this.ctx.onApiCall?.(label, res.statusCode);
            const info = res.headers['sforce-limit-info'];
            const m = info ? /api-usage=(\d+)\/(\d+)/.exec(info) : null;
            if (m) this.usage = { used: Number(m[1]), limit: Number(m[2]), at: this.now() };
          },
          () => this.ctx.onApiCall?.(label, 'error'),
        );
        return p;
      },
    };
  }

  /** The reserve in calls, once the limit is known. */
  reserve(): number | null {
    return this.usage ? parseReserve(this.settings.apiReserve, this.usage.limit) : null;
  }

  reserveReached(): boolean {
    const u = this.usage;
    if (!u) return false;
    return u.used >= u.limit - parseReserve(this.settings.apiReserve, u.limit);
  }

  reserveMessage(): string {
    const u = this.usage;
    if (!u) return 'Salesforce daily API usage unknown';
    const r = this.settings.apiReserve;
    const what = typeof r === 'number' ? `reserve of ${fmt(r)} calls` : `${r} reserve`;
    return `Salesforce daily API usage ${fmt(u.used)}/${fmt(u.limit)} reached the ${what}; stopping; the cursor is saved, the next run resumes`;
  }

  /** Throws ApiReserveError when the last known usage is at the reserve (stale knowledge lets one call through). */
  checkReserve(): void {
    if (!this.reserveReached()) return;
    const u = this.usage as ApiUsage;
    if (this.now() - u.at > USAGE_STALE_MS) {
      this.usage = { ...u, at: this.now() };
      return;
    }
    throw new ApiReserveError(this.reserveMessage());
  }

  private async authenticate(): Promise<void> {
    const auth = this.settings.auth;
    if (auth.flow === 'client_credentials') {
      await this.conn.authorize({ grant_type: 'client_credentials' });
    } else if (auth.clientId !== undefined && auth.clientSecret !== undefined) {
      await this.conn.loginByOAuth2(auth.username, auth.password);
    } else {
      await this.conn.loginBySoap(auth.username, auth.password);
    }
  }

  /** Called by jsforce on a 401: logs in again. Refuses a storm (a session that dies at once, again and again). */
  private async reauthorize(): Promise<void> {
    const t = this.now();
    this.refreshes = this.refreshes.filter((x) => t - x < 60_000);
    if (this.refreshes.length >= 3) throw new Error('Salesforce rejected 3 fresh sessions within a minute (INVALID_SESSION_ID); check the user and connected app');
    this.refreshes.push(t);
    this.ctx.logger.info({ connector: this.ctx.id }, 'salesforce session expired: re-authorizing');
    await this.authenticate();
  }

  /** Logs in once (concurrent callers share the attempt; a failed attempt is retried next time). */
  ensureLogin(): Promise<void> {
    if (!this.loggedIn) {
      this.loggedIn = this.authenticate().catch((err: unknown) => {
        this.loggedIn = null;
        throw err;
      });
    }
    return this.loggedIn;
  }

  async request<T>(req: { method: string; url: string; body?: string; headers?: Record<string, string> }): Promise<T> {
    await this.ensureLogin();
    return (await this.conn.request<T>(req as Parameters<Connection['request']>[0])) as T;
  }

  /** GET /query (the first batch) with the batch size header; follow with more(). */
  query<T>(soql: string, batchSize: number): Promise<QueryBatch<T>> {
    return this.request<QueryBatch<T>>({
      method: 'GET',
      url: `/query?q=${encodeURIComponent(soql)}`,
      headers: { 'Sforce-Query-Options': `batchSize=${batchSize}` },
    });
  }

  /** The next batch of a query (nextRecordsUrl as the API gave it). */
  more<T>(nextRecordsUrl: string, batchSize: number): Promise<QueryBatch<T>> {
    return this.request<QueryBatch<T>>({ method: 'GET', url: nextRecordsUrl, headers: { 'Sforce-Query-Options': `batchSize=${batchSize}` } });
  }

  /** Every batch of a query, one at a time (memory bounded by the batch size). */
  async *batches<T>(soql: string, batchSize = 2000): AsyncGenerator<T[]> {
    let batch = await this.query<T>(soql, batchSize);
    for (;;) {
      yield batch.records;
      if (batch.done || !batch.nextRecordsUrl) return;
      batch = await this.more<T>(batch.nextRecordsUrl, batchSize);
    }
  }

  /** All rows of a (small) query. */
  async all<T>(soql: string): Promise<T[]> {
    const out: T[] = [];
    for await (const rows of this.batches<T>(soql)) out.push(...rows);
    return out;
  }

  /** GET /limits: refreshes the usage (the response header carries it too). */
  async limits(): Promise<{ DailyApiRequests?: { Max: number; Remaining: number } }> {
    const body = await this.request<{ DailyApiRequests?: { Max: number; Remaining: number } }>({ method: 'GET', url: '/limits' });
    const d = body.DailyApiRequests;
    if (d) this.usage = { used: d.Max - d.Remaining, limit: d.Max, at: this.now() };
    return body;
  }

  async close(): Promise<void> {
    // Sessions simply expire; logging out would end sessions other processes share.
    this.loggedIn = null;
    return Promise.resolve();
  }
}

export interface QueryBatch<T> {
  totalSize: number;
  done: boolean;
  nextRecordsUrl?: string;
  records: T[];
}

// -----------------------------------------------------------------------------------------------
// Error classification (a pure function, nango's retry.ts habit).

const RETRYABLE_CODES = new Set([
  'UNABLE_TO_LOCK_ROW',
  'ALL_OR_NONE_OPERATION_ROLLED_BACK',
  'UNKNOWN_EXCEPTION',
  'SERVER_UNAVAILABLE',
  'REQUEST_RUNNING_TOO_LONG',
  'QUERY_TIMEOUT',
  'INVALID_SESSION_ID',
]);
const TRANSPORT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'EPIPE', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'UND_ERR_SOCKET', 'EAI_AGAIN']);

export type Classified = { retry: true; reason: string; retryAfterMs?: number } | { retry: false; reason: string; code?: string };

/** A per-record SaveResult error code: retry or permanent failure. */
export function isRetryableCode(code: string | undefined): boolean {
  return code !== undefined && (RETRYABLE_CODES.has(code) || /^ERROR_HTTP_(?:5\d\d|429|420)$/.test(code));
}

/** A thrown error from a whole call: transport problems and 5xx retry; API refusals of the request fail. */
export function classifyError(err: unknown): Classified {
  if (err instanceof ApiReserveError) return { retry: true, reason: err.message, retryAfterMs: err.retryAfterMs };
  const e = err as { name?: string; message?: string; errorCode?: string; code?: string; type?: string } | null;
  const message = e?.message ?? String(err);
  const code = e?.errorCode;
  if (code === 'REQUEST_LIMIT_EXCEEDED') return { retry: true, reason: `Salesforce daily API limit exceeded: ${message}`, retryAfterMs: HOUR };
  if (code !== undefined && !isRetryableCode(code) && !/^ERROR_HTTP_/.test(code)) return { retry: false, reason: `${code}: ${message}`, code };
  if (code !== undefined && /^ERROR_HTTP_4\d\d$/.test(code)) return { retry: false, reason: `${code}: ${message}`, code };
  if (code !== undefined) return { retry: true, reason: `${code}: ${message}` };
  if (e?.name === 'AbortError' || e?.type === 'aborted') return { retry: true, reason: `timeout: ${message}` };
  if (e?.code !== undefined && TRANSPORT_CODES.has(e.code)) return { retry: true, reason: `${e.code}: ${message}` };
  if (e?.name === 'FetchError') return { retry: true, reason: `network: ${message}` };
  if (/refresh session/i.test(message)) return { retry: true, reason: message };
  return { retry: true, reason: message };
}
