import type { SendGridHttp } from './http.js';

/** Unsubscribe (ASM) groups and their suppressions. */

export interface SgGroup {
  id: number;
  name: string;
  isDefault: boolean;
}

export interface GroupSuppression {
  email: string;
  groupId: number;
  /** unix seconds; null when SendGrid gave none. */
  created: number | null;
}

export async function listGroups(http: SendGridHttp): Promise<SgGroup[]> {
  const res = await http.read<unknown>({ method: 'GET', path: '/asm/groups', endpoint: 'GET /asm/groups' });
  const raw = Array.isArray(res.data) ? (res.data as unknown[]) : [];
  const out: SgGroup[] = [];
  for (const g of raw) {
    if (typeof g !== 'object' || g === null) continue;
    const o = g as Record<string, unknown>;
    if (typeof o['id'] !== 'number') continue;
    out.push({ id: o['id'], name: typeof o['name'] === 'string' ? o['name'] : String(o['id']), isDefault: o['is_default'] === true });
  }
  return out;
}

/**
 * GET /asm/suppressions: every group suppression of the account in one answer, each with its
 * group and `created_at`. Preferred over GET /asm/groups/{id}/suppressions (bare addresses, no
 * time): with a time, a later explicit resubscribe can outrank the denial (policy rule 1),
 * whereas a denial without a time would stand forever (rule 3). The answer is not paged:
 * memory is bounded by the account's group suppressions.
 */
export async function allGroupSuppressions(http: SendGridHttp): Promise<GroupSuppression[]> {
  const res = await http.read<unknown>({ method: 'GET', path: '/asm/suppressions', endpoint: 'GET /asm/suppressions' });
  const raw = Array.isArray(res.data) ? (res.data as unknown[]) : [];
  const out: GroupSuppression[] = [];
  for (const s of raw) {
    if (typeof s !== 'object' || s === null) continue;
    const o = s as Record<string, unknown>;
    const groupId = typeof o['group_id'] === 'number' ? o['group_id'] : Number(o['group_id']);
    if (typeof o['email'] !== 'string' || !Number.isInteger(groupId)) continue;
    const created = typeof o['created_at'] === 'number' && Number.isFinite(o['created_at']) ? o['created_at'] : null;
    out.push({ email: o['email'], groupId, created });
  }
  return out;
}

/** POST /asm/groups/{id}/suppressions {recipient_emails}: idempotent. */
export async function addGroupSuppressions(http: SendGridHttp, groupId: number, emails: string[]): Promise<void> {
  await http.request({ method: 'POST', path: `/asm/groups/${groupId}/suppressions`, endpoint: 'POST /asm/groups/{group_id}/suppressions', data: { recipient_emails: emails } });
}

/** DELETE /asm/groups/{id}/suppressions/{email}: one address (SendGrid has no bulk delete). */
export async function removeGroupSuppression(http: SendGridHttp, groupId: number, email: string): Promise<void> {
  await http.request({ method: 'DELETE', path: `/asm/groups/${groupId}/suppressions/${encodeURIComponent(email)}`, endpoint: 'DELETE /asm/groups/{group_id}/suppressions/{email}' });
}

/** GET /asm/suppressions/{email}: ids of the groups that suppress this address. */
export async function groupsSuppressing(http: SendGridHttp, email: string): Promise<number[]> {
  const res = await http.request<unknown>({ method: 'GET', path: `/asm/suppressions/${encodeURIComponent(email)}`, endpoint: 'GET /asm/suppressions/{email}' });
  const list = typeof res.data === 'object' && res.data !== null ? (res.data as { suppressions?: unknown }).suppressions : undefined;
  if (!Array.isArray(list)) return [];
  const out: number[] = [];
  for (const g of list) {
    if (typeof g !== 'object' || g === null) continue;
    const o = g as Record<string, unknown>;
    if (o['suppressed'] === true && typeof o['id'] === 'number') out.push(o['id']);
  }
  return out;
}
