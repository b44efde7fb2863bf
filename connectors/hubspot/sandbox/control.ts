/**
 * Control API (`/__sandbox/...`, JSON, no auth) and the same actions as functions:
 * things people and HubSpot itself do, which the daemon must notice (webhooks fire).
 */
import type { ServerResponse } from 'node:http';
import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import { generatePeople } from '../../../src/sandbox/seed.js';
import { sendJson } from '../../../src/sandbox/http.js';
import type { FaultSettings } from '../../../src/sandbox/faults.js';
import { HsHttpError, validation } from './errors.js';
import { contactJson } from './contacts.js';
import { unsubscribeAll } from './comm-prefs.js';
import { ID_BASE, type ChangeCtx, type HubSpotState, type LegalBasis } from './state.js';
import type { Core } from './types.js';

export const UNSUBSCRIBE_SOURCE = 'SUBSCRIPTION_PREFERENCES_PAGE';
export const FORM_SOURCE = 'FORM';

const PERSON: ChangeCtx = { changeSource: 'EMAIL', sourceId: 'unsubscribe-link' };
const FORM: ChangeCtx = { changeSource: 'FORM', sourceId: 'form:3f1c2a7e-0000-4000-8000-000000000001' };
const UI: ChangeCtx = { changeSource: 'CRM_UI', sourceId: 'userId:7654321' };

function ctxWith(base: ChangeCtx, changeSource?: string, sourceId?: string): ChangeCtx {
  return { changeSource: changeSource ?? base.changeSource, sourceId: sourceId ?? base.sourceId };
}

export interface ActionOptions {
  changeSource?: string;
  sourceId?: string;
}

/** What a person or HubSpot does; each emits the webhooks HubSpot would. */
export class SandboxActions {
  constructor(private readonly core: Core) {}

  private get state(): HubSpotState {
    return this.core.state;
  }

  /** A person clicks unsubscribe: from one type, or (no subscriptionId) from all email. */
  unsubscribe(email: string, subscriptionId?: string, o: ActionOptions = {}): void {
    const ctx = ctxWith(PERSON, o.changeSource, o.sourceId);
    if (subscriptionId === undefined) unsubscribeAll(this.state, email, UNSUBSCRIBE_SOURCE, ctx);
    else {
      if (this.state.typeIndex(subscriptionId) < 0) throw validation(`Subscription ${subscriptionId} does not exist`);
      this.state.setStatus(email, subscriptionId, 'UNSUBSCRIBED', { source: UNSUBSCRIBE_SOURCE }, ctx);
    }
  }

  /** A person fills a form that resubscribes them (explicit, CONSENT_WITH_NOTICE); lifts opt-out of all. */
  resubscribe(email: string, subscriptionId: string, o: ActionOptions & { legalBasisExplanation?: string; legalBasis?: LegalBasis } = {}): void {
    if (this.state.typeIndex(subscriptionId) < 0) throw validation(`Subscription ${subscriptionId} does not exist`);
    const ctx = ctxWith(FORM, o.changeSource, o.sourceId);
    this.state.setWide(email, 'SUBSCRIBED', FORM_SOURCE, ctx);
    this.state.setStatus(
      email,
      subscriptionId,
      'SUBSCRIBED',
      { source: FORM_SOURCE, legalBasis: o.legalBasis ?? 'CONSENT_WITH_NOTICE', legalBasisExplanation: o.legalBasisExplanation ?? 'Opted in through a form with notice' },
      ctx,
    );
  }

  /** The address hard-bounces. Returns the contact ids touched. */
  bounce(email: string, reason = 'BAD_MAILBOX', o: ActionOptions = {}): string[] {
    const slots = this.state.setSystemProps(email, { hs_email_hard_bounce_reason_enum: reason, hs_email_bad_address: 'true' }, ctxWith(PERSON, o.changeSource ?? 'EMAIL', o.sourceId ?? 'bounce'));
    return slots.map((s) => String(s + ID_BASE));
  }

  /** Privacy (GDPR) deletion of every contact with this address: contact.privacyDeletion events. */
  privacyDeletion(email: string, o: ActionOptions = {}): string[] {
    const slots = this.state.slotsByEmail(email);
    for (const s of slots) this.state.purge(s, ctxWith(UI, o.changeSource, o.sourceId), true);
    return slots.map((s) => String(s + ID_BASE));
  }

  /** Performs the privacy deletions requested in seed data (erasureRequested). */
  processPrivacyDeletions(o: ActionOptions = {}): string[] {
    const slots = [...this.state.pendingPrivacyDeletion];
    for (const s of slots) this.state.purge(s, ctxWith(UI, o.changeSource, o.sourceId), true);
    return slots.map((s) => String(s + ID_BASE));
  }

  /** Someone merges two contacts in the UI. */
  merge(primaryId: string, mergeId: string, o: ActionOptions = {}): void {
    const a = this.state.slotOfId(primaryId);
    const b = this.state.slotOfId(mergeId);
    if (a < 0 || b < 0) throw new HsHttpError(404, 'OBJECT_NOT_FOUND', 'resource not found');
    if (a === b) throw validation('Cannot merge an object with itself');
    this.state.merge(a, b, ctxWith(UI, o.changeSource, o.sourceId));
  }

  /** Someone edits contacts in the CRM UI (writable properties only). */
  editContact(id: string, properties: Record<string, string>, o: ActionOptions = {}): void {
    const s = this.state.slotOfId(id);
    if (s < 0) throw new HsHttpError(404, 'OBJECT_NOT_FOUND', 'resource not found');
    for (const k of Object.keys(properties)) if (!this.state.writable.has(k)) throw validation(`Property ${k} is not writable`);
    this.state.update(s, properties, ctxWith(UI, o.changeSource, o.sourceId));
  }
}

export interface ControlHost {
  core: Core;
  actions: SandboxActions;
  seed(people: Iterable<SeedPerson>): number;
  reset(): void;
  calls: { snapshot(): Record<string, number>; total: number; reset(): void };
  faults: { settings: FaultSettings; set(p: Partial<FaultSettings>): void };
  setWebhookUrl(url: string | undefined): void;
  webhookLog(): unknown;
  flushWebhooks(): Promise<void>;
}

function str(b: Record<string, unknown>, k: string, required = true): string | undefined {
  const v = b[k];
  if (typeof v === 'string' && v !== '') return v;
  if (typeof v === 'number') return String(v);
  if (required) throw validation(`${k} is required`);
  return undefined;
}

function opts(b: Record<string, unknown>): ActionOptions {
  const o: ActionOptions = {};
  const cs = str(b, 'changeSource', false);
  const si = str(b, 'sourceId', false);
  if (cs) o.changeSource = cs;
  if (si) o.sourceId = si;
  return o;
}

function emailOrId(host: ControlHost, b: Record<string, unknown>): string {
  const email = str(b, 'email', false);
  if (email) return email;
  const id = str(b, 'id', false);
  if (id) {
    const s = host.core.state.slotOfId(id);
    if (s < 0) throw new HsHttpError(404, 'OBJECT_NOT_FOUND', 'resource not found');
    return host.core.state.emailOf(s);
  }
  throw validation('email is required');
}

/** Handles /__sandbox/...; returns false when the path is not a control path. */
export async function handleControl(host: ControlHost, method: string, path: string, query: URLSearchParams, body: () => Promise<unknown>, res: ServerResponse): Promise<void> {
  const sub = path.slice('/__sandbox'.length);
  const b = async (): Promise<Record<string, unknown>> => {
    const v = await body();
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  };
  const { state } = host.core;
  const a = host.actions;
  const key = `${method} ${sub}`;
  switch (key) {
    case 'POST /seed': {
      const body = await b();
      if (Array.isArray(body['people'])) return sendJson(res, 200, { created: host.seed(body['people'] as SeedPerson[]) });
      const count = Number(body['count']);
      if (!Number.isInteger(count) || count < 0) throw validation('people (array) or count is required');
      const seed = Number(body['seed'] ?? 1);
      const now = body['now'];
      const genOpts = typeof now === 'string' || typeof now === 'number' ? { now } : {};
      return sendJson(res, 200, { created: host.seed(generatePeople(count, seed, genOpts)) });
    }
    case 'POST /reset':
      host.reset();
      return sendJson(res, 200, { ok: true });
    case 'GET /state/contacts': {
      const email = query.get('email');
      const id = query.get('id');
      const slots = email ? state.slotsByEmail(email) : id ? [state.slotOfId(id, true)].filter((s) => s >= 0) : [];
      const all = [...state.readOnly, ...state.writable];
      const contacts = slots.map((s) => contactJson(state, s, all));
      const addr = email ?? (slots[0] !== undefined ? state.emailOf(slots[0]) : '');
      return sendJson(res, 200, { contacts, statuses: addr ? state.statuses(addr) : [], wide: addr ? state.wideStatus(addr) : null, activeContacts: state.activeCount });
    }
    case 'GET /calls':
      return sendJson(res, 200, { total: host.calls.total, counts: host.calls.snapshot() });
    case 'POST /calls/reset':
      host.calls.reset();
      return sendJson(res, 200, { ok: true });
    case 'GET /faults':
      return sendJson(res, 200, host.faults.settings);
    case 'POST /faults':
      host.faults.set((await b()) as Partial<FaultSettings>);
      return sendJson(res, 200, host.faults.settings);
    case 'POST /webhook': {
      const body = await b();
      host.setWebhookUrl(str(body, 'url', false));
      return sendJson(res, 200, { ok: true });
    }
    case 'GET /webhooks':
      return sendJson(res, 200, host.webhookLog());
    case 'POST /webhooks/flush':
      await host.flushWebhooks();
      return sendJson(res, 200, { ok: true });
    case 'POST /actions/unsubscribe': {
      const body = await b();
      a.unsubscribe(emailOrId(host, body), str(body, 'subscriptionId', false), opts(body));
      return sendJson(res, 200, { ok: true });
    }
    case 'POST /actions/resubscribe': {
      const body = await b();
      const o: ActionOptions & { legalBasisExplanation?: string } = opts(body);
      const expl = str(body, 'legalBasisExplanation', false);
      if (expl) o.legalBasisExplanation = expl;
      a.resubscribe(emailOrId(host, body), str(body, 'subscriptionId') as string, o);
      return sendJson(res, 200, { ok: true });
    }
    case 'POST /actions/bounce': {
      const body = await b();
      return sendJson(res, 200, { ids: a.bounce(emailOrId(host, body), str(body, 'reason', false), opts(body)) });
    }
    case 'POST /actions/privacy-deletion': {
      const body = await b();
      return sendJson(res, 200, { ids: a.privacyDeletion(emailOrId(host, body), opts(body)) });
    }
    case 'POST /actions/process-privacy-deletions':
      return sendJson(res, 200, { ids: a.processPrivacyDeletions(opts(await b())) });
    case 'POST /actions/merge': {
      const body = await b();
      const idFor = (idKey: string, emailKey: string): string => {
        const e = str(body, emailKey, false);
        if (e) {
          const s = state.slotsByEmail(e)[0];
          if (s === undefined) throw new HsHttpError(404, 'OBJECT_NOT_FOUND', `no contact with email ${e}`);
          return String(s + ID_BASE);
        }
        return str(body, idKey) as string;
      };
      const primary = idFor('primaryId', 'primaryEmail');
      const other = idFor('mergeId', 'mergeEmail');
      a.merge(primary, other, opts(body));
      return sendJson(res, 200, { ok: true, id: primary });
    }
    case 'POST /actions/edit': {
      const body = await b();
      const props = body['properties'];
      if (typeof props !== 'object' || props === null) throw validation('properties is required');
      a.editContact(str(body, 'id') as string, props as Record<string, string>, opts(body));
      return sendJson(res, 200, { ok: true });
    }
    default:
      throw new HsHttpError(404, 'OBJECT_NOT_FOUND', `No sandbox control route ${key}`);
  }
}
