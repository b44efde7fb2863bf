import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { registerAdmin } from './admin.js';
import { errorAnswer } from './errors.js';
import type { DaemonHttpDeps, Readiness } from './types.js';
import { WEBHOOK_ROUTE, registerWebhooks } from './webhooks.js';

export type { AdminApi, DaemonHttpDeps, Readiness, ReadinessCheck, WebhookIntakeFn, WebhookIntakeResult, WebhookResponseOverride } from './types.js';

/*
 * The daemon's HTTP app, built apart from listen() (fastify Testing guide): tests use inject().
 *
 * Request logging: fastify's default lines log `req.url`, query string included, and Mailchimp's
 * webhook secret lives in the query string. They are replaced by one line per request with the
 * method, the route *pattern* (`/webhooks/:connectorId`, `/v1/subjects/:email`), status and
 * duration only; child loggers get req/res serializers that cannot print a URL either.
 */

function routeOf(request: FastifyRequest): string {
  return request.routeOptions.url ?? '(unmatched)';
}

class QuietLogController extends LogController {
  constructor() {
    super({ disableRequestLogging: false });
  }
  override incomingRequest(): void {
    // one line per request, at completion
  }
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = { method: request.method, route: routeOf(request), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 };
    if (error) reply.log.error(line, 'request errored');
    else reply.log.info(line, 'request');
  }
  override defaultErrorLog(): void {
    // errors are logged by our error handler, without URL
  }
  override routeNotFound(): void {
    // the completion line says route "(unmatched)", status 404
  }
  override writeHeadError(error: Error, _request: FastifyRequest, reply: FastifyReply): void {
    reply.log.warn({ code: (error as { code?: unknown }).code }, 'writeHead failed');
  }
}

const safeSerializers = {
  req: (req: { method?: string; routeOptions?: { url?: string } }) => ({ method: req.method, route: req.routeOptions?.url }),
  res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
};

async function readiness(deps: DaemonHttpDeps): Promise<Readiness> {
  let r: Readiness;
  try {
    r = await deps.readiness();
  } catch {
    r = { ok: false, checks: { readiness: { ok: false, detail: 'readiness check failed' } } };
  }
  if (deps.isDraining()) return { ok: false, checks: { ...r.checks, draining: { ok: false, detail: 'shutting down' } } };
  return r;
}

export function buildApp(deps: DaemonHttpDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new QuietLogController(),
    childLoggerFactory: (logger, bindings, opts) => logger.child(bindings, { ...opts, serializers: safeSerializers }),
    bodyLimit: deps.bodyLimitBytes,
    trustProxy: deps.trustProxy ?? false,
    // Request ids are not taken from headers (no log injection).
    requestIdHeader: false,
  }) as unknown as FastifyInstance;

  app.setErrorHandler((err: unknown, request, reply) => {
    const { status, body } = errorAnswer(err);
    const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
    if (status === 413 && request.routeOptions.url === WEBHOOK_ROUTE) {
      const { connectorId } = request.params as { connectorId?: string };
      if (connectorId !== undefined && deps.connectors.get(connectorId)?.webhook) deps.metrics.webhookRejected(connectorId, 'too_large');
    }
    if (status >= 500) request.log.error({ err, code, route: routeOf(request) }, 'request failed');
    else request.log.info({ code, status, route: routeOf(request) }, 'request refused');
    return reply.code(status).send(body);
  });

  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'not_found' }));

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const r = await readiness(deps);
    return reply.code(r.ok ? 200 : 503).send({ status: r.ok ? 'ready' : 'not_ready', checks: r.checks });
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await deps.metrics.scrape();
    return reply.code(200).type(deps.metrics.contentType).send(text);
  });

  registerWebhooks(app, deps);
  registerAdmin(app, deps);
  return app;
}
