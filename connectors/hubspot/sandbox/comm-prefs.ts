/**
 * Communication preferences. v3 is what the SDK wraps (definitionApi / statusApi); v4 (called
 * with client.apiRequest) follows HubSpot's public reference: statuses per subscriber
 * (email) and channel, batch read/write/unsubscribe-all, 'statusState' on writes and
 * 'status' on reads, results wrapped in `{status:'COMPLETE', results, startedAt, completedAt}`.
 */
import { sendJson } from '../../../src/sandbox/http.js';
import { validation, type StandardError } from './errors.js';
import { isLegalBasis, type HubSpotState, type LegalBasis, type StatusView, type SubState, type WideView } from './state.js';
import type { Ctx, Route } from './types.js';

export const API_SOURCE = 'PUBLIC_STATUS_API';
export const V4_BATCH_MAX = 100;
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function objBody(ctx: Ctx): Promise<Record<string, unknown>> {
  const b = await ctx.body();
  if (!isObj(b)) throw validation('Invalid input JSON: expected an object');
  return b;
}

function email(v: unknown): string {
  if (typeof v !== 'string' || !EMAIL_RE.test(v.trim())) throw validation(`${String(v)} is not a valid email address`);
  return v.trim();
}

function basis(v: unknown): LegalBasis | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isLegalBasis(v)) throw validation(`Invalid legalBasis ${String(v)}`);
  return v;
}

function subId(state: HubSpotState, v: unknown): string {
  const id = typeof v === 'number' ? String(v) : typeof v === 'string' ? v : '';
  if (state.typeIndex(id) < 0) throw validation(`Subscription ${String(v)} does not exist`);
  return id;
}

// ---------------- v3 ----------------

function v3Status(st: StatusView, wide: WideView, state: HubSpotState): Record<string, unknown> {
  const t = state.subscriptionTypes[state.typeIndex(st.subscriptionId)];
  const out: Record<string, unknown> = {
    id: st.subscriptionId,
    name: st.name,
    description: t?.description ?? st.name,
    status: wide.status === 'UNSUBSCRIBED' ? 'NOT_SUBSCRIBED' : st.status === 'SUBSCRIBED' ? 'SUBSCRIBED' : 'NOT_SUBSCRIBED',
    sourceOfStatus: wide.status === 'UNSUBSCRIBED' ? 'PORTAL_WIDE_STATUS' : 'SUBSCRIPTION_STATUS',
  };
  if (st.legalBasis) out['legalBasis'] = st.legalBasis;
  if (st.legalBasisExplanation) out['legalBasisExplanation'] = st.legalBasisExplanation;
  return out;
}

function definitions(ctx: Ctx): void {
  const subscriptionDefinitions = ctx.core.state.subscriptionTypes.map((t, i) => ({
    id: t.id,
    name: t.name,
    description: t.description,
    purpose: t.purpose,
    communicationMethod: 'Email',
    isActive: true,
    isDefault: i === 0,
    isInternal: false,
    createdAt: t.createdAt,
    updatedAt: t.createdAt,
    businessUnitId: 0,
  }));
  sendJson(ctx.res, 200, { subscriptionDefinitions });
}

function v3GetStatus(ctx: Ctx): void {
  const { state } = ctx.core;
  const addr = ctx.params['email'] ?? '';
  const wide = state.wideStatus(addr);
  sendJson(ctx.res, 200, { recipient: addr, subscriptionStatuses: state.statuses(addr).map((s) => v3Status(s, wide, state)) });
}

async function v3Change(ctx: Ctx, to: 'SUBSCRIBED' | 'UNSUBSCRIBED'): Promise<void> {
  const { state, apiCtx } = ctx.core;
  const b = await objBody(ctx);
  const addr = email(b['emailAddress']);
  const id = subId(state, b['subscriptionId']);
  const legalBasis = basis(b['legalBasis']);
  const explanation = typeof b['legalBasisExplanation'] === 'string' ? b['legalBasisExplanation'] : undefined;
  const cur = state.status(addr, id);
  const wide = state.wideStatus(addr);
  if (to === 'SUBSCRIBED') {
    // v3 cannot resubscribe someone who opted out (of this type or of all email).
    if (wide.status === 'UNSUBSCRIBED' || cur?.status === 'UNSUBSCRIBED') {
      throw validation(`${addr} has opted out and cannot be resubscribed to subscription ${id} through the v3 API`);
    }
    if (cur?.status === 'SUBSCRIBED') throw validation(`${addr} is already subscribed to subscription ${id}`);
  } else if (cur?.status === 'UNSUBSCRIBED') {
    throw validation(`${addr} is already unsubscribed from subscription ${id}`);
  }
  state.setStatus(addr, id, to, { source: API_SOURCE, legalBasis: legalBasis ?? null, legalBasisExplanation: explanation ?? null }, apiCtx);
  const st = state.status(addr, id);
  if (!st) throw validation(`Subscription ${id} does not exist`);
  sendJson(ctx.res, 200, v3Status(st, state.wideStatus(addr), state));
}

// ---------------- v4 ----------------

function channel(ctx: Ctx, fromBody?: unknown): void {
  const c = fromBody ?? ctx.query.get('channel');
  if (c !== 'EMAIL') throw validation(`channel must be EMAIL; got ${c === null || c === undefined ? 'nothing' : String(c)}`);
}

function v4Item(addr: string, st: StatusView, reason?: string): Record<string, unknown> {
  const numeric = /^\d+$/.test(st.subscriptionId);
  const out: Record<string, unknown> = {
    subscriberIdString: addr,
    subscriptionId: numeric ? Number(st.subscriptionId) : st.subscriptionId,
    subscriptionName: st.name,
    channel: 'EMAIL',
    status: st.status,
    source: st.source ?? 'UNKNOWN',
    legalBasis: st.legalBasis,
    legalBasisExplanation: st.legalBasisExplanation,
    timestamp: new Date(st.timestamp ?? 0).toISOString(),
    businessUnitId: 0,
  };
  if (reason) out['setStatusSuccessReason'] = reason;
  return out;
}

function v4Wide(addr: string, w: WideView): Record<string, unknown>[] {
  if (w.status !== 'UNSUBSCRIBED') return [];
  return [{ subscriberIdString: addr, channel: 'EMAIL', status: 'UNSUBSCRIBED', wideStatusType: 'PORTAL_WIDE', businessUnitId: 0, timestamp: new Date(w.timestamp ?? 0).toISOString() }];
}

function complete(ctx: Ctx, started: string, results: unknown[], errors: StandardError[] = []): void {
  const body: Record<string, unknown> = { status: 'COMPLETE', results, startedAt: started, completedAt: new Date().toISOString() };
  if (errors.length) {
    body['numErrors'] = errors.length;
    body['errors'] = errors;
  }
  sendJson(ctx.res, errors.length ? 207 : 200, body);
}

interface WriteIn {
  addr: string;
  subscriptionId: string;
  state: SubState;
  legalBasis: LegalBasis | undefined;
  explanation: string | undefined;
}

function parseWrite(state: HubSpotState, b: Record<string, unknown>, addr: string): WriteIn {
  const s = b['statusState'];
  if (s !== 'SUBSCRIBED' && s !== 'UNSUBSCRIBED' && s !== 'NOT_SPECIFIED') throw validation(`statusState must be SUBSCRIBED, UNSUBSCRIBED or NOT_SPECIFIED; got ${String(s)}`);
  if (b['channel'] !== 'EMAIL') throw validation(`channel must be EMAIL; got ${String(b['channel'])}`);
  return {
    addr,
    subscriptionId: subId(state, b['subscriptionId']),
    state: s,
    legalBasis: basis(b['legalBasis']),
    explanation: typeof b['legalBasisExplanation'] === 'string' ? b['legalBasisExplanation'] : undefined,
  };
}

/** Applies one v4 write; returns the item with setStatusSuccessReason. */
function applyWrite(ctx: Ctx, w: WriteIn): Record<string, unknown> {
  const { state, apiCtx } = ctx.core;
  const before = state.status(w.addr, w.subscriptionId);
  const changed = state.setStatus(w.addr, w.subscriptionId, w.state, { source: API_SOURCE, legalBasis: w.legalBasis ?? null, legalBasisExplanation: w.explanation ?? null }, apiCtx);
  // An explicit (re)subscription lifts "unsubscribed from all email".
  if (w.state === 'SUBSCRIBED') state.setWide(w.addr, 'SUBSCRIBED', API_SOURCE, apiCtx);
  const reason = !changed ? 'NO_STATUS_CHANGE' : w.state === 'SUBSCRIBED' && before?.status === 'UNSUBSCRIBED' ? 'RESUBSCRIBE_OCCURRED' : 'REQUESTED_CHANGE_OCCURRED';
  const st = state.status(w.addr, w.subscriptionId) as StatusView;
  return v4Item(w.addr, st, reason);
}

/** Unsubscribe from all: every type UNSUBSCRIBED and hs_email_optout=true. */
export function unsubscribeAll(state: HubSpotState, addr: string, source: string, ctx: Parameters<HubSpotState['setWide']>[3]): StatusView[] {
  for (const t of state.subscriptionTypes) state.setStatus(addr, t.id, 'UNSUBSCRIBED', { source }, ctx);
  state.setWide(addr, 'UNSUBSCRIBED', source, ctx);
  return state.statuses(addr);
}

function v4Get(ctx: Ctx): void {
  const started = new Date().toISOString();
  channel(ctx);
  const addr = ctx.params['email'] ?? '';
  complete(ctx, started, ctx.core.state.statuses(addr).map((s) => v4Item(addr, s)));
}

async function v4Post(ctx: Ctx): Promise<void> {
  const started = new Date().toISOString();
  const addr = email(ctx.params['email']);
  const b = await objBody(ctx);
  const w = parseWrite(ctx.core.state, b, addr);
  complete(ctx, started, [applyWrite(ctx, w)]);
}

function v4UnsubAll(ctx: Ctx): void {
  const started = new Date().toISOString();
  channel(ctx);
  const addr = email(ctx.params['email']);
  const sts = unsubscribeAll(ctx.core.state, addr, API_SOURCE, ctx.core.apiCtx);
  complete(ctx, started, sts.map((s) => v4Item(addr, s)));
}

function v4GetUnsubAll(ctx: Ctx): void {
  const started = new Date().toISOString();
  channel(ctx);
  const addr = ctx.params['email'] ?? '';
  complete(ctx, started, v4Wide(addr, ctx.core.state.wideStatus(addr)));
}

async function batchInputs(ctx: Ctx): Promise<unknown[]> {
  const b = await objBody(ctx);
  const inputs = b['inputs'];
  if (!Array.isArray(inputs)) throw validation('Invalid input JSON: inputs is required');
  if (inputs.length > V4_BATCH_MAX) throw validation(`Batch input must contain at most ${V4_BATCH_MAX} inputs; got ${inputs.length}.`);
  return inputs;
}

function badEmails(bad: string[]): StandardError {
  return { status: 'error', category: 'VALIDATION_ERROR', message: 'Invalid subscriber ids (email addresses)', context: { ids: bad } };
}

function injected(ids: string[]): StandardError {
  return { status: 'error', category: 'INTERNAL_ERROR', subCategory: 'SANDBOX_INJECTED_ITEM_FAILURE', message: 'Some records could not be processed. Please retry them.', context: { ids } };
}

/** Splits batch email inputs into valid ones, invalid ones and injected failures. */
function sortEmails(ctx: Ctx, inputs: unknown[]): { ok: string[]; errors: StandardError[] } {
  const ok: string[] = [];
  const bad: string[] = [];
  const failed: string[] = [];
  for (const i of inputs) {
    const s = typeof i === 'string' ? i.trim() : String(i);
    if (!EMAIL_RE.test(s)) bad.push(s);
    else if (ctx.core.faults.itemFails()) failed.push(s);
    else ok.push(s);
  }
  const errors: StandardError[] = [];
  if (bad.length) errors.push(badEmails(bad));
  if (failed.length) errors.push(injected(failed));
  return { ok, errors };
}

async function v4BatchRead(ctx: Ctx): Promise<void> {
  const started = new Date().toISOString();
  channel(ctx);
  const { ok, errors } = sortEmails(ctx, await batchInputs(ctx));
  const { state } = ctx.core;
  complete(ctx, started, ok.map((a) => ({ subscriberIdString: a, statuses: state.statuses(a).map((s) => v4Item(a, s)) })), errors);
}

async function v4BatchUnsubAllRead(ctx: Ctx): Promise<void> {
  const started = new Date().toISOString();
  channel(ctx);
  const { ok, errors } = sortEmails(ctx, await batchInputs(ctx));
  const { state } = ctx.core;
  complete(ctx, started, ok.map((a) => ({ subscriberIdString: a, wideStatuses: v4Wide(a, state.wideStatus(a)) })), errors);
}

async function v4BatchUnsubAll(ctx: Ctx): Promise<void> {
  const started = new Date().toISOString();
  channel(ctx);
  const { ok, errors } = sortEmails(ctx, await batchInputs(ctx));
  const { state, apiCtx } = ctx.core;
  complete(ctx, started, ok.map((a) => ({ subscriberIdString: a, statuses: unsubscribeAll(state, a, API_SOURCE, apiCtx).map((s) => v4Item(a, s)) })), errors);
}

async function v4BatchWrite(ctx: Ctx): Promise<void> {
  const started = new Date().toISOString();
  const inputs = await batchInputs(ctx);
  const { state, faults } = ctx.core;
  // Validate everything first (a malformed input fails the whole batch, as HubSpot does).
  const writes = inputs.map((i) => {
    if (!isObj(i)) throw validation('Invalid input JSON: each input must be an object');
    const addr = typeof i['subscriberIdString'] === 'string' ? i['subscriberIdString'].trim() : '';
    return { w: parseWrite(state, i, addr), valid: EMAIL_RE.test(addr) };
  });
  const results: Record<string, unknown>[] = [];
  const bad: string[] = [];
  const failed: string[] = [];
  for (const { w, valid } of writes) {
    if (!valid) bad.push(w.addr);
    else if (faults.itemFails()) failed.push(w.addr);
    else results.push(applyWrite(ctx, w));
  }
  const errors: StandardError[] = [];
  if (bad.length) errors.push(badEmails(bad));
  if (failed.length) errors.push(injected(failed));
  complete(ctx, started, results, errors);
}

const V3 = '/communication-preferences/v3';
const V4 = '/communication-preferences/v4';

export const commPrefRoutes: Route[] = [
  { method: 'GET', pattern: `${V3}/definitions`, handler: definitions },
  { method: 'GET', pattern: `${V3}/status/email/:email`, handler: v3GetStatus },
  { method: 'POST', pattern: `${V3}/subscribe`, handler: (ctx) => v3Change(ctx, 'SUBSCRIBED') },
  { method: 'POST', pattern: `${V3}/unsubscribe`, handler: (ctx) => v3Change(ctx, 'UNSUBSCRIBED') },
  { method: 'POST', pattern: `${V4}/statuses/batch/read`, handler: v4BatchRead, v4: true },
  { method: 'POST', pattern: `${V4}/statuses/batch/write`, handler: v4BatchWrite, v4: true },
  { method: 'POST', pattern: `${V4}/statuses/batch/unsubscribe-all`, handler: v4BatchUnsubAll, v4: true },
  { method: 'POST', pattern: `${V4}/statuses/batch/unsubscribe-all/read`, handler: v4BatchUnsubAllRead, v4: true },
  { method: 'GET', pattern: `${V4}/statuses/:email/unsubscribe-all`, handler: v4GetUnsubAll, v4: true },
  { method: 'POST', pattern: `${V4}/statuses/:email/unsubscribe-all`, handler: v4UnsubAll, v4: true },
  { method: 'GET', pattern: `${V4}/statuses/:email`, handler: v4Get, v4: true },
  { method: 'POST', pattern: `${V4}/statuses/:email`, handler: v4Post, v4: true },
];
