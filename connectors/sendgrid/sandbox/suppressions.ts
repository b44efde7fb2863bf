import { isRecord, nowSeconds, type ApiRequest, type ApiResponse, type SgContext } from './context.js';
import { sgError } from './errors.js';
import { pageParams } from './lists.js';

const EMAIL_RE = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

/**
 * `{recipient_emails:[...]}`, validated. With `ctx`, the partialFailureRate fault applies: SendGrid
 * has no partial success, it refuses the whole call for one address it will not take (400).
 */
export function recipientEmails(body: unknown, ctx?: SgContext): string[] {
  const list = isRecord(body) ? body['recipient_emails'] : undefined;
  if (!Array.isArray(list) || list.length === 0) throw sgError(400, 'recipient_emails is required and must be a non-empty array', 'recipient_emails');
  for (const e of list) if (typeof e !== 'string' || !EMAIL_RE.test(e) || ctx?.faults.itemFails() === true) throw sgError(400, `email address is invalid: ${String(e)}`, 'recipient_emails');
  return list as string[];
}

/**
 * Adds a global unsubscribe. `byRecipient`: the person clicked "opt out of all emails", which the
 * Event Webhook reports as `unsubscribe` (when new); an address added through the API is not an
 * event: the Event Webhook reports what recipients do, not what API callers write.
 */
export function addGlobal(ctx: SgContext, email: string, byRecipient: boolean, created = nowSeconds(ctx)): boolean {
  const isNew = !ctx.state.global.has(email);
  if (isNew) {
    ctx.state.global.add({ email, created });
    if (byRecipient) ctx.events.emit({ email, event: 'unsubscribe' }, ctx.now());
  }
  return isNew;
}

/** POST/GET/DELETE /asm/suppressions/global[/{email}] and GET /suppression/unsubscribes. */
export function globalRoute(ctx: SgContext, req: ApiRequest, email: string | null): ApiResponse {
  if (email === null) {
    if (req.method !== 'POST') throw sgError(405, 'method not allowed');
    const emails = recipientEmails(req.body, ctx);
    for (const e of emails) addGlobal(ctx, e, false);
    return { status: 201, body: { recipient_emails: emails } };
  }
  if (req.method === 'GET') {
    const entry = ctx.state.global.get(email);
    return { status: 200, body: entry ? { recipient_email: entry.email } : {} };
  }
  if (req.method === 'DELETE') {
    // SendGrid has no "resubscribe" event for global unsubscribes: nothing is emitted.
    ctx.state.global.delete(email);
    return { status: 204 };
  }
  throw sgError(405, 'method not allowed');
}

export function listUnsubscribes(ctx: SgContext, req: ApiRequest): ApiResponse {
  const { start, end, limit, offset } = pageParams(req.query);
  const page = ctx.state.global.query(start, end).slice(offset, offset + limit);
  return { status: 200, body: page.map((e) => ({ created: e.created, email: e.email })) };
}
