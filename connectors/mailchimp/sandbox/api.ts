import { matchPath } from '../../../src/sandbox/http.js';
import type { BatchRunner } from './batches.js';
import { bulkUpsert } from './bulk.js';
import { isRecord, type ApiRequest, type ApiResponse, type McContext } from './context.js';
import { badRequest, McHttpError, notFound, problem } from './errors.js';
import { addMember, deletePermanent, getList, listMembers, memberRoute } from './members.js';
import type { WebhookEventType, WebhookSource } from './state.js';
import { webhookView } from './webhooks.js';

/** Route patterns, for the call counter ("GET /3.0/lists/{list_id}/members"). */
const PATTERNS = [
  '/lists',
  '/lists/:list_id',
  '/lists/:list_id/members',
  '/lists/:list_id/members/:subscriber_hash',
  '/lists/:list_id/members/:subscriber_hash/actions/delete-permanent',
  '/lists/:list_id/webhooks',
  '/lists/:list_id/webhooks/:webhook_id',
  '/lists/:list_id/interest-categories',
  '/lists/:list_id/interest-categories/:interest_category_id/interests',
  '/batches',
  '/batches/:batch_id',
  '/ping',
] as const;

export function endpointOf(path: string): string {
  for (const p of PATTERNS) if (matchPath(p, path)) return `/3.0${p.replace(/:([a-z_]+)/g, '{$1}')}`;
  return '/3.0/*';
}

const methodNotAllowed = (): McHttpError =>
  new McHttpError(problem(405, 'Method Not Allowed', "The requested method and resource are not compatible. See the Allow header for this resource's available methods."));

function listView(ctx: McContext, id: string): Record<string, unknown> {
  const list = getList(ctx, id);
  const counts = { subscribed: 0, unsubscribed: 0, cleaned: 0 };
  for (const m of list.order) if (m.status in counts) counts[m.status as keyof typeof counts]++;
  return {
    id: list.config.id,
    web_id: 1,
    name: list.config.name,
    marketing_permissions: list.config.marketingPermissions.length > 0,
    double_optin: false,
    stats: { member_count: counts.subscribed, unsubscribe_count: counts.unsubscribed, cleaned_count: counts.cleaned },
    _links: [],
  };
}

/** Answers one API call (from HTTP or from a batch operation). Throws McHttpError. */
export async function dispatchAsync(ctx: McContext, batches: BatchRunner, req: ApiRequest, source: WebhookSource): Promise<ApiResponse> {
  // Webhook creation awaits the validation GET; everything else is synchronous.
  const hooks = matchPath('/lists/:list_id/webhooks', req.path);
  if (hooks && req.method === 'POST') {
    const list = getList(ctx, hooks['list_id'] ?? '');
    const b = req.body;
    if (!isRecord(b) || typeof b['url'] !== 'string') throw badRequest('Invalid Resource', 'The resource submitted could not be validated: url is required.');
    const created = await ctx.hooks.create(
      list,
      b['url'],
      isRecord(b['events']) ? (b['events'] as Partial<Record<WebhookEventType, boolean>>) : undefined,
      isRecord(b['sources']) ? (b['sources'] as Partial<Record<WebhookSource, boolean>>) : undefined,
    );
    if ('error' in created) throw badRequest('Invalid Resource', created.error);
    return { status: 200, body: webhookView(created) };
  }
  return dispatch(ctx, batches, req, source);
}

export function dispatch(ctx: McContext, batches: BatchRunner, req: ApiRequest, source: WebhookSource): ApiResponse {
  const { method, path } = req;
  let m: Record<string, string> | null;
  if (path === '/ping' || path === '/') return { status: 200, body: { health_status: "Everything's Chimpy!" } };
  if (path === '/lists') {
    if (method !== 'GET') throw methodNotAllowed();
    const lists = [...ctx.state.lists.keys()].map((id) => listView(ctx, id));
    return { status: 200, body: { lists, total_items: lists.length, _links: [] } };
  }
  if ((m = matchPath('/lists/:list_id', path))) {
    const id = m['list_id'] ?? '';
    if (method === 'GET') return { status: 200, body: listView(ctx, id) };
    if (method === 'POST') return bulkUpsert(ctx, id, req, source);
    throw methodNotAllowed();
  }
  if ((m = matchPath('/lists/:list_id/members', path))) {
    if (method === 'GET') return listMembers(ctx, m['list_id'] ?? '', req);
    if (method === 'POST') return addMember(ctx, m['list_id'] ?? '', req, source);
    throw methodNotAllowed();
  }
  if ((m = matchPath('/lists/:list_id/members/:subscriber_hash', path))) {
    return memberRoute(ctx, m['list_id'] ?? '', m['subscriber_hash'] ?? '', req, source);
  }
  if ((m = matchPath('/lists/:list_id/members/:subscriber_hash/actions/delete-permanent', path))) {
    if (method !== 'POST') throw methodNotAllowed();
    return deletePermanent(ctx, m['list_id'] ?? '', m['subscriber_hash'] ?? '', source);
  }
  if ((m = matchPath('/lists/:list_id/webhooks', path))) {
    if (method !== 'GET') throw methodNotAllowed();
    const list = getList(ctx, m['list_id'] ?? '');
    return { status: 200, body: { webhooks: list.webhooks.map(webhookView), list_id: list.config.id, total_items: list.webhooks.length, _links: [] } };
  }
  if ((m = matchPath('/lists/:list_id/webhooks/:webhook_id', path))) {
    const list = getList(ctx, m['list_id'] ?? '');
    const hook = list.webhooks.find((h) => h.id === m?.['webhook_id']);
    if (!hook) throw notFound();
    if (method === 'GET') return { status: 200, body: webhookView(hook) };
    if (method === 'DELETE') {
      list.webhooks = list.webhooks.filter((h) => h !== hook);
      return { status: 204 };
    }
    throw methodNotAllowed();
  }
  if ((m = matchPath('/lists/:list_id/interest-categories', path))) {
    const list = getList(ctx, m['list_id'] ?? '');
    const categories = (list.config.interestCategories ?? []).map((c) => ({ list_id: list.config.id, id: c.id, title: c.title, display_order: 0, type: 'checkboxes' }));
    return { status: 200, body: { list_id: list.config.id, categories, total_items: categories.length, _links: [] } };
  }
  if ((m = matchPath('/lists/:list_id/interest-categories/:interest_category_id/interests', path))) {
    const list = getList(ctx, m['list_id'] ?? '');
    const cat = (list.config.interestCategories ?? []).find((c) => c.id === m?.['interest_category_id']);
    if (!cat) throw notFound();
    const interests = cat.interests.map((i, n) => ({ category_id: cat.id, list_id: list.config.id, id: i.id, name: i.name, subscriber_count: '0', display_order: n }));
    return { status: 200, body: { interests, list_id: list.config.id, category_id: cat.id, total_items: interests.length, _links: [] } };
  }
  if (path === '/batches') {
    if (method === 'POST') return batches.submit(req.body);
    if (method === 'GET') return batches.list();
    throw methodNotAllowed();
  }
  if ((m = matchPath('/batches/:batch_id', path))) {
    if (method === 'GET') return batches.get(m['batch_id'] ?? '');
    if (method === 'DELETE') return batches.remove(m['batch_id'] ?? '');
    throw methodNotAllowed();
  }
  throw notFound();
}
