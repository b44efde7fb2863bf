import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CallCounter } from '../../../src/sandbox/calls.js';
import { BodyTooLarge, readBody, sendJson } from '../../../src/sandbox/http.js';
import { dispatch, routeOf } from './api.js';
import { bearerKey } from './auth.js';
import type { SgContext } from './context.js';
import { handleControl, type ControlDeps } from './control.js';
import { AUTH_REQUIRED, SgHttpError, sgErrors, TOO_MANY } from './errors.js';
import type { EndpointRateLimiter } from './rate-limit.js';

export interface ServerDeps {
  ctx: SgContext;
  calls: CallCounter;
  control: ControlDeps;
  limiter: EndpointRateLimiter;
  apiKey: string;
}

/** The HTTP front: auth, per-endpoint rate limits (headers on every answer), faults, router. */
export function createHandler(deps: ServerDeps): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  let errorCount = 0;
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://sandbox.invalid');
    if (url.pathname.startsWith('/__sandbox/')) return handleControl(deps.control, req, res, url);
    const method = (req.method ?? 'GET').toUpperCase();
    if (!url.pathname.startsWith('/v3/')) {
      sendJson(res, 404, sgErrors('not found'));
      return;
    }
    const path = url.pathname.slice('/v3'.length);
    const route = routeOf(path);
    const endpoint = `${method} ${route}`;
    const { ctx, calls, limiter } = deps;

    if (bearerKey(req) !== deps.apiKey) {
      calls.count(endpoint, 401);
      sendJson(res, 401, AUTH_REQUIRED);
      return;
    }
    const now = ctx.now();
    const rate = limiter.take(endpoint, now);
    if (!rate.allowed) {
      calls.count(endpoint, 429);
      sendJson(res, 429, TOO_MANY, rate.headers);
      return;
    }
    const outcome = ctx.faults.draw();
    if (ctx.faults.applyTransport(outcome, req, res)) {
      calls.count(endpoint, 0);
      return;
    }
    await ctx.faults.delay();
    if (outcome === 'error') {
      const status = errorCount++ % 2 === 0 ? 500 : 503; // alternate, deterministically
      calls.count(endpoint, status);
      sendJson(res, status, sgErrors(status === 500 ? 'internal server error' : 'service unavailable'), rate.headers);
      return;
    }
    if (outcome === 'rate_limit') {
      calls.count(endpoint, 429);
      sendJson(res, 429, TOO_MANY, limiter.peek(endpoint, now));
      return;
    }
    let status = 500;
    try {
      let body: unknown;
      if (method !== 'GET') {
        const raw = await readBody(req);
        if (raw.length > 0) {
          try {
            body = JSON.parse(raw.toString('utf8')) as unknown;
          } catch {
            throw new SgHttpError(400, sgErrors('Bad Request', null));
          }
        }
      }
      const out = dispatch(ctx, { method, path, query: url.searchParams, body });
      status = out.status;
      if (out.body === undefined) {
        res.writeHead(out.status, rate.headers);
        res.end();
      } else sendJson(res, out.status, out.body, rate.headers);
    } catch (err) {
      status = err instanceof SgHttpError ? err.status : err instanceof BodyTooLarge ? 413 : 500;
      sendJson(res, status, err instanceof SgHttpError ? err.body : sgErrors(err instanceof Error ? err.message : String(err)), rate.headers);
    } finally {
      calls.count(endpoint, status);
    }
  };
}
