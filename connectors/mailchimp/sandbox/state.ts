import { createHash } from 'node:crypto';

export type MemberStatus = 'subscribed' | 'unsubscribed' | 'cleaned' | 'pending' | 'transactional' | 'archived';
export const MEMBER_STATUSES: readonly MemberStatus[] = ['subscribed', 'unsubscribed', 'cleaned', 'pending', 'transactional', 'archived'];

export interface MarketingPermissionConfig {
  id: string;
  text: string;
  /** The canonical purpose seeded people's consent maps to (default: the text, snake_cased). */
  purpose?: string;
}

export interface InterestConfig {
  id: string;
  name: string;
  purpose?: string;
}

export interface InterestCategoryConfig {
  id: string;
  title: string;
  interests: InterestConfig[];
}

export interface ListConfig {
  id: string;
  name: string;
  marketingPermissions: MarketingPermissionConfig[];
  interestCategories?: InterestCategoryConfig[];
}

export type WebhookEventType = 'subscribe' | 'unsubscribe' | 'profile' | 'cleaned' | 'upemail' | 'campaign';
export type WebhookSource = 'user' | 'admin' | 'api';

export interface WebhookConfig {
  id: string;
  listId: string;
  url: string;
  events: Record<WebhookEventType, boolean>;
  sources: Record<WebhookSource, boolean>;
}

export interface Member {
  id: string;
  listId: string;
  email: string;
  uniqueEmailId: string;
  webId: number;
  status: MemberStatus;
  emailType: 'html' | 'text';
  mergeFields: Record<string, string>;
  interests: Record<string, boolean>;
  /** marketing_permission_id -> enabled */
  permissions: Record<string, boolean>;
  timestampOpt: string;
  ipOpt: string;
  timestampSignup: string;
  ipSignup: string;
  /** ms since epoch */
  lastChanged: number;
  unsubscribeReason: string | null;
  source: string;
  seq: number;
}

export const DEFAULT_LISTS: ListConfig[] = [
  {
    id: 'a1b2c3d4e5',
    name: 'Consentd Newsletter',
    marketingPermissions: [
      { id: '7f3c9b2a1d', text: 'Newsletter', purpose: 'newsletter' },
      { id: '4e8d2c6b0a', text: 'Product updates', purpose: 'product_updates' },
      { id: '1a5f7e3c9b', text: 'Events', purpose: 'events' },
    ],
  },
];

export function subscriberHash(email: string): string {
  return createHash('md5').update(email.trim().toLowerCase()).digest('hex');
}

/** Mailchimp's timestamp format: "2024-05-01T12:34:56+00:00". */
export function mcTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', '+00:00');
}

/** Webhook fired_at: "2009-03-26 21:35:57" (UTC). */
export function firedAt(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

export function purposeOf(x: { text?: string; name?: string; purpose?: string }): string {
  return x.purpose ?? (x.text ?? x.name ?? '').trim().toLowerCase().replace(/[^a-z0-9]+/g, '_');
}

export class ListState {
  readonly members = new Map<string, Member>();
  /** Insertion order (stable paging). */
  order: Member[] = [];
  /** Subscriber hashes that were permanently deleted: the API refuses to re-add them. */
  readonly forgotten = new Set<string>();
  webhooks: WebhookConfig[] = [];
  private version = 0;
  private cache: { key: string; version: number; members: Member[] } | null = null;

  constructor(readonly config: ListConfig) {}

  touch(): void {
    this.version++;
  }

  add(m: Member): void {
    this.members.set(m.id, m);
    this.order.push(m);
    this.touch();
  }

  remove(id: string): void {
    const m = this.members.get(id);
    if (!m) return;
    this.members.delete(id);
    const i = this.order.indexOf(m);
    if (i >= 0) this.order.splice(i, 1);
    this.touch();
  }

  /** Rekeys a member whose address changed. */
  rekey(m: Member, newId: string): void {
    this.members.delete(m.id);
    m.id = newId;
    this.members.set(newId, m);
    this.touch();
  }

  /** Members matching the filters, in insertion order; cached until the next change. */
  query(f: { status?: MemberStatus | undefined; since?: number | undefined; before?: number | undefined }): Member[] {
    const key = `${f.status ?? ''}|${f.since ?? ''}|${f.before ?? ''}`;
    if (this.cache && this.cache.key === key && this.cache.version === this.version) return this.cache.members;
    const members = this.order.filter(
      (m) =>
        (f.status ? m.status === f.status : m.status !== 'archived') &&
        (f.since === undefined || m.lastChanged >= f.since) &&
        (f.before === undefined || m.lastChanged <= f.before),
    );
    this.cache = { key, version: this.version, members };
    return members;
  }

  clear(): void {
    this.members.clear();
    this.order = [];
    this.forgotten.clear();
    this.touch();
  }
}

export class MailchimpState {
  readonly lists = new Map<string, ListState>();
  private seq = 0;

  constructor(configs: ListConfig[]) {
    for (const c of configs) this.lists.set(c.id, new ListState(c));
  }

  get defaultListId(): string {
    const first = this.lists.keys().next();
    if (first.done) throw new Error('the Mailchimp sandbox has no list');
    return first.value;
  }

  list(id: string | undefined): ListState | undefined {
    return this.lists.get(id ?? this.defaultListId);
  }

  newMember(listId: string, email: string, status: MemberStatus, now: number): Member {
    const seq = ++this.seq;
    const id = subscriberHash(email);
    return {
      id,
      listId,
      email,
      uniqueEmailId: createHash('md5').update(`${listId}:${id}`).digest('hex').slice(0, 10),
      webId: 100_000_000 + seq,
      status,
      emailType: 'html',
      mergeFields: {},
      interests: {},
      permissions: {},
      timestampOpt: '',
      ipOpt: '',
      timestampSignup: '',
      ipSignup: '',
      lastChanged: now,
      unsubscribeReason: null,
      source: 'API - Generic',
      seq,
    };
  }

  /** Finds a member by email in a list (or in any list). */
  findByEmail(email: string, listId?: string): Member | undefined {
    const hash = subscriberHash(email);
    if (listId) return this.lists.get(listId)?.members.get(hash);
    for (const l of this.lists.values()) {
      const m = l.members.get(hash);
      if (m) return m;
    }
    return undefined;
  }

  clear(): void {
    for (const l of this.lists.values()) l.clear();
  }
}

/** The member as the API shows it. */
export function memberView(m: Member, list: ListConfig): Record<string, unknown> {
  const interests: Record<string, boolean> = {};
  for (const c of list.interestCategories ?? []) for (const i of c.interests) interests[i.id] = m.interests[i.id] ?? false;
  return {
    id: m.id,
    email_address: m.email,
    unique_email_id: m.uniqueEmailId,
    contact_id: m.id,
    full_name: [m.mergeFields['FNAME'], m.mergeFields['LNAME']].filter(Boolean).join(' '),
    web_id: m.webId,
    email_type: m.emailType,
    status: m.status,
    ...(m.unsubscribeReason !== null ? { unsubscribe_reason: m.unsubscribeReason } : {}),
    consents_to_one_to_one_messaging: true,
    merge_fields: { FNAME: '', LNAME: '', PHONE: '', ...m.mergeFields },
    interests,
    ip_signup: m.ipSignup,
    timestamp_signup: m.timestampSignup,
    ip_opt: m.ipOpt,
    timestamp_opt: m.timestampOpt,
    member_rating: 2,
    last_changed: mcTime(m.lastChanged),
    language: '',
    vip: false,
    email_client: '',
    source: m.source,
    tags_count: 0,
    tags: [],
    list_id: m.listId,
    marketing_permissions: list.marketingPermissions.map((p) => ({
      marketing_permission_id: p.id,
      text: p.text,
      enabled: m.permissions[p.id] ?? false,
    })),
  };
}
