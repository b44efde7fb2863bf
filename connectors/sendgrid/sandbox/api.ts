import { matchPath } from '../../../src/sandbox/http.js';
import type { ApiRequest, ApiResponse, SgContext } from './context.js';
import { sgError } from './errors.js';
import { allGroupSuppressions, deleteGroupSuppression, getGroup, groupSuppressions, listGroups, searchGroup, suppressionsOf } from './groups.js';
import { listEntryRoute, listRoute } from './lists.js';
import { LIST_TYPES, type ListType } from './state.js';
import { globalRoute, listUnsubscribes } from './suppressions.js';

const PATTERNS = [
  '/asm/suppressions/global',
  '/asm/suppressions/global/:email',
  '/asm/suppressions',
  '/asm/suppressions/:email',
  '/asm/groups',
  '/asm/groups/:group_id',
  '/asm/groups/:group_id/suppressions',
  '/asm/groups/:group_id/suppressions/search',
  '/asm/groups/:group_id/suppressions/:email',
  '/suppression/unsubscribes',
  '/suppression/:type',
  '/suppression/:type/:email',
  '/scopes',
] as const;

/** The route an answer counts against (rate limits and the call counter): "/v3/asm/groups/{group_id}". */
export function routeOf(path: string): string {
  for (const p of PATTERNS) if (matchPath(p, path)) return `/v3${p.replace(/:([a-z_]+)/g, '{$1}')}`;
  return '/v3/*';
}

function listType(t: string | undefined): ListType {
  if (!LIST_TYPES.includes(t as ListType)) throw sgError(404, 'not found');
  return t as ListType;
}

export function dispatch(ctx: SgContext, req: ApiRequest): ApiResponse {
  const { method, path } = req;
  let m: Record<string, string> | null;
  if (path === '/scopes') return { status: 200, body: { scopes: ['asm.groups.read', 'asm.groups.suppressions.create', 'asm.groups.suppressions.delete', 'asm.groups.suppressions.read', 'asm.suppressions.global.create', 'asm.suppressions.global.delete', 'asm.suppressions.global.read', 'suppression.bounces.read', 'suppression.bounces.delete', 'suppression.blocks.read', 'suppression.blocks.delete', 'suppression.spam_reports.read', 'suppression.spam_reports.delete', 'suppression.invalid_emails.read', 'suppression.invalid_emails.delete', 'suppression.unsubscribes.read'] } };
  if (path === '/asm/suppressions/global') return globalRoute(ctx, req, null);
  if ((m = matchPath('/asm/suppressions/global/:email', path))) return globalRoute(ctx, req, m['email'] ?? '');
  if (path === '/asm/suppressions' && method === 'GET') return allGroupSuppressions(ctx);
  if ((m = matchPath('/asm/suppressions/:email', path)) && method === 'GET') return suppressionsOf(ctx, m['email'] ?? '');
  if (path === '/asm/groups' && method === 'GET') return listGroups(ctx);
  if ((m = matchPath('/asm/groups/:group_id', path)) && method === 'GET') return getGroup(ctx, m['group_id'] ?? '');
  if ((m = matchPath('/asm/groups/:group_id/suppressions', path))) return groupSuppressions(ctx, m['group_id'] ?? '', req);
  if ((m = matchPath('/asm/groups/:group_id/suppressions/search', path)) && method === 'POST') return searchGroup(ctx, m['group_id'] ?? '', req);
  if ((m = matchPath('/asm/groups/:group_id/suppressions/:email', path)) && method === 'DELETE') return deleteGroupSuppression(ctx, m['group_id'] ?? '', m['email'] ?? '');
  if (path === '/suppression/unsubscribes' && method === 'GET') return listUnsubscribes(ctx, req);
  if ((m = matchPath('/suppression/:type', path))) return listRoute(ctx, listType(m['type']), req);
  if ((m = matchPath('/suppression/:type/:email', path))) return listEntryRoute(ctx, listType(m['type']), m['email'] ?? '', req);
  throw sgError(404, 'not found');
}
