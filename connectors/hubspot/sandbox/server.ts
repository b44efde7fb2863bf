/** Routing: control API, then auth -> rate limits -> injected faults -> handler, counting every call. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLarge, matchPath, readBody, sendJson, type Handler } from '../../../src/sandbox/http.js';
import type { CallCounter } from '../../../src/sandbox/calls.js';
import type { Random } from '../../../src/sandbox/random.js';
import { authorize } from './auth.js';
import { correlationId, hsError, HsHttpError, validation } from './errors.js';
import { handleControl, type ControlHost } from './control.js';
import { rateLimitBody, type RateLimiter } from './rate-limit.js';
import type { Core, Ctx, Route } from './types.js';

export interface ServerDeps {
  core: Core;
  routes: Route[];
  accessToken: string;
  limiter: RateLimiter;
  calls: CallCounter;
  control: ControlHost;
  /** Picks which 5xx an injected 'error' fault answers. */
  random: Random;
}

function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof HsHttpError) hsError(res, err.status, err.category, err.message, err.extra);
  else if (err instanceof BodyTooLarge) hsError(res, 413, 'VALIDATION_ERROR', err.message);
  else hsError(res, 500, 'INTERNAL_ERROR', err instanceof Error ? err.message : String(err));
}

function jsonBody(req: IncomingMessage): () => Promise<unknown> {
  let p: Promise<unknown> | undefined;
  return () =>
    (p ??= readBody(req).then((raw) => {
      if (raw.length === 0) return undefined;
      try {
        return JSON.parse(raw.toString('utf8')) as unknown;
      } catch (e) {
        throw validation(`Invalid input JSON on line 1: ${e instanceof Error ? e.message : String(e)}`);
      }
    }));
}

const INJECTED = [
  { status: 500, category: 'INTERNAL_ERROR', message: 'internal error' },
  { status: 502, category: 'BAD_GATEWAY', message: 'Bad Gateway' },
  { status: 503, category: 'SERVICE_UNAVAILABLE', message: 'Service Unavailable' },
] as const;

export function createHandler(deps: ServerDeps): Handler {
  const { core, routes, limiter, calls } = deps;
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://sandbox.invalid');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const body = jsonBody(req);

    if (path === '/__sandbox' || path.startsWith('/__sandbox/')) {
      try {
        await handleControl(deps.control, method, path, url.searchParams, body, res);
      } catch (e) {
        sendError(res, e);
      }
      return;
    }

    let route: Route | undefined;
    let params: Record<string, string> = {};
    for (const r of routes) {
      if (r.v4 && !core.commPrefsV4) continue;
      if (r.method !== method) continue;
      const p = matchPath(r.pattern, path);
      if (p) {
        route = r;
        params = p;
        break;
      }
    }
    const endpoint = `${method} ${route ? route.pattern : path}`;
    try {
      if (!authorize(req, res, deps.accessToken)) return;
      const verdict = limiter.check(route?.search === true);
      for (const [k, v] of Object.entries(limiter.headers())) res.setHeader(k, v);
      if (verdict !== 'ok') {
        sendJson(res, 429, rateLimitBody(verdict, correlationId()));
        return;
      }
      const outcome = core.faults.draw();
      if (core.faults.applyTransport(outcome, req, res)) return;
      await core.faults.delay();
      if (outcome === 'rate_limit') {
        sendJson(res, 429, rateLimitBody('TEN_SECONDLY_ROLLING', correlationId()));
        return;
      }
      if (outcome === 'error') {
        const pick = INJECTED[Math.floor(deps.random() * INJECTED.length)] ?? INJECTED[0];
        hsError(res, pick.status, pick.category, pick.message);
        return;
      }
      if (!route) {
        hsError(res, 404, 'OBJECT_NOT_FOUND', `No route for ${method} ${path}`);
        return;
      }
      const ctx: Ctx = { core, req, res, params, query: url.searchParams, body };
      await route.handler(ctx);
    } catch (e) {
      sendError(res, e);
    } finally {
      calls.count(endpoint, res.headersSent ? res.statusCode : 0);
    }
  };
}
