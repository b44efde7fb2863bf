/** CRM v3 contacts: basic, batch and search, as @hubspot/api-client 13.5 calls them. */
import { sendJson } from '../../../src/sandbox/http.js';
import { HsHttpError, notFound, propertyValuesInvalid, validation, type PropertyProblem, type StandardError } from './errors.js';
import { planSearch, runSearch, SEARCH_RESULT_CAP, type SearchBody } from './search.js';
import { ALWAYS_PROPERTIES, DEFAULT_PROPERTIES, ID_BASE, normEmail, type HubSpotState } from './state.js';
import type { Core, Ctx, Route } from './types.js';

export const PAGE_MAX_LIMIT = 100;
export const BATCH_MAX_INPUTS = 100;
const BASE = '/crm/v3/objects/contacts';
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export interface ContactJson {
  id: string;
  properties: Record<string, string | null>;
  createdAt: string;
  updatedAt: string;
  archived: boolean;
  archivedAt?: string;
}

/** A contact as the API returns it; `props` null = HubSpot's default property set. */
export function contactJson(state: HubSpotState, slot: number, props: readonly string[] | null): ContactJson {
  const properties: Record<string, string | null> = {};
  for (const n of props ?? DEFAULT_PROPERTIES) if (state.knows(n)) properties[n] = state.prop(slot, n);
  for (const n of ALWAYS_PROPERTIES) properties[n] = state.prop(slot, n);
  const archived = state.isArchived(slot);
  const out: ContactJson = {
    id: String(slot + ID_BASE),
    properties,
    createdAt: new Date(state.createdAtOf(slot)).toISOString(),
    updatedAt: new Date(state.updatedAtOf(slot)).toISOString(),
    archived,
  };
  if (archived) out.archivedAt = new Date(state.archivedAtOf(slot)).toISOString();
  return out;
}

function propsParam(q: URLSearchParams): string[] | null {
  const all = q.getAll('properties').flatMap((p) => p.split(',')).map((p) => p.trim()).filter((p) => p !== '');
  return all.length > 0 ? all : null;
}

function propsBody(v: unknown): string[] | null {
  if (!Array.isArray(v)) return null;
  const all = v.map((x) => String(x).trim()).filter((x) => x !== '');
  return all.length > 0 ? all : null;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function objBody(ctx: Ctx): Promise<Record<string, unknown>> {
  const b = await ctx.body();
  if (!isObj(b)) throw validation('Invalid input JSON: expected an object');
  return b;
}

async function inputsOf(ctx: Ctx): Promise<{ body: Record<string, unknown>; inputs: unknown[] }> {
  const body = await objBody(ctx);
  const inputs = body['inputs'];
  if (!Array.isArray(inputs)) throw validation('Invalid input JSON: inputs is required');
  if (inputs.length > BATCH_MAX_INPUTS) {
    throw validation(`Batch input must contain at most ${BATCH_MAX_INPUTS} inputs; got ${inputs.length}.`, {
      errors: [{ message: `size must be between 1 and ${BATCH_MAX_INPUTS}`, in: 'inputs' }],
    });
  }
  return { body, inputs };
}

/** Validates writes; collects HubSpot's per-property problems. */
export function checkProperties(state: HubSpotState, props: unknown, problems: PropertyProblem[]): Record<string, string> {
  if (!isObj(props)) return {};
  const out: Record<string, string> = {};
  for (const [k, raw] of Object.entries(props)) {
    const v = raw === null || raw === undefined ? '' : String(raw);
    if (state.readOnly.has(k)) {
      problems.push({ name: k, error: 'READ_ONLY_VALUE', message: `"${k}" is a read only property; its value cannot be set.` });
    } else if (!state.writable.has(k)) {
      problems.push({ name: k, error: 'PROPERTY_DOESNT_EXIST', message: `Property "${k}" does not exist` });
    } else if (k === 'email' && v !== '' && !EMAIL_RE.test(v.trim())) {
      problems.push({ name: k, error: 'INVALID_EMAIL', message: `Email address ${v} is invalid` });
    } else out[k] = v;
  }
  return out;
}

function batchAnswer(ctx: Ctx, okStatus: number, startedAt: string, results: unknown[], errors: StandardError[]): void {
  const body: Record<string, unknown> = { status: 'COMPLETE', results, startedAt, completedAt: new Date().toISOString() };
  if (errors.length > 0) {
    body['numErrors'] = errors.length;
    body['errors'] = errors;
  }
  sendJson(ctx.res, errors.length > 0 ? 207 : okStatus, body);
}

function notFoundError(verb: string, ids: string[]): StandardError {
  return {
    status: 'error',
    category: 'OBJECT_NOT_FOUND',
    message: `Could not ${verb} some CONTACT objects, they may be deleted or not exist. Check that ids are valid.`,
    context: { ids },
  };
}

/** Injected partial failure (faults.itemFails()): transient, retry the ids. */
function injectedError(ids: string[]): StandardError {
  return {
    status: 'error',
    category: 'INTERNAL_ERROR',
    subCategory: 'SANDBOX_INJECTED_ITEM_FAILURE',
    message: 'Some records could not be processed due to an internal error. Please retry them.',
    context: { ids },
  };
}

function resolveId(state: HubSpotState, id: string, idProperty: string | undefined, archived = false): number {
  if (idProperty === 'email') {
    const slots = state.slotsByEmail(id);
    return slots[0] ?? -1;
  }
  if (idProperty !== undefined && idProperty !== 'hs_object_id') throw validation(`Property ${idProperty} is not a unique identifier property`);
  return state.slotOfId(id, archived);
}

// ---------- basic ----------

async function getPage(ctx: Ctx): Promise<void> {
  const { state } = ctx.core;
  const q = ctx.query;
  const limitRaw = q.get('limit') ?? '10';
  const limit = Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 1) throw validation(`Invalid limit ${limitRaw}`);
  if (limit > PAGE_MAX_LIMIT) {
    throw validation(`limit must be less than or equal to ${PAGE_MAX_LIMIT}`, { errors: [{ message: `must be less than or equal to ${PAGE_MAX_LIMIT}`, in: 'limit' }] });
  }
  const afterRaw = q.get('after');
  let from = 0;
  if (afterRaw !== null && afterRaw !== '') {
    if (!/^\d{1,15}$/.test(afterRaw)) throw validation(`Invalid after ${afterRaw}`);
    from = Number(afterRaw) - ID_BASE;
  }
  const archived = q.get('archived') === 'true';
  const props = propsParam(q);
  const results: ContactJson[] = [];
  let next = -1;
  state.scanById(from, archived, (s) => {
    if (results.length < limit) {
      results.push(contactJson(state, s, props));
      return true;
    }
    next = s;
    return false;
  });
  const body: Record<string, unknown> = { results };
  if (next >= 0) {
    const after = String(next + ID_BASE);
    const link = new URLSearchParams(q);
    link.set('after', after);
    body['paging'] = { next: { after, link: `${ctx.core.url()}${BASE}?${link.toString()}` } };
  }
  sendJson(ctx.res, 200, body);
}

async function getById(ctx: Ctx): Promise<void> {
  const { state } = ctx.core;
  const idProperty = ctx.query.get('idProperty') ?? undefined;
  const slot = resolveId(state, ctx.params['id'] ?? '', idProperty, ctx.query.get('archived') === 'true');
  if (slot < 0) throw notFound();
  sendJson(ctx.res, 200, contactJson(state, slot, propsParam(ctx.query)));
}

function existingByEmail(state: HubSpotState, email: string | undefined): number {
  if (!email) return -1;
  return state.slotsByEmail(email)[0] ?? -1;
}

async function createOne(ctx: Ctx): Promise<void> {
  const { state, apiCtx } = ctx.core;
  const body = await objBody(ctx);
  const problems: PropertyProblem[] = [];
  const props = checkProperties(state, body['properties'], problems);
  if (problems.length) throw propertyValuesInvalid(problems);
  const dup = existingByEmail(state, props['email']);
  if (dup >= 0) throw new HsHttpError(409, 'CONFLICT', `Contact already exists. Existing ID: ${dup + ID_BASE}`);
  const slot = state.create(props, apiCtx);
  sendJson(ctx.res, 201, contactJson(state, slot, null));
}

async function updateOne(ctx: Ctx): Promise<void> {
  const { state, apiCtx } = ctx.core;
  const slot = resolveId(state, ctx.params['id'] ?? '', ctx.query.get('idProperty') ?? undefined);
  const body = await objBody(ctx);
  if (slot < 0) throw notFound();
  const problems: PropertyProblem[] = [];
  const props = checkProperties(state, body['properties'], problems);
  if (problems.length) throw propertyValuesInvalid(problems);
  state.update(slot, props, apiCtx);
  sendJson(ctx.res, 200, contactJson(state, slot, Object.keys(props)));
}

function archiveOne(ctx: Ctx): void {
  const { state, apiCtx } = ctx.core;
  const slot = state.slotOfId(ctx.params['id'] ?? '');
  if (slot >= 0) state.archive(slot, apiCtx);
  ctx.res.writeHead(204).end();
}

async function merge(ctx: Ctx): Promise<void> {
  const { state, apiCtx } = ctx.core;
  const body = await objBody(ctx);
  const primary = state.slotOfId(String(body['primaryObjectId'] ?? ''));
  const other = state.slotOfId(String(body['objectIdToMerge'] ?? ''));
  if (primary < 0 || other < 0) throw notFound();
  if (primary === other) throw validation('Cannot merge an object with itself');
  state.merge(primary, other, apiCtx);
  sendJson(ctx.res, 200, contactJson(state, primary, null));
}

async function gdprDelete(ctx: Ctx): Promise<void> {
  const { state, apiCtx } = ctx.core;
  const body = await objBody(ctx);
  const idProperty = typeof body['idProperty'] === 'string' ? body['idProperty'] : undefined;
  const id = String(body['objectId'] ?? '');
  const slots = idProperty === 'email' ? state.slotsByEmail(id) : [state.slotOfId(id, true)].filter((s) => s >= 0);
  if (slots.length === 0) throw notFound();
  for (const s of slots) state.purge(s, apiCtx, true);
  ctx.res.writeHead(204).end();
}

// ---------- batch ----------

function inputId(input: unknown): string {
  if (!isObj(input) || (typeof input['id'] !== 'string' && typeof input['id'] !== 'number')) throw validation('Invalid input JSON: each input needs an id');
  return String(input['id']);
}

function noDuplicates(ids: string[]): void {
  const seen = new Set<string>();
  const dups = new Set<string>();
  for (const id of ids) (seen.has(id) ? dups : seen).add(id);
  if (dups.size > 0) throw validation(`Duplicate IDs found in batch input: [${[...dups].join(', ')}]. IDs must be unique`);
}

async function batchRead(ctx: Ctx): Promise<void> {
  const { state, faults } = ctx.core;
  const started = new Date().toISOString();
  const { body, inputs } = await inputsOf(ctx);
  const idProperty = typeof body['idProperty'] === 'string' ? body['idProperty'] : undefined;
  const props = propsBody(body['properties']);
  const archived = ctx.query.get('archived') === 'true';
  const results: ContactJson[] = [];
  const missing: string[] = [];
  const failed: string[] = [];
  const done = new Set<number>();
  for (const input of inputs) {
    const id = inputId(input);
    const slot = resolveId(state, id, idProperty, archived);
    if (slot < 0) missing.push(id);
    else if (faults.itemFails()) failed.push(id);
    else if (!done.has(slot)) {
      done.add(slot);
      results.push(contactJson(state, slot, props));
    }
  }
  const errors: StandardError[] = [];
  if (missing.length) errors.push(notFoundError('get', missing));
  if (failed.length) errors.push(injectedError(failed));
  batchAnswer(ctx, 200, started, results, errors);
}

async function batchUpdate(ctx: Ctx): Promise<void> {
  const { state, faults, apiCtx } = ctx.core;
  const started = new Date().toISOString();
  const { inputs } = await inputsOf(ctx);
  const ids = inputs.map(inputId);
  noDuplicates(ids);
  const problems: PropertyProblem[] = [];
  const checked = inputs.map((input) => {
    const i = input as Record<string, unknown>;
    const idProperty = typeof i['idProperty'] === 'string' ? i['idProperty'] : undefined;
    return { id: String(i['id']), idProperty, props: checkProperties(state, i['properties'], problems) };
  });
  if (problems.length) throw propertyValuesInvalid(problems);
  const missing: string[] = [];
  const failed: string[] = [];
  const todo: { slot: number; props: Record<string, string> }[] = [];
  for (const c of checked) {
    const slot = resolveId(state, c.id, c.idProperty);
    if (slot < 0) missing.push(c.id);
    else if (faults.itemFails()) failed.push(c.id);
    else todo.push({ slot, props: c.props });
  }
  // Apply in id order: changes of one millisecond then sit in (lastmodifieddate, id) order.
  todo.sort((a, b) => a.slot - b.slot);
  const results: ContactJson[] = [];
  for (const t of todo) {
    state.update(t.slot, t.props, apiCtx);
    results.push(contactJson(state, t.slot, Object.keys(t.props)));
  }
  const errors: StandardError[] = [];
  if (missing.length) errors.push(notFoundError('update', missing));
  if (failed.length) errors.push(injectedError(failed));
  batchAnswer(ctx, 200, started, results, errors);
}

async function batchCreate(ctx: Ctx): Promise<void> {
  const { state, apiCtx } = ctx.core;
  const started = new Date().toISOString();
  const { inputs } = await inputsOf(ctx);
  const problems: PropertyProblem[] = [];
  const all = inputs.map((i) => checkProperties(state, isObj(i) ? i['properties'] : undefined, problems));
  if (problems.length) throw propertyValuesInvalid(problems);
  const seen = new Set<string>();
  for (const p of all) {
    const e = p['email'];
    if (!e) continue;
    const dup = existingByEmail(state, e);
    if (dup >= 0) throw new HsHttpError(409, 'CONFLICT', `Contact already exists. Existing ID: ${dup + ID_BASE}`);
    if (seen.has(normEmail(e))) throw validation(`Duplicate email ${e} in batch input`);
    seen.add(normEmail(e));
  }
  const results = all.map((p) => contactJson(state, state.create(p, apiCtx), null));
  batchAnswer(ctx, 201, started, results, []);
}

async function batchUpsert(ctx: Ctx): Promise<void> {
  const { state, apiCtx } = ctx.core;
  const started = new Date().toISOString();
  const { inputs } = await inputsOf(ctx);
  const problems: PropertyProblem[] = [];
  const checked = inputs.map((input) => {
    const i = isObj(input) ? input : {};
    const idProperty = typeof i['idProperty'] === 'string' ? i['idProperty'] : undefined;
    return { id: inputId(input), idProperty, props: checkProperties(state, i['properties'], problems) };
  });
  if (problems.length) throw propertyValuesInvalid(problems);
  noDuplicates(checked.map((c) => `${c.idProperty ?? ''}:${c.id.toLowerCase()}`));
  const results: (ContactJson & { new: boolean })[] = [];
  for (const c of checked) {
    let slot = resolveId(state, c.id, c.idProperty);
    let created = false;
    if (slot < 0) {
      if (c.idProperty !== 'email') throw notFound(`Could not find CONTACT ${c.id}; upsert can only create with idProperty email`);
      slot = state.create({ ...c.props, email: c.props['email'] ?? c.id }, apiCtx);
      created = true;
    } else state.update(slot, c.props, apiCtx);
    results.push({ ...contactJson(state, slot, Object.keys(c.props)), new: created });
  }
  batchAnswer(ctx, 200, started, results, []);
}

async function batchArchive(ctx: Ctx): Promise<void> {
  const { state, apiCtx } = ctx.core;
  const { inputs } = await inputsOf(ctx);
  for (const input of inputs) {
    const slot = state.slotOfId(inputId(input));
    if (slot >= 0) state.archive(slot, apiCtx);
  }
  ctx.res.writeHead(204).end();
}

// ---------- search ----------

async function search(ctx: Ctx): Promise<void> {
  const core: Core = ctx.core;
  const { state } = core;
  const body = (await objBody(ctx)) as SearchBody;
  const plan = planSearch(state, body);
  if (plan.after >= SEARCH_RESULT_CAP) {
    throw validation(`The search API returns at most ${SEARCH_RESULT_CAP} results per query; after=${plan.after} is past that limit. Narrow the query (e.g. by lastmodifieddate) instead of paging further.`, {
      errors: [{ message: `after must be less than ${SEARCH_RESULT_CAP}`, in: 'after' }],
    });
  }
  let cached = core.searchCache.get(plan.key);
  if (!cached || cached.generation !== state.generation) {
    cached = { generation: state.generation, result: runSearch(state, plan) };
    core.searchCache.set(plan.key, cached);
    if (core.searchCache.size > 8) {
      const oldest = core.searchCache.keys().next().value;
      if (oldest !== undefined) core.searchCache.delete(oldest);
    }
  }
  const { total, slots } = cached.result;
  const end = Math.min(plan.after + plan.limit, slots.length);
  const results: ContactJson[] = [];
  for (let i = plan.after; i < end; i++) results.push(contactJson(state, slots[i] ?? 0, plan.properties));
  const out: Record<string, unknown> = { total, results };
  // Like HubSpot, paging goes on while there are more matches, even past the cap (the next page then answers 400).
  if (plan.after + results.length < total && results.length > 0) out['paging'] = { next: { after: String(plan.after + results.length) } };
  sendJson(ctx.res, 200, out);
}

export const contactRoutes: Route[] = [
  { method: 'GET', pattern: BASE, handler: getPage },
  { method: 'POST', pattern: BASE, handler: createOne },
  { method: 'POST', pattern: `${BASE}/search`, handler: search, search: true },
  { method: 'POST', pattern: `${BASE}/merge`, handler: merge },
  { method: 'POST', pattern: `${BASE}/gdpr-delete`, handler: gdprDelete },
  { method: 'POST', pattern: `${BASE}/batch/read`, handler: batchRead },
  { method: 'POST', pattern: `${BASE}/batch/update`, handler: batchUpdate },
  { method: 'POST', pattern: `${BASE}/batch/create`, handler: batchCreate },
  { method: 'POST', pattern: `${BASE}/batch/upsert`, handler: batchUpsert },
  { method: 'POST', pattern: `${BASE}/batch/archive`, handler: batchArchive },
  { method: 'GET', pattern: `${BASE}/:id`, handler: getById },
  { method: 'PATCH', pattern: `${BASE}/:id`, handler: updateOne },
  { method: 'DELETE', pattern: `${BASE}/:id`, handler: archiveOne },
];
