import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CallCounter } from '../../../src/sandbox/calls.js';
import { BodyTooLarge, readBody, sendJson } from '../../../src/sandbox/http.js';
import { dispatchAsync, endpointOf } from './api.js';
import { presentedKey } from './auth.js';
import type { BatchRunner } from './batches.js';
import type { McContext } from './context.js';
import { handleControl, type ControlDeps } from './control.js';
import { McHttpError, PROBLEM_CONTENT_TYPE, problem, tooManyConnections, type Problem } from './errors.js';

export interface ServerDeps {
  ctx: McContext;
  batches: BatchRunner;
  calls: CallCounter;
  control: ControlDeps;
  apiKey: string;
  maxConnections: number;
}

function sendProblem(res: ServerResponse, p: Problem): void {
  sendJson(res, p.status, p, {}, PROBLEM_CONTENT_TYPE);
}

/** The HTTP front: auth, the per-key connection limit, fault injection, then the API router. */
export function createHandler(deps: ServerDeps): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const inFlight = new Map<string, number>();
  let errorCount = 0;
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://sandbox.invalid');
    if (url.pathname.startsWith('/__sandbox/')) return handleControl(deps.control, req, res, url);
    const method = (req.method ?? 'GET').toUpperCase();
    if (!url.pathname.startsWith('/3.0')) {
      sendProblem(res, problem(404, 'Resource Not Found', 'The requested resource could not be found.'));
      return;
    }
    const path = url.pathname.slice('/3.0'.length) || '/';
    const endpoint = `${method} ${endpointOf(path)}`;
    const { ctx, calls } = deps;

    const key = presentedKey(req);
    if (key !== deps.apiKey) {
      calls.count(endpoint, 401);
      sendProblem(res, problem(401, 'API Key Invalid', "Your API key may be invalid, or you've attempted to access the wrong datacenter."));
      return;
    }
    // At most maxConnections simultaneous requests per key; no rate-limit headers.
    const open = inFlight.get(key) ?? 0;
    if (open >= deps.maxConnections) {
      calls.count(endpoint, 429);
      sendProblem(res, tooManyConnections(deps.maxConnections));
      return;
    }
    inFlight.set(key, open + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
    };
    res.once('close', release);
    res.once('finish', release);

    const outcome = ctx.faults.draw();
    if (ctx.faults.applyTransport(outcome, req, res)) {
      calls.count(endpoint, 0);
      return;
    }
    await ctx.faults.delay();
    if (outcome === 'error') {
      const status = errorCount++ % 2 === 0 ? 500 : 503; // alternate, deterministically
      calls.count(endpoint, status);
      sendProblem(res, status === 500 ? problem(500, 'Internal Server Error', 'An unexpected internal error has occurred. Please contact Support for more information.') : problem(503, 'Service Unavailable', 'This service is temporarily unavailable. Please try again later.'));
      return;
    }
    if (outcome === 'rate_limit') {
      calls.count(endpoint, 429);
      sendProblem(res, tooManyConnections(deps.maxConnections));
      return;
    }

    let status = 500;
    try {
      let body: unknown;
      if (method !== 'GET' && method !== 'DELETE') {
        const raw = await readBody(req);
        if (raw.length > 0) {
          try {
            body = JSON.parse(raw.toString('utf8')) as unknown;
          } catch {
            throw new McHttpError(problem(400, 'JSON Parse Error', "We encountered an unspecified JSON parsing error."));
          }
        }
      }
      const out = await dispatchAsync(ctx, deps.batches, { method, path, query: url.searchParams, body }, 'api');
      status = out.status;
      if (out.body === undefined) {
        res.writeHead(out.status);
        res.end();
      } else sendJson(res, out.status, out.body);
    } catch (err) {
      const p =
        err instanceof McHttpError
          ? err.problem
          : err instanceof BodyTooLarge
            ? problem(413, 'Request Entity Too Large', err.message)
            : problem(500, 'Internal Server Error', err instanceof Error ? err.message : String(err));
      status = p.status;
      sendProblem(res, p);
    } finally {
      calls.count(endpoint, status);
    }
  };
}
