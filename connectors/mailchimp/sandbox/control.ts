import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CallCounter } from '../../../src/sandbox/calls.js';
import type { FaultSettings } from '../../../src/sandbox/faults.js';
import { readJson, sendJson } from '../../../src/sandbox/http.js';
import { generatePeople, type SeedOptions } from '../../../src/sandbox/seed.js';
import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import type { WebhookSender } from '../../../src/sandbox/webhooks.js';
import type { BatchRunner } from './batches.js';
import { isRecord, type McContext } from './context.js';
import { ABUSE_REASON, emitForChange } from './members.js';
import { memberView, mcTime, subscriberHash, type ListState, type Member, type MemberStatus, type WebhookEventType, type WebhookSource } from './state.js';
import { webhookView } from './webhooks.js';

export interface ControlDeps {
  ctx: McContext;
  batches: BatchRunner;
  calls: CallCounter;
  sender: WebhookSender;
  seed(people: Iterable<SeedPerson>, listId?: string): number;
  reset(): void;
  defaultWebhookUrl: string | undefined;
}

class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function str(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== 'string' || v === '') throw new ControlError(400, `"${key}" is required`);
  return v;
}

function listOf(ctx: McContext, body: Record<string, unknown>): ListState {
  const id = typeof body['listId'] === 'string' ? body['listId'] : ctx.state.defaultListId;
  const list = ctx.state.lists.get(id);
  if (!list) throw new ControlError(404, `no list ${id}`);
  return list;
}

function memberOf(ctx: McContext, body: Record<string, unknown>, key = 'email'): { list: ListState; member: Member } {
  const list = listOf(ctx, body);
  const email = str(body, key);
  const member = list.members.get(subscriberHash(email));
  if (!member) throw new ControlError(404, `no member ${email} in list ${list.config.id}`);
  return { list, member };
}

function sourceOf(body: Record<string, unknown>, dflt: WebhookSource): WebhookSource {
  const s = body['source'];
  return s === 'user' || s === 'admin' || s === 'api' ? s : dflt;
}

/** Changes a member's status as a person or Mailchimp itself would, and emits the webhook. */
function setStatus(ctx: McContext, list: ListState, m: Member, status: MemberStatus, source: WebhookSource, reason: string | null): void {
  const before = m.status;
  const now = ctx.now();
  m.status = status;
  m.unsubscribeReason = reason;
  if (status === 'subscribed') {
    m.timestampOpt = mcTime(now);
    m.ipOpt = `203.0.113.${(m.webId % 254) + 1}`;
  }
  m.lastChanged = now;
  list.touch();
  if (before === status) {
    // Still worth a webhook when the reason changed (e.g. unsubscribed, then complained).
    if (status === 'unsubscribed') emitForChange(ctx, list, m, undefined, undefined, source);
    return;
  }
  emitForChange(ctx, list, m, before, undefined, source);
}

async function action(deps: ControlDeps, name: string, body: Record<string, unknown>): Promise<unknown> {
  const { ctx } = deps;
  switch (name) {
    case 'unsubscribe': {
      const { list, member } = memberOf(ctx, body);
      const abuse = body['reason'] === 'abuse';
      setStatus(ctx, list, member, 'unsubscribed', sourceOf(body, 'user'), abuse ? ABUSE_REASON : 'N/A (Unsubscribed by the contact)');
      return memberView(member, list.config);
    }
    case 'resubscribe': {
      // The person fills in the signup form: pending, then (unless confirm:false) confirmed.
      const list = listOf(ctx, body);
      const email = str(body, 'email');
      const hash = subscriberHash(email);
      let member = list.members.get(hash);
      if (!member) {
        list.forgotten.delete(hash);
        member = ctx.state.newMember(list.config.id, email, 'pending', ctx.now());
        member.source = 'Hosted Signup Form';
        member.timestampSignup = mcTime(ctx.now());
        list.add(member);
      } else {
        member.status = 'pending';
        member.lastChanged = ctx.now();
        list.touch();
      }
      if (body['confirm'] !== false) setStatus(ctx, list, member, 'subscribed', sourceOf(body, 'user'), null);
      return memberView(member, list.config);
    }
    case 'confirm': {
      const { list, member } = memberOf(ctx, body);
      if (member.status !== 'pending') throw new ControlError(409, `${member.email} is ${member.status}, not pending`);
      setStatus(ctx, list, member, 'subscribed', sourceOf(body, 'user'), null);
      return memberView(member, list.config);
    }
    case 'bounce': {
      const { list, member } = memberOf(ctx, body);
      setStatus(ctx, list, member, 'cleaned', sourceOf(body, 'admin'), null);
      return memberView(member, list.config);
    }
    case 'complaint': {
      // A spam complaint: unsubscribed with reason abuse (or, with as:'cleaned', cleaned/abuse).
      const { list, member } = memberOf(ctx, body);
      setStatus(ctx, list, member, body['as'] === 'cleaned' ? 'cleaned' : 'unsubscribed', sourceOf(body, 'admin'), ABUSE_REASON);
      return memberView(member, list.config);
    }
    case 'change-email': {
      const { list, member } = memberOf(ctx, body, 'old');
      const next = str(body, 'new');
      const hash = subscriberHash(next);
      if (list.members.has(hash)) throw new ControlError(409, `${next} is already a member`);
      const old = member.email;
      list.rekey(member, hash);
      member.email = next;
      member.lastChanged = ctx.now();
      emitForChange(ctx, list, member, member.status, old, sourceOf(body, 'user'));
      return memberView(member, list.config);
    }
    case 'create-webhook': {
      const list = listOf(ctx, body);
      const url = typeof body['url'] === 'string' ? body['url'] : deps.defaultWebhookUrl;
      if (!url) throw new ControlError(400, '"url" is required (no webhookUrl configured)');
      if (body['replace'] !== false) list.webhooks = list.webhooks.filter((h) => h.url !== url);
      const created = await ctx.hooks.create(
        list,
        url,
        body['events'] as WebhookEventType[] | Partial<Record<WebhookEventType, boolean>> | undefined,
        body['sources'] as WebhookSource[] | Partial<Record<WebhookSource, boolean>> | undefined,
      );
      if ('error' in created) throw new ControlError(400, created.error);
      return webhookView(created);
    }
    default:
      throw new ControlError(404, `unknown action ${name}`);
  }
}

/** The sandbox's own JSON API under /__sandbox/ (no auth, no faults). */
export async function handleControl(deps: ControlDeps, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const path = url.pathname.slice('/__sandbox'.length);
  const method = req.method ?? 'GET';
  try {
    const results = /^\/batch-results\/([^/]+)\.json$/.exec(path);
    if (results && method === 'GET') {
      const r = deps.batches.results(results[1] ?? '');
      if (!r) throw new ControlError(404, 'no such finished batch');
      return sendJson(res, 200, r);
    }
    const raw = method === 'GET' ? undefined : await readJson(req);
    const body = isRecord(raw) ? raw : {};
    if (path === '/seed' && method === 'POST') {
      const listId = typeof body['listId'] === 'string' ? body['listId'] : undefined;
      let created: number;
      if (Array.isArray(body['people'])) created = deps.seed(body['people'] as SeedPerson[], listId);
      else {
        const count = typeof body['count'] === 'number' ? body['count'] : 0;
        const seed = typeof body['seed'] === 'number' ? body['seed'] : 1;
        created = deps.seed(generatePeople(count, seed, (isRecord(body['options']) ? body['options'] : {}) as SeedOptions), listId);
      }
      return sendJson(res, 200, { created });
    }
    if (path === '/reset' && method === 'POST') {
      deps.reset();
      return sendJson(res, 200, { ok: true });
    }
    if (path === '/state/members' && method === 'GET') {
      const email = url.searchParams.get('email');
      const hash = email ? subscriberHash(email) : null;
      const out: unknown[] = [];
      const forgotten: string[] = [];
      for (const list of deps.ctx.state.lists.values()) {
        if (hash === null) {
          out.push(...list.order.map((m) => memberView(m, list.config)));
          continue;
        }
        const m = list.members.get(hash);
        if (m) out.push(memberView(m, list.config));
        if (list.forgotten.has(hash)) forgotten.push(list.config.id);
      }
      return sendJson(res, 200, { members: out, forgottenIn: forgotten });
    }
    if (path === '/state/webhooks' && method === 'GET') {
      return sendJson(res, 200, { sent: deps.ctx.hooks.sent, deliveries: deps.sender.log });
    }
    if (path === '/calls') {
      if (method === 'DELETE' || method === 'POST') deps.calls.reset();
      return sendJson(res, 200, { total: deps.calls.total, calls: deps.calls.snapshot() });
    }
    if (path === '/faults') {
      if (method === 'POST' || method === 'PUT' || method === 'PATCH') deps.ctx.faults.set(body as Partial<FaultSettings>);
      return sendJson(res, 200, deps.ctx.faults.settings);
    }
    const act = /^\/actions\/([a-z-]+)$/.exec(path);
    if (act && method === 'POST') return sendJson(res, 200, await action(deps, act[1] ?? '', body));
    throw new ControlError(404, `unknown control endpoint ${method} ${path}`);
  } catch (err) {
    const status = err instanceof ControlError ? err.status : err instanceof SyntaxError ? 400 : 500;
    sendJson(res, status, { error: err instanceof Error ? err.message : String(err) });
  }
}
