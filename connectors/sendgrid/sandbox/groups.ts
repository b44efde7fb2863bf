import { nowSeconds, type ApiRequest, type ApiResponse, type SgContext } from './context.js';
import { sgError } from './errors.js';
import type { Group } from './state.js';
import { recipientEmails } from './suppressions.js';

export function groupOf(ctx: SgContext, id: string | number): Group {
  const g = ctx.state.groups.get(Number(id));
  if (!g) throw sgError(404, 'Group not found');
  return g;
}

function groupView(g: Group): Record<string, unknown> {
  return { id: g.id, name: g.name, description: g.description, last_email_sent_at: null, is_default: g.is_default, unsubscribes: g.suppressions.size };
}

/** Adds a group suppression; a recipient's own unsubscribe (not an API write) emits `group_unsubscribe`. */
export function suppressInGroup(ctx: SgContext, g: Group, email: string, byRecipient: boolean, created = nowSeconds(ctx)): boolean {
  if (g.suppressions.has(email)) return false;
  g.suppressions.add({ email, created });
  if (byRecipient) ctx.events.emit({ email, event: 'group_unsubscribe', asm_group_id: g.id }, ctx.now());
  return true;
}

/** Removes a group suppression; a recipient's own resubscribe (not an API write) emits `group_resubscribe`. */
export function unsuppressInGroup(ctx: SgContext, g: Group, email: string, byRecipient: boolean): boolean {
  if (!g.suppressions.delete(email)) return false;
  if (byRecipient) ctx.events.emit({ email, event: 'group_resubscribe', asm_group_id: g.id }, ctx.now());
  return true;
}

export function listGroups(ctx: SgContext): ApiResponse {
  return { status: 200, body: [...ctx.state.groups.values()].map(groupView) };
}

export function getGroup(ctx: SgContext, id: string): ApiResponse {
  return { status: 200, body: groupView(groupOf(ctx, id)) };
}

/** POST|GET /asm/groups/{id}/suppressions */
export function groupSuppressions(ctx: SgContext, id: string, req: ApiRequest): ApiResponse {
  const g = groupOf(ctx, id);
  if (req.method === 'GET') return { status: 200, body: [...g.suppressions.all()].map((e) => e.email) };
  if (req.method === 'POST') {
    const emails = recipientEmails(req.body, ctx);
    for (const e of emails) suppressInGroup(ctx, g, e, false);
    return { status: 201, body: { recipient_emails: emails } };
  }
  throw sgError(405, 'method not allowed');
}

/** POST /asm/groups/{id}/suppressions/search: which of these addresses the group suppresses. */
export function searchGroup(ctx: SgContext, id: string, req: ApiRequest): ApiResponse {
  const g = groupOf(ctx, id);
  return { status: 200, body: recipientEmails(req.body).filter((e) => g.suppressions.has(e)) };
}

export function deleteGroupSuppression(ctx: SgContext, id: string, email: string): ApiResponse {
  const g = groupOf(ctx, id);
  unsuppressInGroup(ctx, g, email, false);
  return { status: 204 };
}

/** GET /asm/suppressions/{email}: every group, with whether this address is suppressed in it. */
export function suppressionsOf(ctx: SgContext, email: string): ApiResponse {
  const suppressions = [...ctx.state.groups.values()].map((g) => ({ id: g.id, name: g.name, description: g.description, is_default: g.is_default, suppressed: g.suppressions.has(email) }));
  return { status: 200, body: { suppressions } };
}

/** GET /asm/suppressions: every group suppression. */
export function allGroupSuppressions(ctx: SgContext): ApiResponse {
  const out: unknown[] = [];
  for (const g of ctx.state.groups.values()) for (const e of g.suppressions.all()) out.push({ email: e.email, group_id: g.id, group_name: g.name, created_at: e.created });
  return { status: 200, body: out };
}
