import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLarge, matchPath, readBody, sendJson, type Handler } from '../../../src/sandbox/http.js';
import { createMany, createOne, deleteMany, deleteOne, RequestError, retrieveMany, retrieveOne, updateMany, updateOne, type Ctx } from './collections.js';
import { handleControl, type ControlDeps } from './control.js';
import { describeGlobal, describeObject } from './describe.js';
import { lowerIndex, runQuery, type CursorStore } from './query.js';
import { SoqlError } from './soql.js';

export interface ServerDeps extends ControlDeps {
  cursors: CursorStore;
  /** The newest API version served (older ones down to 20.0 are served too). */
  apiVersion: string;
  baseUrl(): string;
}

const JSON_TYPE = 'application/json;charset=UTF-8';
const DEFAULT_BATCH = 2000;

function sendText(res: ServerResponse, status: number, text: string, contentType: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** `Sforce-Query-Options: batchSize=N`, clamped to 200..2000 as Salesforce does. */
function batchSize(req: IncomingMessage): number | null {
  const h = req.headers['sforce-query-options'];
  const m = /batchSize\s*=\s*(\d+)/i.exec(Array.isArray(h) ? h.join(',') : (h ?? ''));
  return m ? Math.min(2000, Math.max(200, Number(m[1]))) : null;
}

async function jsonBody(req: IncomingMessage): Promise<unknown> {
  const raw = await readBody(req);
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch (err) {
    throw new RequestError(400, 'JSON_PARSER_ERROR', `Unexpected character: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const ROUTES = [
  '/limits',
  '/query',
  '/queryAll',
  '/query/:locator',
  '/queryAll/:locator',
  '/sobjects',
  '/sobjects/:type/describe',
  '/sobjects/:type/updated',
  '/sobjects/:type',
  '/sobjects/:type/:id',
  '/composite/sobjects',
  '/composite/sobjects/:type',
] as const;

type Respond = (status: number, body?: unknown) => void;

function methodNotAllowed(method: string, allowed: string): RequestError {
  return new RequestError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${method}' not allowed. Allowed are ${allowed}`);
}

async function route(deps: ServerDeps, req: IncomingMessage, method: string, version: string, pattern: string, p: Record<string, string>, query: URLSearchParams, respond: Respond): Promise<void> {
  const { state, cursors } = deps;
  const ctx: Ctx = { state, faults: deps.faults, version };
  const type = p['type'] ?? '';
  const table = (): NonNullable<ReturnType<typeof state.table>> => {
    const t = state.table(type);
    if (!t) throw new RequestError(404, 'NOT_FOUND', 'The requested resource does not exist');
    return t;
  };
  const only = (allowed: string): void => {
    if (!allowed.split(',').includes(method)) throw methodNotAllowed(method, allowed);
  };
  switch (pattern) {
    case '':
      only('GET');
      return respond(200, Object.fromEntries(['sobjects', 'query', 'queryAll', 'limits', 'composite'].map((k) => [k, `/services/data/v${version}/${k}`])));
    case '/limits':
      only('GET');
      return respond(200, {
        DailyApiRequests: deps.limits.snapshot(),
        DailyBulkApiBatches: { Max: 15000, Remaining: 15000 },
        DailyBulkV2QueryJobs: { Max: 10000, Remaining: 10000 },
        DailyStreamingApiEvents: { Max: 10000, Remaining: 10000 },
        DataStorageMB: { Max: 1024, Remaining: 1024 },
      });
    case '/query':
    case '/queryAll': {
      only('GET');
      const q = query.get('q');
      if (!q) throw new RequestError(400, 'MALFORMED_QUERY', 'A query string has to be specified');
      const prepared = runQuery(state, q, { all: pattern === '/queryAll', version });
      return respond(200, cursors.first(prepared, batchSize(req) ?? DEFAULT_BATCH, version));
    }
    case '/query/:locator':
    case '/queryAll/:locator': {
      only('GET');
      const page = cursors.more(p['locator'] ?? '', batchSize(req), version);
      if (!page) throw new RequestError(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
      return respond(200, page);
    }
    case '/sobjects':
      only('GET');
      return respond(200, describeGlobal(state.schema.values(), version));
    case '/sobjects/:type/describe':
      only('GET');
      return respond(200, describeObject(table().def, version));
    case '/sobjects/:type/updated': {
      only('GET');
      const t = table();
      const start = Date.parse(query.get('start') ?? '');
      const end = Date.parse(query.get('end') ?? '');
      if (Number.isNaN(start) || Number.isNaN(end)) throw new RequestError(400, 'MISSING_ARGUMENT', 'start and end must be specified');
      if (start < state.now() - 30 * 86_400_000) throw new RequestError(400, 'INVALID_REPLICATION_DATE', 'startDate cannot be more than 30 days ago');
      const ids: string[] = [];
      const rows = t.byStamp();
      for (let i = lowerIndex(rows, start); i < rows.length; i++) {
        const row = rows[i] as (typeof rows)[number];
        const s = row['SystemModstamp'] as number;
        if (s >= end) break;
        if (s >= start && !row.$deleted) ids.push(t.idOf(row));
      }
      if (ids.length > 600_000) throw new RequestError(400, 'EXCEEDED_ID_LIMIT', 'too many ids; narrow the start and end dates');
      const covered = Math.floor(Math.min(end, state.now()) / 60_000) * 60_000;
      return respond(200, { ids, latestDateCovered: new Date(covered).toISOString().replace('Z', '+0000') });
    }
    case '/sobjects/:type':
      if (method === 'POST') return respond(201, createOne(ctx, type, await jsonBody(req)));
      only('GET,POST');
      return respond(200, { objectDescribe: describeGlobal([table().def], version)['sobjects'], recentItems: [] });
    case '/sobjects/:type/:id': {
      const id = p['id'] ?? '';
      if (method === 'GET') return respond(200, retrieveOne(ctx, type, id, query.get('fields')));
      if (method === 'PATCH') {
        updateOne(ctx, type, id, await jsonBody(req));
        return respond(204);
      }
      if (method === 'DELETE') {
        deleteOne(ctx, type, id);
        return respond(204);
      }
      throw methodNotAllowed(method, 'GET,PATCH,DELETE');
    }
    case '/composite/sobjects':
      if (method === 'PATCH') return respond(200, updateMany(ctx, await jsonBody(req)));
      if (method === 'POST') return respond(200, createMany(ctx, await jsonBody(req)));
      if (method === 'DELETE') {
        const ids = (query.get('ids') ?? '').split(',').filter((s) => s !== '');
        return respond(200, deleteMany(ctx, ids, query.get('allOrNone') === 'true'));
      }
      throw methodNotAllowed(method, 'POST,PATCH,DELETE');
    case '/composite/sobjects/:type':
      only('POST');
      return respond(200, retrieveMany(ctx, type, await jsonBody(req)));
    default:
      throw new RequestError(404, 'NOT_FOUND', 'The requested resource does not exist');
  }
}

function versionServed(version: string, newest: string): boolean {
  const v = Number(version);
  return /^\d+\.0$/.test(version) && v >= 20 && v <= Number(newest);
}

async function api(deps: ServerDeps, req: IncomingMessage, res: ServerResponse, version: string, rest: string, query: URLSearchParams): Promise<void> {
  const method = req.method ?? 'GET';
  const path = rest.length > 1 && rest.endsWith('/') ? rest.slice(0, -1) : rest === '/' ? '' : rest;
  let pattern = '';
  let params: Record<string, string> = {};
  if (path !== '') {
    pattern = path;
    for (const r of ROUTES) {
      const m = matchPath(r, path);
      if (m) {
        pattern = r;
        params = m;
        break;
      }
    }
  }
  const label = `${method} /services/data/v${version}${pattern.replace(':type', params['type'] ?? ':type')}`;
  const respond: Respond = (status, body) => {
    deps.calls.count(label, status);
    const headers = { 'Sforce-Limit-Info': deps.limits.header() };
    if (status === 204) {
      res.writeHead(204, headers);
      res.end();
    } else sendJson(res, status, body, headers, JSON_TYPE);
  };
  await deps.faults.delay();
  if (!versionServed(version, deps.apiVersion)) return respond(404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
  if (!deps.auth.valid(req.headers.authorization)) return respond(401, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
  if (!deps.limits.take()) return respond(403, [{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }]);
  const outcome = deps.faults.draw();
  if (deps.faults.applyTransport(outcome, req, res)) {
    deps.calls.count(label, 0);
    return;
  }
  // 'error' is an internal error; 'rate_limit' is the overload answer Salesforce gives (503
  // SERVER_UNAVAILABLE). The daily allowance (403 REQUEST_LIMIT_EXCEEDED) is real counting above.
  if (outcome === 'error') return respond(500, [{ errorCode: 'UNKNOWN_EXCEPTION', message: 'An unexpected error occurred. Please include this ErrorId if you contact support: 1930113544-54646 (-1125012470)' }]);
  if (outcome === 'rate_limit') return respond(503, [{ errorCode: 'SERVER_UNAVAILABLE', message: 'Server is temporarily unavailable. Please try again later.' }]);
  try {
    await route(deps, req, method, version, pattern, params, query, respond);
    deps.outbound.flush();
  } catch (err) {
    if (err instanceof RequestError) return respond(err.status, err.body());
    if (err instanceof SoqlError) return respond(400, [{ message: err.message, errorCode: err.errorCode }]);
    if (err instanceof BodyTooLarge) return respond(413, [{ message: err.message, errorCode: 'REQUEST_ENTITY_TOO_LARGE' }]);
    throw err;
  }
}

export function createHandler(deps: ServerDeps): Handler {
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://sandbox.invalid');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path.startsWith('/__sandbox/')) return handleControl(deps, req, res, path.slice('/__sandbox'.length), url.searchParams);

    if (path === '/services/oauth2/token') {
      await deps.faults.delay();
      if (method !== 'POST') {
        deps.calls.count(`${method} /services/oauth2/token`, 400);
        return sendJson(res, 400, { error: 'invalid_request', error_description: 'must use HTTP POST' });
      }
      const answer = deps.auth.token(new URLSearchParams((await readBody(req)).toString('utf8')), deps.baseUrl());
      deps.calls.count('POST /services/oauth2/token', answer.status);
      return sendJson(res, answer.status, answer.body);
    }
    const soap = /^\/services\/Soap\/u\/(\d+\.\d)(?:\/.*)?$/.exec(path);
    if (soap && method === 'POST') {
      await deps.faults.delay();
      const answer = deps.auth.soapLogin((await readBody(req)).toString('utf8'), deps.baseUrl(), soap[1] ?? deps.apiVersion);
      deps.calls.count(`POST /services/Soap/u/${soap[1] ?? ''}`, answer.status);
      return sendText(res, answer.status, String(answer.body), 'text/xml;charset=UTF-8');
    }
    if (path === '/services/data' || path === '/services/data/') {
      const versions: { label: string; url: string; version: string }[] = [];
      for (let v = 20; v <= Number(deps.apiVersion); v++) versions.push({ label: `v${v}.0`, url: `/services/data/v${v}.0`, version: `${v}.0` });
      return sendJson(res, 200, versions, {}, JSON_TYPE);
    }
    const m = /^\/services\/data\/v([^/]+)(\/.*)?$/.exec(path);
    if (m) return api(deps, req, res, m[1] ?? '', m[2] ?? '', url.searchParams);
    return sendJson(res, 404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }], {}, JSON_TYPE);
  };
}
