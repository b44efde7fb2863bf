import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { WebhookRejection } from '../../connectors/contract.js';
import type { WebhookRequest } from '../../connectors/contract.js';
import { HttpError } from './errors.js';
import type { DaemonHttpDeps } from './types.js';

/*
 * POST /webhooks/:connectorId (and GET, for handshakes such as Mailchimp's URL validation).
 * DESIGN.md section 4, instant path: verify -> persist (intake) -> answer 2xx. Nothing is
 * acknowledged before the intake resolved (durable); a failing intake answers 503 so the
 * platform retries. Bodies stay raw Buffers whatever the content type: signatures are over the
 * exact bytes, never over re-serialized JSON.
 */

export const WEBHOOK_ROUTE = '/webhooks/:connectorId';

interface Params {
  connectorId: string;
}

/** The URL as the platform signed it: publicUrl prefix or protocol + Host, plus path and query. */
export function signedUrl(request: FastifyRequest, publicUrl: string | null | undefined): string {
  const pathAndQuery = request.raw.url ?? request.url;
  if (publicUrl) return publicUrl.replace(/\/+$/, '') + pathAndQuery;
  const host = request.host || 'localhost';
  return `${request.protocol}://${host}${pathAndQuery}`;
}

export function registerWebhooks(app: FastifyInstance, deps: DaemonHttpDeps): void {
  const retryAfter = String(deps.retryAfterSeconds ?? 5);

  void app.register(async (scope) => {
    // Raw bytes for every content type (JSON, form-encoded, XML, none) in this scope only.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.bodyLimitBytes }, (_req, body, done) => {
      done(null, body);
    });

    // Before the body is read: unknown connector -> 404, draining -> 503.
    scope.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      const { connectorId } = request.params as Params;
      if (!deps.connectors.get(connectorId)?.webhook) throw new HttpError('UNKNOWN_CONNECTOR', 'no webhook for this connector');
      if (deps.isDraining()) {
        void reply.header('retry-after', retryAfter);
        throw new HttpError('DRAINING', 'shutting down');
      }
    });

    const handler = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
      const { connectorId } = request.params;
      const webhook = deps.connectors.get(connectorId)?.webhook;
      if (!webhook) throw new HttpError('UNKNOWN_CONNECTOR', 'no webhook for this connector');
      if (deps.isDraining()) {
        void reply.header('retry-after', retryAfter);
        throw new HttpError('DRAINING', 'shutting down');
      }

      const body: unknown = request.body;
      const req: WebhookRequest = {
        method: request.method,
        url: signedUrl(request, deps.publicUrl),
        headers: request.headers,
        rawBody: Buffer.isBuffer(body) ? body : Buffer.alloc(0),
        receivedAt: new Date(),
      };

      let events;
      try {
        events = await webhook.verify(req);
      } catch (err) {
        if (err instanceof WebhookRejection) {
          deps.metrics.webhookRejected(connectorId, err.reason);
          request.log.info({ connector: connectorId, reason: err.reason }, 'webhook rejected');
          return reply.code(err.status).send({ error: err.reason });
        }
        throw err;
      }

      // Handshake (e.g. Mailchimp's GET validation): verified, nothing to persist.
      if (request.method === 'GET' && events.length === 0) return reply.code(200).send({ ok: true });

      let result;
      try {
        result = await deps.intake(connectorId, events, req);
      } catch (err) {
        // The engine found the events unusable (e.g. toObservations on a malformed payload).
        if (err instanceof WebhookRejection) {
          deps.metrics.webhookRejected(connectorId, err.reason);
          request.log.info({ connector: connectorId, reason: err.reason }, 'webhook rejected by intake');
          return reply.code(err.status).send({ error: err.reason });
        }
        deps.metrics.webhookEvents(connectorId, 'failed', events.length);
        request.log.error({ connector: connectorId, err }, 'webhook intake failed; platform will retry');
        void reply.header('retry-after', retryAfter);
        throw new HttpError('INTAKE_FAILED', 'intake failed');
      }
      deps.metrics.webhookEvents(connectorId, 'accepted', result.accepted);
      deps.metrics.webhookEvents(connectorId, 'duplicate', result.duplicates);

      if (result.response) {
        return reply.code(result.response.status).type(result.response.contentType).send(result.response.body);
      }
      return reply.code(200).send({ accepted: result.accepted, duplicates: result.duplicates });
    };

    scope.post<{ Params: Params }>(WEBHOOK_ROUTE, { bodyLimit: deps.bodyLimitBytes }, handler);
    scope.get<{ Params: Params }>(WEBHOOK_ROUTE, handler);
  });
}
