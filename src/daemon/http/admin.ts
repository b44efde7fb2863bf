import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { normalizeEmail } from '../../model/email.js';
import { Channel, Purpose } from '../../model/types.js';
import { bearerToken, createTokenChecker } from './auth.js';
import { HttpError } from './errors.js';
import type { DaemonHttpDeps } from './types.js';

/*
 * Admin API under /v1 (DESIGN.md section 6), registered only when tokens are configured.
 * Every route needs `Authorization: Bearer <token>`; bodies are validated with zod (400 naming
 * the field); writes answer 202 only after the admin function resolved (durable).
 */

const email = z.string({ error: 'email is required' }).max(1024);
const evidence = z.string().trim().min(1, 'evidence must not be empty').max(4000);

const OptOutBody = z.strictObject({
  email,
  channel: Channel.default('email'),
  purpose: Purpose.default('*'),
  evidence: evidence.nullable().default(null),
});

const GrantBody = z.strictObject({
  email,
  purpose: Purpose,
  channel: Channel.default('email'),
  evidence: z.string({ error: 'evidence is required for a grant' }).pipe(evidence),
});

const EraseBody = z.strictObject({ email });

const ListQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) });
const IdParams = z.object({ id: z.coerce.number().int().positive() });

/** Parse or throw a 400 naming the first offending field. */
function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : issue?.code === 'unrecognized_keys' ? issue.keys.join(',') : '(body)';
  throw new HttpError('BAD_REQUEST', 'invalid request', { field, reason: issue?.message ?? 'invalid' });
}

function subjectOf(raw: string): string {
  const r = normalizeEmail(raw);
  if (!r.ok) throw new HttpError('INVALID_EMAIL', 'invalid email', { reason: r.reason });
  return r.email;
}

export function registerAdmin(app: FastifyInstance, deps: DaemonHttpDeps): void {
  if (deps.adminTokens.length === 0) return;
  const check = createTokenChecker(deps.adminTokens);
  const retryAfter = String(deps.retryAfterSeconds ?? 5);
  const admin = deps.admin;

  void app.register(
    async (scope) => {
      scope.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
        if (!check(bearerToken(request.headers.authorization))) {
          void reply.header('www-authenticate', 'Bearer');
          throw new HttpError('UNAUTHORIZED', 'unauthorized');
        }
        if (request.method !== 'GET' && deps.isDraining()) {
          void reply.header('retry-after', retryAfter);
          throw new HttpError('DRAINING', 'shutting down');
        }
      });

      scope.get<{ Params: { email: string } }>('/subjects/:email', async (request, reply) => {
        const subject = subjectOf(request.params.email);
        const explanation = await admin.explain(subject);
        if (explanation === null) throw new HttpError('NOT_FOUND', 'unknown subject');
        return reply.code(200).send(explanation);
      });

      scope.post('/optouts', async (request, reply) => {
        const body = parse(OptOutBody, request.body);
        const result = await admin.optOut({ ...body, email: subjectOf(body.email) });
        return reply.code(202).send({ status: 'accepted', ...(result ?? {}) });
      });

      scope.post('/grants', async (request, reply) => {
        const body = parse(GrantBody, request.body);
        const result = await admin.grant({ ...body, email: subjectOf(body.email) });
        return reply.code(202).send({ status: 'accepted', ...(result ?? {}) });
      });

      scope.post('/erasures', async (request, reply) => {
        const body = parse(EraseBody, request.body);
        const result = await admin.erase({ email: subjectOf(body.email) });
        return reply.code(202).send({ status: 'accepted', ...(result ?? {}) });
      });

      scope.get('/runs', async (request, reply) => {
        const { limit } = parse(ListQuery, request.query);
        return reply.code(200).send({ runs: await admin.listRuns(limit) });
      });

      scope.get('/dead-letters', async (request, reply) => {
        const { limit } = parse(ListQuery, request.query);
        return reply.code(200).send({ deadLetters: await admin.listDeadLetters(limit) });
      });

      scope.post('/dead-letters/:id/replay', async (request, reply) => {
        const { id } = parse(IdParams, request.params);
        if (!(await admin.replayDeadLetter(id))) throw new HttpError('NOT_FOUND', 'no such dead letter');
        return reply.code(202).send({ status: 'accepted', id });
      });
    },
    { prefix: '/v1' },
  );
}
