import { isRecord, type ApiRequest, type ApiResponse, type McContext } from './context.js';
import { badRequest, complianceState, forgottenEmail, invalidResource, McHttpError, notFound, problem } from './errors.js';
import { projectFields } from './fields.js';
import { MEMBER_STATUSES, memberView, subscriberHash, mcTime, type ListState, type Member, type MemberStatus } from './state.js';
import { memberData } from './webhooks.js';
import type { WebhookSource } from './state.js';

const EMAIL_RE = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const SETTABLE: readonly MemberStatus[] = ['subscribed', 'unsubscribed', 'pending', 'transactional'];
export const API_UNSUB_REASON = 'N/A (Unsubscribed via API)';
/** unsubscribe_reason of a member who complained (the webhook then says reason=abuse). */
export const ABUSE_REASON = 'Abuse (spam complaint)';

export function getList(ctx: McContext, id: string): ListState {
  const list = ctx.state.lists.get(id);
  if (!list) throw notFound();
  return list;
}

/** `{subscriber_hash}` also accepts the email address itself, as Mailchimp does. */
export function toHash(hashOrEmail: string): string {
  return hashOrEmail.includes('@') ? subscriberHash(hashOrEmail) : hashOrEmail.toLowerCase();
}

function parseStatus(v: unknown, field: string): MemberStatus | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || !SETTABLE.includes(v as MemberStatus)) {
    throw invalidResource([{ field, message: `Schema describes enum, ${JSON.stringify(v)} found instead (allowed: ${SETTABLE.join(', ')})` }]);
  }
  return v as MemberStatus;
}

export type WriteMode = 'put' | 'patch' | 'post';

export interface WriteResult {
  member: Member;
  created: boolean;
}

function fingerprint(m: Member): string {
  return JSON.stringify([m.email, m.status, m.permissions, m.interests, m.mergeFields, m.emailType, m.timestampOpt, m.ipOpt]);
}

/**
 * Creates or updates one member with Mailchimp's rules (compliance state, forgotten emails,
 * pending double opt-in), then emits webhooks for what changed. Throws McHttpError.
 */
export function writeMember(ctx: McContext, list: ListState, hashParam: string | null, input: unknown, mode: WriteMode, source: WebhookSource): WriteResult {
  if (!isRecord(input)) throw badRequest('Invalid Resource', 'The request body must be a JSON object.');
  const emailIn = input['email_address'];
  if (emailIn !== undefined && (typeof emailIn !== 'string' || !EMAIL_RE.test(emailIn.trim()))) {
    throw badRequest('Invalid Resource', `${String(emailIn)} looks fake or invalid, please enter a real email address.`);
  }
  const email = typeof emailIn === 'string' ? emailIn.trim() : undefined;
  let hash: string;
  if (hashParam !== null) {
    hash = toHash(hashParam);
    if (mode === 'put' && email !== undefined && subscriberHash(email) !== hash) {
      throw badRequest('Invalid Resource', 'The email address does not match the subscriber hash in the URL.');
    }
  } else {
    if (email === undefined) throw invalidResource([{ field: 'email_address', message: 'This value should not be blank.' }]);
    hash = subscriberHash(email);
  }
  const status = parseStatus(input['status'], 'status');
  const statusIfNew = parseStatus(input['status_if_new'], 'status_if_new');
  const now = ctx.now();

  let m = list.members.get(hash);
  let created = false;
  const before = m ? fingerprint(m) : '';
  const beforeStatus = m?.status;
  const oldEmail = m?.email;

  if (m && mode === 'post' && m.status !== 'archived') {
    throw badRequest('Member Exists', `${m.email} is already a list member. Use PUT to insert or update list members.`);
  }
  if (!m) {
    if (mode === 'patch') throw notFound();
    if (email === undefined) throw invalidResource([{ field: 'email_address', message: 'This value should not be blank.' }]);
    if (list.forgotten.has(hash)) throw forgottenEmail(email);
    const initial = mode === 'put' ? (statusIfNew ?? status) : status;
    if (!initial) throw invalidResource([{ field: mode === 'put' ? 'status_if_new' : 'status', message: 'This value should not be blank.' }]);
    m = ctx.state.newMember(list.config.id, email, initial, now);
    m.timestampSignup = mcTime(now);
    if (initial === 'subscribed') m.timestampOpt = mcTime(now);
    if (initial === 'unsubscribed') m.unsubscribeReason = API_UNSUB_REASON;
    created = true;
  } else if (status && status !== m.status) {
    if ((m.status === 'unsubscribed' || m.status === 'cleaned') && status === 'subscribed') throw complianceState(m.email);
    m.status = status;
    if (status === 'subscribed') {
      m.timestampOpt = mcTime(now);
      m.unsubscribeReason = null;
    }
    if (status === 'unsubscribed') m.unsubscribeReason = API_UNSUB_REASON;
  } else if (m.status === 'archived' && mode !== 'patch') {
    // Re-adding an archived contact: it comes back with status_if_new.
    if (statusIfNew && statusIfNew !== 'archived') m.status = statusIfNew;
  }

  applyFields(list, m, input);

  // Email change (PATCH with another address): the member is rekeyed, Mailchimp sends upemail.
  if (!created && email !== undefined && subscriberHash(email) !== m.id) {
    const newHash = subscriberHash(email);
    if (list.members.has(newHash)) throw badRequest('Member Exists', `${email} is already a list member.`);
    if (list.forgotten.has(newHash)) throw forgottenEmail(email);
    list.rekey(m, newHash);
    m.email = email;
  } else if (!created && email !== undefined) {
    m.email = email;
  }

  if (created) list.add(m);
  const changed = created || fingerprint(m) !== before;
  if (changed) {
    m.lastChanged = now;
    list.touch();
    emitForChange(ctx, list, m, created ? undefined : beforeStatus, oldEmail, source);
  }
  return { member: m, created };
}

function applyFields(list: ListState, m: Member, input: Record<string, unknown>): void {
  const perms = input['marketing_permissions'];
  if (perms !== undefined) {
    if (!Array.isArray(perms)) throw invalidResource([{ field: 'marketing_permissions', message: 'Schema describes array' }]);
    for (const p of perms) {
      const id = isRecord(p) ? p['marketing_permission_id'] : undefined;
      if (typeof id !== 'string' || !list.config.marketingPermissions.some((x) => x.id === id)) {
        throw invalidResource([{ field: 'marketing_permissions', message: `Invalid marketing permission ID: ${String(id)}` }]);
      }
      m.permissions[id] = isRecord(p) && p['enabled'] === true;
    }
  }
  const interests = input['interests'];
  if (interests !== undefined) {
    if (!isRecord(interests)) throw invalidResource([{ field: 'interests', message: 'Schema describes object' }]);
    const known = new Set((list.config.interestCategories ?? []).flatMap((c) => c.interests.map((i) => i.id)));
    for (const [id, on] of Object.entries(interests)) {
      if (!known.has(id)) throw badRequest('Invalid Resource', `Invalid interest ID: '${id}'.`);
      m.interests[id] = on === true;
    }
  }
  const merge = input['merge_fields'];
  if (isRecord(merge)) for (const [k, v] of Object.entries(merge)) m.mergeFields[k] = String(v);
  if (input['email_type'] === 'html' || input['email_type'] === 'text') m.emailType = input['email_type'];
  if (typeof input['ip_opt'] === 'string') m.ipOpt = input['ip_opt'];
  if (typeof input['timestamp_opt'] === 'string' && input['timestamp_opt'] !== '') m.timestampOpt = mcTime(Date.parse(input['timestamp_opt']) || Date.now());
  if (typeof input['ip_signup'] === 'string') m.ipSignup = input['ip_signup'];
  if (typeof input['timestamp_signup'] === 'string' && input['timestamp_signup'] !== '') m.timestampSignup = mcTime(Date.parse(input['timestamp_signup']) || Date.now());
}

/** Webhooks for one member change, as Mailchimp words them. */
export function emitForChange(ctx: McContext, list: ListState, m: Member, beforeStatus: MemberStatus | undefined, oldEmail: string | undefined, source: WebhookSource): void {
  const emailChanged = oldEmail !== undefined && oldEmail.toLowerCase() !== m.email.toLowerCase();
  if (emailChanged) {
    ctx.hooks.emit(list, 'upemail', source, { list_id: m.listId, new_id: m.uniqueEmailId, new_email: m.email, old_email: oldEmail });
  }
  if (m.status !== beforeStatus) {
    if (m.status === 'subscribed') ctx.hooks.emit(list, 'subscribe', source, memberData(m, { ip_signup: m.ipSignup }));
    else if (m.status === 'unsubscribed') ctx.hooks.emit(list, 'unsubscribe', source, memberData(m, { action: 'unsub', reason: m.unsubscribeReason === ABUSE_REASON ? 'abuse' : 'manual', campaign_id: '' }));
    else if (m.status === 'archived') ctx.hooks.emit(list, 'unsubscribe', source, memberData(m, { action: 'delete', reason: 'manual', campaign_id: '' }));
    else if (m.status === 'cleaned') ctx.hooks.emit(list, 'cleaned', source, { list_id: m.listId, campaign_id: '', reason: m.unsubscribeReason === ABUSE_REASON ? 'abuse' : 'hard', email: m.email });
  } else if (m.status === 'subscribed' && !emailChanged) {
    // Profile updates are only reported for subscribed members; an address change is upemail.
    ctx.hooks.emit(list, 'profile', source, memberData(m));
  }
}

function parseTime(v: string | null, field: string): number | undefined {
  if (v === null || v === '') return undefined;
  const t = Date.parse(v);
  if (!Number.isFinite(t)) throw invalidResource([{ field, message: `${field} must be a valid ISO 8601 date-time` }]);
  return t;
}

function intParam(q: URLSearchParams, name: string, dflt: number): number {
  const raw = q.get(name);
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw invalidResource([{ field: name, message: `${name} must be a non-negative integer` }]);
  return n;
}

/** GET /lists/{list}/members */
export function listMembers(ctx: McContext, listId: string, req: ApiRequest): ApiResponse {
  const list = getList(ctx, listId);
  const q = req.query;
  const count = intParam(q, 'count', 10);
  if (count > 1000) throw invalidResource([{ field: 'count', message: 'count must be less than or equal to 1000' }]);
  const offset = intParam(q, 'offset', 0);
  const statusRaw = q.get('status');
  if (statusRaw && !MEMBER_STATUSES.includes(statusRaw as MemberStatus)) {
    throw invalidResource([{ field: 'status', message: `status must be one of ${MEMBER_STATUSES.join(', ')}` }]);
  }
  const matching = list.query({
    status: (statusRaw || undefined) as MemberStatus | undefined,
    since: parseTime(q.get('since_last_changed'), 'since_last_changed'),
    before: parseTime(q.get('before_last_changed'), 'before_last_changed'),
  });
  const page = matching.slice(offset, offset + count).map((m) => memberView(m, list.config));
  const body = { members: page, list_id: list.config.id, total_items: matching.length, _links: [] };
  return { status: 200, body: projectFields(body, q.get('fields'), q.get('exclude_fields')) };
}

function one(ctx: McContext, listId: string, hash: string): { list: ListState; member: Member } {
  const list = getList(ctx, listId);
  const member = list.members.get(toHash(hash));
  if (!member) throw notFound();
  return { list, member };
}

/** The /lists/{list}/members/{hash} family. */
export function memberRoute(ctx: McContext, listId: string, hash: string, req: ApiRequest, source: WebhookSource): ApiResponse {
  if (req.method === 'GET') {
    const { list, member } = one(ctx, listId, hash);
    return { status: 200, body: projectFields(memberView(member, list.config), req.query.get('fields'), req.query.get('exclude_fields')) };
  }
  if (req.method === 'PUT' || req.method === 'PATCH') {
    const list = getList(ctx, listId);
    const { member } = writeMember(ctx, list, hash, req.body, req.method === 'PUT' ? 'put' : 'patch', source);
    return { status: 200, body: memberView(member, list.config) };
  }
  if (req.method === 'DELETE') {
    const { list, member } = one(ctx, listId, hash);
    if (member.status !== 'archived') {
      const before = member.status;
      member.status = 'archived';
      member.lastChanged = ctx.now();
      list.touch();
      emitForChange(ctx, list, member, before, undefined, source);
    }
    return { status: 204 };
  }
  throw new McHttpError(problem(405, 'Method Not Allowed', `The requested method and resource are not compatible. See the Allow header for this resource's available methods.`));
}

/** POST /lists/{list}/members/{hash}/actions/delete-permanent */
export function deletePermanent(ctx: McContext, listId: string, hash: string, source: WebhookSource): ApiResponse {
  const { list, member } = one(ctx, listId, hash);
  list.remove(member.id);
  list.forgotten.add(member.id);
  ctx.hooks.emit(list, 'unsubscribe', source, memberData(member, { action: 'delete', reason: 'manual', campaign_id: '' }));
  return { status: 204 };
}

/** POST /lists/{list}/members (add one; 400 Member Exists when present). */
export function addMember(ctx: McContext, listId: string, req: ApiRequest, source: WebhookSource): ApiResponse {
  const list = getList(ctx, listId);
  const { member } = writeMember(ctx, list, null, req.body, 'post', source);
  return { status: 200, body: memberView(member, list.config) };
}
