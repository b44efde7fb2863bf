import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CallCounter } from '../../../src/sandbox/calls.js';
import type { FaultSettings } from '../../../src/sandbox/faults.js';
import { readJson, sendJson } from '../../../src/sandbox/http.js';
import { generatePeople, type SeedOptions } from '../../../src/sandbox/seed.js';
import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import type { WebhookSender } from '../../../src/sandbox/webhooks.js';
import { isRecord, type SgContext } from './context.js';
import { groupOf, suppressInGroup, unsuppressInGroup } from './groups.js';
import { addToList } from './lists.js';
import type { EndpointRateLimiter } from './rate-limit.js';
import type { ListType } from './state.js';
import { addGlobal } from './suppressions.js';

export interface ControlDeps {
  ctx: SgContext;
  calls: CallCounter;
  sender: WebhookSender;
  limiter: EndpointRateLimiter;
  seed(people: Iterable<SeedPerson>): number;
  reset(): void;
}

class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function email(body: Record<string, unknown>): string {
  const v = body['email'];
  if (typeof v !== 'string' || v === '') throw new ControlError(400, '"email" is required');
  return v;
}

const LIST_ACTIONS: Record<string, ListType> = { bounce: 'bounces', block: 'blocks', 'spam-report': 'spam_reports', invalid: 'invalid_emails' };

function action(ctx: SgContext, name: string, body: Record<string, unknown>): unknown {
  const e = email(body);
  if (name === 'unsubscribe') {
    addGlobal(ctx, e, true);
    return ctx.state.describe(e);
  }
  if (name === 'group-unsubscribe' || name === 'group-resubscribe') {
    const id = body['groupId'] ?? body['group_id'];
    if (typeof id !== 'number' && typeof id !== 'string') throw new ControlError(400, '"groupId" is required');
    const g = groupOf(ctx, id);
    if (name === 'group-unsubscribe') suppressInGroup(ctx, g, e, true);
    else unsuppressInGroup(ctx, g, e, true);
    return ctx.state.describe(e);
  }
  const type = LIST_ACTIONS[name];
  if (type) {
    const extra: { reason?: string; status?: string } = {};
    if (typeof body['reason'] === 'string') extra.reason = body['reason'];
    if (typeof body['status'] === 'string') extra.status = body['status'];
    addToList(ctx, type, e, extra);
    return ctx.state.describe(e);
  }
  throw new ControlError(404, `unknown action ${name}`);
}

/** The sandbox's own JSON API under /__sandbox/ (no auth, no faults, no rate limits). */
export async function handleControl(deps: ControlDeps, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const path = url.pathname.slice('/__sandbox'.length);
  const method = req.method ?? 'GET';
  const { ctx } = deps;
  try {
    const raw = method === 'GET' ? undefined : await readJson(req);
    const body = isRecord(raw) ? raw : {};
    if (path === '/seed' && method === 'POST') {
      const people = Array.isArray(body['people'])
        ? (body['people'] as SeedPerson[])
        : generatePeople(typeof body['count'] === 'number' ? body['count'] : 0, typeof body['seed'] === 'number' ? body['seed'] : 1, (isRecord(body['options']) ? body['options'] : {}) as SeedOptions);
      return sendJson(res, 200, { addresses: deps.seed(people) });
    }
    if (path === '/reset' && method === 'POST') {
      deps.reset();
      return sendJson(res, 200, { ok: true });
    }
    if (path === '/state' && method === 'GET') {
      const e = url.searchParams.get('email');
      if (e) return sendJson(res, 200, ctx.state.describe(e));
      const s = ctx.state;
      return sendJson(res, 200, {
        globalUnsubscribes: s.global.size,
        groups: Object.fromEntries([...s.groups.values()].map((g) => [g.id, g.suppressions.size])),
        bounces: s.lists.bounces.size,
        blocks: s.lists.blocks.size,
        spamReports: s.lists.spam_reports.size,
        invalidEmails: s.lists.invalid_emails.size,
      });
    }
    if (path === '/events' && method === 'GET') return sendJson(res, 200, { emitted: ctx.events.emitted, deliveries: deps.sender.log });
    if (path === '/event-webhook') {
      if (method !== 'GET') {
        if ('url' in body) ctx.events.opts.url = typeof body['url'] === 'string' ? body['url'] : undefined;
        if (typeof body['duplicateRate'] === 'number') ctx.events.opts.duplicateRate = body['duplicateRate'];
        if (typeof body['outOfOrder'] === 'boolean') ctx.events.opts.outOfOrder = body['outOfOrder'];
      }
      return sendJson(res, 200, { url: ctx.events.opts.url ?? null, publicKey: ctx.events.publicKey, duplicateRate: ctx.events.opts.duplicateRate ?? 0, outOfOrder: ctx.events.opts.outOfOrder ?? false });
    }
    if (path === '/calls') {
      if (method === 'DELETE' || method === 'POST') deps.calls.reset();
      return sendJson(res, 200, { total: deps.calls.total, calls: deps.calls.snapshot() });
    }
    if (path === '/faults') {
      if (method === 'POST' || method === 'PUT' || method === 'PATCH') ctx.faults.set(body as Partial<FaultSettings>);
      return sendJson(res, 200, ctx.faults.settings);
    }
    if (path === '/rate-limit') {
      if (method !== 'GET') {
        if (typeof body['limit'] === 'number') deps.limiter.settings.limit = body['limit'];
        if (typeof body['windowMs'] === 'number') deps.limiter.settings.windowMs = body['windowMs'];
        deps.limiter.reset();
      }
      return sendJson(res, 200, deps.limiter.settings);
    }
    const act = /^\/actions\/([a-z-]+)$/.exec(path);
    if (act && method === 'POST') return sendJson(res, 200, action(ctx, act[1] ?? '', body));
    throw new ControlError(404, `unknown control endpoint ${method} ${path}`);
  } catch (err) {
    const status = err instanceof ControlError ? err.status : err instanceof SyntaxError ? 400 : typeof (err as { status?: unknown }).status === 'number' ? (err as { status: number }).status : 500;
    sendJson(res, status, { error: err instanceof Error ? err.message : String(err) });
  }
}
