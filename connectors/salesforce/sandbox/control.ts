import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CallCounter } from '../../../src/sandbox/calls.js';
import type { FaultSettings, Faults } from '../../../src/sandbox/faults.js';
import { readJson, sendJson } from '../../../src/sandbox/http.js';
import { generatePeople } from '../../../src/sandbox/seed.js';
import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import type { WebhookSender } from '../../../src/sandbox/webhooks.js';
import type { Auth } from './auth.js';
import { KEY_PREFIX } from './schema.js';
import { makeId } from './ids.js';
import type { ApiLimits } from './limits.js';
import type { SeedCounts } from './seeding.js';
import type { RecordView, SalesforceState } from './state.js';
import type { OutboundMessages } from './webhooks.js';

export interface ActionResult {
  email: string;
  /** Ids of the Contacts / Leads changed. */
  records: string[];
  individualId?: string;
  consentId?: string;
}

export class NoSuchPerson extends Error {}

/** The user a person acting on a Salesforce-hosted page (unsubscribe link, web form) counts as. */
export const SITE_USER_ID = makeId(KEY_PREFIX.User, 1_000_002);

/**
 * What a person or the platform does outside the API (each change bumps SystemModstamp and
 * emits Outbound Messages, as a workflow-triggered outbound message would).
 */
export class Actions {
  /** afterEach: runs when an action has made its changes (flushes Outbound Messages). */
  constructor(
    private readonly state: SalesforceState,
    private readonly afterEach: () => void = () => undefined,
  ) {}

  /** Runs an action as the site user (a person on a Salesforce-hosted page), then afterEach. */
  private act<T>(fn: () => T): T {
    try {
      return this.state.as(SITE_USER_ID, fn);
    } finally {
      this.afterEach();
    }
  }

  private people(email: string): ReturnType<SalesforceState['peopleByEmail']> {
    const people = this.state.peopleByEmail(email);
    if (people.length === 0) throw new NoSuchPerson(`no Contact or Lead with email ${email}`);
    return people;
  }

  private ids(people: ReturnType<SalesforceState['peopleByEmail']>): string[] {
    return people.map((p) => p.table.idOf(p.row));
  }

  /** The person clicked unsubscribe: HasOptedOutOfEmail = true on every record with that address. */
  unsubscribe(email: string): ActionResult {
    return this.act(() => {
      const people = this.people(email);
      for (const p of people) this.state.update(p.table, p.row, { HasOptedOutOfEmail: true });
      return { email, records: this.ids(people) };
    });
  }

  /**
   * The person opted in again through a form: HasOptedOutOfEmail = false, and (privacy features
   * on) an OptIn ContactPointTypeConsent on their Individual with CaptureDate / CaptureSource.
   */
  resubscribe(email: string, opts: { purpose?: string; source?: string } = {}): ActionResult {
    return this.act(() => {
      const people = this.people(email);
      for (const p of people) this.state.update(p.table, p.row, { HasOptedOutOfEmail: false });
      const out: ActionResult = { email, records: this.ids(people) };
      const consents = this.state.tables.get('ContactPointTypeConsent');
      const ind = this.state.ensureIndividual(people);
      if (ind && consents) {
        const individuals = this.state.mustTable('Individual');
        if (ind.row['HasOptedOutSolicit'] === true) this.state.update(individuals, ind.row, { HasOptedOutSolicit: false });
        const now = this.state.now();
        const purpose = opts.purpose ? this.state.purpose(opts.purpose) : undefined;
        const consent = this.state.create(consents, {
          Name: `${opts.purpose ?? 'Email'} consent`,
          PartyId: individuals.idOf(ind.row),
          ContactPointType: 'Email',
          PrivacyConsentStatus: 'OptIn',
          DataUsePurposeId: purpose ? this.state.mustTable('DataUsePurpose').idOf(purpose) : null,
          CaptureDate: now,
          CaptureSource: opts.source ?? 'Web form',
          CaptureContactPointType: 'Web',
          EffectiveFrom: now,
        });
        out.individualId = individuals.idOf(ind.row);
        out.consentId = consents.idOf(consent);
      }
      return out;
    });
  }

  /** The address hard-bounced: EmailBouncedReason / EmailBouncedDate (a system change: LastModifiedDate stays). */
  bounce(email: string, reason = '550 5.1.1 The email account that you tried to reach does not exist'): ActionResult {
    return this.act(() => {
      const people = this.people(email);
      const now = this.state.now();
      for (const p of people) this.state.update(p.table, p.row, { EmailBouncedReason: reason, EmailBouncedDate: now }, { systemOnly: true });
      return { email, records: this.ids(people) };
    });
  }

  /** The person asked to be forgotten: Individual.ShouldForget = true (the Individual is created and linked if missing). */
  erasureRequest(email: string): ActionResult {
    return this.act(() => {
      const people = this.people(email);
      const ind = this.state.ensureIndividual(people, { ShouldForget: true });
      if (!ind) throw new Error('privacy features are off: there is no Individual to mark');
      if (!ind.created) this.state.update(this.state.mustTable('Individual'), ind.row, { ShouldForget: true });
      return { email, records: this.ids(people), individualId: this.state.mustTable('Individual').idOf(ind.row) };
    });
  }
}

export interface ControlDeps {
  state: SalesforceState;
  actions: Actions;
  auth: Auth;
  limits: ApiLimits;
  faults: Faults;
  calls: CallCounter;
  webhooks: WebhookSender;
  outbound: OutboundMessages;
  seed(people: Iterable<SeedPerson>): SeedCounts;
  reset(): void;
}

/** Everything a person (by email) has in the org, rendered as the REST API would. */
export function inspectEmail(state: SalesforceState, email: string): { contacts: RecordView[]; leads: RecordView[]; individuals: RecordView[]; consents: RecordView[] } {
  const contacts = state.contacts.byEmail(email).map((r) => state.view(state.contacts, r));
  const leads = state.leads.byEmail(email).map((r) => state.view(state.leads, r));
  const individuals: RecordView[] = [];
  const consents: RecordView[] = [];
  const indTable = state.tables.get('Individual');
  const cptc = state.tables.get('ContactPointTypeConsent');
  const indIds = new Set([...contacts, ...leads].map((v) => v['IndividualId']).filter((x): x is string => typeof x === 'string'));
  if (indTable) for (const id of indIds) {
    const row = indTable.get(id);
    if (row) individuals.push(state.view(indTable, row));
  }
  if (cptc && indIds.size > 0) for (const row of cptc.rows) if (!row.$deleted && indIds.has(row['PartyId'] as string)) consents.push(state.view(cptc, row));
  return { contacts, leads, individuals, consents };
}

/** JSON control API under /__sandbox/ (not part of Salesforce; not counted, no faults). */
export async function handleControl(deps: ControlDeps, req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
  const method = req.method ?? 'GET';
  const body = method === 'POST' ? ((await readJson(req)) ?? {}) : {};
  const b = body as Record<string, unknown>;
  const email = typeof b['email'] === 'string' ? b['email'] : '';
  const route = `${method} ${path}`;
  try {
    switch (route) {
      case 'POST /seed': {
        if (Array.isArray(b['people'])) return sendJson(res, 200, deps.seed(b['people'] as SeedPerson[]));
        if (typeof b['count'] === 'number') {
          const opts = typeof b['now'] === 'string' || typeof b['now'] === 'number' ? { now: b['now'] } : {};
          return sendJson(res, 200, deps.seed(generatePeople(b['count'], typeof b['seed'] === 'number' ? b['seed'] : 1, opts)));
        }
        return sendJson(res, 400, { error: 'send {people:[...]} or {count, seed}' });
      }
      case 'POST /reset':
        deps.reset();
        return sendJson(res, 200, { ok: true });
      case 'GET /state/contacts':
        return sendJson(res, 200, inspectEmail(deps.state, query.get('email') ?? ''));
      case 'GET /state/summary':
        return sendJson(res, 200, Object.fromEntries([...deps.state.tables].map(([name, t]) => [name, t.liveCount])));
      case 'GET /calls':
        return sendJson(res, 200, { total: deps.calls.total, calls: deps.calls.snapshot() });
      case 'POST /calls/reset':
        deps.calls.reset();
        return sendJson(res, 200, { ok: true });
      case 'GET /faults':
        return sendJson(res, 200, deps.faults.settings);
      case 'POST /faults':
        deps.faults.set(b as Partial<FaultSettings>);
        return sendJson(res, 200, deps.faults.settings);
      case 'GET /limits':
        return sendJson(res, 200, { max: deps.limits.max, used: deps.limits.used() });
      case 'POST /limits':
        if (typeof b['max'] === 'number') deps.limits.max = b['max'];
        if (typeof b['used'] === 'number') deps.limits.setUsed(b['used']);
        return sendJson(res, 200, { max: deps.limits.max, used: deps.limits.used() });
      case 'POST /sessions/expire':
        deps.auth.expireAll();
        return sendJson(res, 200, { ok: true });
      case 'POST /outbound':
        deps.outbound.setUrl(typeof b['url'] === 'string' && b['url'] !== '' ? b['url'] : null);
        return sendJson(res, 200, { url: deps.outbound.url });
      case 'GET /webhooks':
        return sendJson(res, 200, { deliveries: deps.webhooks.log });
      case 'POST /actions/unsubscribe':
        return sendJson(res, 200, deps.actions.unsubscribe(email));
      case 'POST /actions/resubscribe':
        return sendJson(
          res,
          200,
          deps.actions.resubscribe(email, {
            ...(typeof b['purpose'] === 'string' ? { purpose: b['purpose'] } : {}),
            ...(typeof b['source'] === 'string' ? { source: b['source'] } : {}),
          }),
        );
      case 'POST /actions/bounce':
        return sendJson(res, 200, deps.actions.bounce(email, typeof b['reason'] === 'string' ? b['reason'] : undefined));
      case 'POST /actions/erasure-request':
        return sendJson(res, 200, deps.actions.erasureRequest(email));
      default:
        return sendJson(res, 404, { error: `no control route ${route}` });
    }
  } catch (err) {
    if (err instanceof NoSuchPerson) return sendJson(res, 404, { error: err.message });
    throw err;
  }
}
