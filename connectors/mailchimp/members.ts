import { createHash } from 'node:crypto';
import type { McHttp } from './http.js';
import { McApiError } from './http.js';
import { MEMBER_FIELDS, type McMember } from './mapping.js';

/** The list member resource: paging, one member, upsert, delete-permanent. */

export function subscriberHash(email: string): string {
  return createHash('md5').update(email.trim().toLowerCase()).digest('hex');
}

const enc = encodeURIComponent;

export interface MembersPage {
  members: McMember[];
  totalItems: number;
  serverTime: number | null;
}

/** GET /lists/{id}/members, `count` members from `offset`, optionally changed since an ISO time. */
export async function getMembersPage(http: McHttp, listId: string, opts: { offset: number; count: number; since?: string | null }): Promise<MembersPage> {
  const params: Record<string, string | number> = {
    count: opts.count,
    offset: opts.offset,
    fields: [...MEMBER_FIELDS.map((f) => `members.${f}`), 'total_items'].join(','),
  };
  if (opts.since) params['since_last_changed'] = opts.since;
  const res = await http.get<{ members?: McMember[]; total_items?: number }>({ path: `/lists/${enc(listId)}/members`, endpoint: '/lists/{list_id}/members', params });
  const members = Array.isArray(res.data.members) ? res.data.members : [];
  return { members, totalItems: typeof res.data.total_items === 'number' ? res.data.total_items : members.length, serverTime: res.serverTime };
}

/** GET one member by address (or hash); null when the list has no such member. */
export async function getMember(http: McHttp, listId: string, emailOrHash: string): Promise<McMember | null> {
  const hash = emailOrHash.includes('@') ? subscriberHash(emailOrHash) : emailOrHash;
  try {
    const res = await http.get<McMember>({
      path: `/lists/${enc(listId)}/members/${enc(hash)}`,
      endpoint: '/lists/{list_id}/members/{subscriber_hash}',
      params: { fields: MEMBER_FIELDS.join(',') },
    });
    return res.data;
  } catch (err) {
    if (err instanceof McApiError && err.status === 404) return null;
    throw err;
  }
}

/** PUT /lists/{id}/members/{hash} (upsert). */
export async function putMember(http: McHttp, listId: string, email: string, body: Record<string, unknown>): Promise<McMember> {
  const res = await http.request<McMember>({
    method: 'PUT',
    path: `/lists/${enc(listId)}/members/${enc(subscriberHash(email))}`,
    endpoint: '/lists/{list_id}/members/{subscriber_hash}',
    data: { email_address: email, ...body },
  });
  return res.data;
}

/** POST .../actions/delete-permanent. A member already gone (404) counts as erased. */
export async function deletePermanent(http: McHttp, listId: string, hash: string): Promise<'deleted' | 'absent'> {
  try {
    await http.request({
      method: 'POST',
      path: `/lists/${enc(listId)}/members/${enc(hash)}/actions/delete-permanent`,
      endpoint: '/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent',
    });
    return 'deleted';
  } catch (err) {
    if (err instanceof McApiError && err.status === 404) return 'absent';
    throw err;
  }
}

/** Native ids a list knows: its GDPR marketing permissions and its interests. */
export interface ListNatives {
  permissions: Set<string>;
  interests: Set<string>;
}

/**
 * Learns the list's native ids from one member (every member carries every marketing permission
 * and every interest of its list). An empty list yields empty sets.
 */
export async function sampleNatives(http: McHttp, listId: string): Promise<ListNatives> {
  const res = await http.get<{ members?: McMember[] }>({
    path: `/lists/${enc(listId)}/members`,
    endpoint: '/lists/{list_id}/members',
    params: { count: 1, offset: 0, fields: 'members.marketing_permissions,members.interests' },
  });
  const m = res.data.members?.[0];
  return nativesOf(m);
}

export function nativesOf(m: Pick<McMember, 'marketing_permissions' | 'interests'> | undefined): ListNatives {
  return {
    permissions: new Set((m?.marketing_permissions ?? []).map((p) => p.marketing_permission_id)),
    interests: new Set(Object.keys(m?.interests ?? {})),
  };
}
