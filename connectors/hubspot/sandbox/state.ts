/**
 * In-memory HubSpot portal: contacts in columns (typed arrays + string arrays, so a million
 * contacts stay compact and page fast), subscription statuses per email address, and an index
 * ordered by (lastmodifieddate, id) for the search endpoint.
 *
 * Ids are numeric: id = slot + ID_BASE. Slots are never reused.
 * Every mutation takes a ChangeCtx and reports StateEvents to `onEvent` (the webhook emitter).
 */

export const ID_BASE = 1001;

export type SubState = 'SUBSCRIBED' | 'UNSUBSCRIBED' | 'NOT_SPECIFIED';
const STATE_CODES: readonly SubState[] = ['NOT_SPECIFIED', 'SUBSCRIBED', 'UNSUBSCRIBED'];
const CODE_OF: Record<SubState, number> = { NOT_SPECIFIED: 0, SUBSCRIBED: 1, UNSUBSCRIBED: 2 };

export const LEGAL_BASES = [
  'LEGITIMATE_INTEREST_PQL',
  'LEGITIMATE_INTEREST_CLIENT',
  'PERFORMANCE_OF_CONTRACT',
  'CONSENT_WITH_NOTICE',
  'NON_GDPR',
  'PROCESS_AND_STORE',
  'LEGITIMATE_INTEREST_OTHER',
] as const;
export type LegalBasis = (typeof LEGAL_BASES)[number];

export function isLegalBasis(v: unknown): v is LegalBasis {
  return typeof v === 'string' && (LEGAL_BASES as readonly string[]).includes(v);
}

export interface SubscriptionType {
  id: string;
  name: string;
  description: string;
  /** The canonical purpose seeds map onto this type (SeedPresence.purposes key). */
  purpose: string;
  createdAt: string;
}

export interface StatusView {
  subscriptionId: string;
  name: string;
  status: SubState;
  source: string | null;
  legalBasis: LegalBasis | null;
  legalBasisExplanation: string | null;
  timestamp: number | null;
}

export interface WideView {
  status: SubState;
  source: string | null;
  timestamp: number | null;
}

/** Who made a change: goes into the webhook's changeSource / sourceId. */
export interface ChangeCtx {
  changeSource: string;
  sourceId: string;
}

export type StateEvent =
  | { type: 'contact.propertyChange'; objectId: number; propertyName: string; propertyValue: string; ctx: ChangeCtx; at: number }
  | { type: 'contact.creation' | 'contact.deletion' | 'contact.privacyDeletion'; objectId: number; ctx: ChangeCtx; at: number }
  | { type: 'contact.merge'; objectId: number; mergedObjectIds: number[]; newObjectId: number; ctx: ChangeCtx; at: number };

export interface StatusMeta {
  source: string;
  legalBasis?: LegalBasis | null | undefined;
  legalBasisExplanation?: string | null | undefined;
}

/** Properties every contact can be asked for (besides hs_email_optout_<subscriptionId>). */
export const DEFAULT_PROPERTIES = ['createdate', 'email', 'firstname', 'hs_object_id', 'lastmodifieddate', 'lastname'] as const;
/** Always returned, whatever `properties` asks for. */
export const ALWAYS_PROPERTIES = ['createdate', 'hs_object_id', 'lastmodifieddate'] as const;
export const WRITABLE_PROPERTIES = [
  'email',
  'firstname',
  'lastname',
  'phone',
  'mobilephone',
  'company',
  'website',
  'jobtitle',
  'city',
  'country',
  'lifecyclestage',
  'hs_lead_status',
  'hs_legal_basis',
  'hs_language',
] as const;
export const READ_ONLY_PROPERTIES = [
  'hs_object_id',
  'createdate',
  'lastmodifieddate',
  'hs_marketable_status',
  'hs_email_optout',
  'hs_email_hard_bounce_reason_enum',
  'hs_email_bad_address',
  'hs_email_quarantined',
] as const;

type TypedArray = Uint8Array | Int32Array | Uint32Array | Float64Array;

function grow<T extends TypedArray>(a: T, need: number, fill?: number): T {
  if (need <= a.length) return a;
  let n = Math.max(1024, a.length);
  while (n < need) n *= 2;
  const Ctor = a.constructor as new (len: number) => T;
  const b = new Ctor(n);
  (b as unknown as { set(x: ArrayLike<number>): void }).set(a);
  if (fill !== undefined) b.fill(fill, a.length);
  return b;
}

export function normEmail(email: string): string {
  return email.trim().toLowerCase();
}

export class HubSpotState {
  readonly subscriptionTypes: SubscriptionType[];
  readonly writable: Set<string>;
  readonly readOnly: Set<string>;
  onEvent: (e: StateEvent) => void = () => undefined;
  /** Bumped on every mutation (search answers are cached per generation). */
  generation = 0;

  // ---- contacts (columns by slot) ----
  n = 0;
  private life = new Uint8Array(0); // 0 purged, 1 active, 2 archived
  private row = new Int32Array(0); // subscriber row of the contact's email, -1 none
  private createdAt = new Float64Array(0);
  private updatedAt = new Float64Array(0);
  private archivedAt = new Float64Array(0);
  private version = new Uint32Array(0);
  private email: string[] = [];
  private firstname: string[] = [];
  private lastname: string[] = [];
  private phone: string[] = [];
  /** Sparse: any other property (bounce flags, company, ...). */
  private extra = new Map<number, Record<string, string>>();
  /** Merged-away id slot -> surviving slot. */
  readonly aliases = new Map<number, number>();
  /** Seeded erasure requests not yet processed (see processPrivacyDeletions). */
  readonly pendingPrivacyDeletion = new Set<number>();
  activeCount = 0;

  // ---- subscriber rows (one per lowercased email) ----
  private rowByEmail = new Map<string, number>();
  private rowEmail: string[] = [];
  private rowSlot = new Int32Array(0);
  private rowMore = new Map<number, number[]>();
  private nRows = 0;
  private subState: Uint8Array[];
  private subSrc: Uint8Array[];
  private subBasis: Uint8Array[];
  private subTs: Float64Array[];
  private wide = new Uint8Array(0);
  private wideSrc = new Uint8Array(0);
  private wideTs = new Float64Array(0);
  private explanations = new Map<string, string>();
  private sources: string[] = [''];
  private sourceCode = new Map<string, number>();

  // ---- (lastmodifieddate, id) index ----
  private idxSlot = new Int32Array(0);
  private idxTs = new Float64Array(0);
  private idxVer = new Uint32Array(0);
  private idxLen = 0;
  private idxStale = 0;
  private idxDirty = false;
  private lastNow = 0;

  constructor(types: SubscriptionType[], extraProperties: readonly string[] = []) {
    this.subscriptionTypes = types;
    this.subState = types.map(() => new Uint8Array(0));
    this.subSrc = types.map(() => new Uint8Array(0));
    this.subBasis = types.map(() => new Uint8Array(0));
    this.subTs = types.map(() => new Float64Array(0));
    this.writable = new Set<string>([...WRITABLE_PROPERTIES, ...extraProperties]);
    this.readOnly = new Set<string>([...READ_ONLY_PROPERTIES, ...types.map((t) => `hs_email_optout_${t.id}`)]);
  }

  /** A strictly increasing clock, so (lastmodifieddate, id) order follows the order of changes. */
  now(): number {
    const t = Date.now();
    this.lastNow = t > this.lastNow ? t : this.lastNow;
    return this.lastNow;
  }

  clear(): void {
    const fresh = new HubSpotState(this.subscriptionTypes, []);
    const keep = { onEvent: this.onEvent, writable: this.writable, readOnly: this.readOnly, subscriptionTypes: this.subscriptionTypes, lastNow: this.lastNow };
    Object.assign(this, fresh, keep);
    this.generation++;
  }

  // ================= contacts =================

  idOf(slot: number): number {
    return slot + ID_BASE;
  }

  /** Slot for an id string (following merges); -1 when unknown or purged. */
  slotOfId(id: string, includeArchived = false): number {
    if (!/^\d{1,15}$/.test(id)) return -1;
    let slot = Number(id) - ID_BASE;
    if (slot < 0 || slot >= this.n) return -1;
    for (let hops = 0; hops < 10 && this.life[slot] === 0; hops++) {
      const a = this.aliases.get(slot);
      if (a === undefined) return -1;
      slot = a;
    }
    const st = this.life[slot];
    if (st === 1 || (includeArchived && st === 2)) return slot;
    return -1;
  }

  isActive(slot: number): boolean {
    return this.life[slot] === 1;
  }

  isArchived(slot: number): boolean {
    return this.life[slot] === 2;
  }

  /** Active contacts whose email matches case-insensitively (duplicates included), by id. */
  slotsByEmail(email: string): number[] {
    const r = this.rowByEmail.get(normEmail(email));
    if (r === undefined) return [];
    return this.rowSlots(r).filter((s) => this.life[s] === 1);
  }

  private rowSlots(r: number): number[] {
    const first = this.rowSlot[r] ?? -1;
    const out = first >= 0 ? [first] : [];
    const more = this.rowMore.get(r);
    if (more) out.push(...more);
    return out.sort((a, b) => a - b);
  }

  createdAtOf(slot: number): number {
    return this.createdAt[slot] ?? 0;
  }

  updatedAtOf(slot: number): number {
    return this.updatedAt[slot] ?? 0;
  }

  archivedAtOf(slot: number): number {
    return this.archivedAt[slot] ?? 0;
  }

  emailOf(slot: number): string {
    return this.email[slot] ?? '';
  }

  private ensureSlots(need: number): void {
    if (need <= this.life.length) return;
    this.life = grow(this.life, need);
    this.row = grow(this.row, need, -1);
    this.createdAt = grow(this.createdAt, need);
    this.updatedAt = grow(this.updatedAt, need);
    this.archivedAt = grow(this.archivedAt, need);
    this.version = grow(this.version, need);
  }

  private ensureRows(need: number): void {
    if (need <= this.rowSlot.length) return;
    this.rowSlot = grow(this.rowSlot, need, -1);
    this.wide = grow(this.wide, need);
    this.wideSrc = grow(this.wideSrc, need);
    this.wideTs = grow(this.wideTs, need);
    for (let k = 0; k < this.subscriptionTypes.length; k++) {
      this.subState[k] = grow(this.subState[k] ?? new Uint8Array(0), need);
      this.subSrc[k] = grow(this.subSrc[k] ?? new Uint8Array(0), need);
      this.subBasis[k] = grow(this.subBasis[k] ?? new Uint8Array(0), need);
      this.subTs[k] = grow(this.subTs[k] ?? new Float64Array(0), need);
    }
  }

  /** Subscriber row for an email, created on demand. */
  rowFor(email: string, create: true): number;
  rowFor(email: string, create?: boolean): number;
  rowFor(email: string, create = false): number {
    const key = normEmail(email);
    const r = this.rowByEmail.get(key);
    if (r !== undefined) return r;
    if (!create || key === '') return -1;
    const nr = this.nRows++;
    this.ensureRows(this.nRows);
    this.rowByEmail.set(key, nr);
    this.rowEmail[nr] = key;
    return nr;
  }

  private attach(slot: number, email: string): void {
    if (email === '') {
      this.row[slot] = -1;
      return;
    }
    const r = this.rowFor(email, true);
    this.row[slot] = r;
    if ((this.rowSlot[r] ?? -1) < 0) this.rowSlot[r] = slot;
    else {
      const more = this.rowMore.get(r);
      if (more) more.push(slot);
      else this.rowMore.set(r, [slot]);
    }
  }

  private detach(slot: number): void {
    const r = this.row[slot] ?? -1;
    if (r < 0) return;
    this.row[slot] = -1;
    const more = this.rowMore.get(r);
    if (this.rowSlot[r] === slot) {
      const next = more?.shift();
      this.rowSlot[r] = next ?? -1;
    } else if (more) {
      const i = more.indexOf(slot);
      if (i >= 0) more.splice(i, 1);
    }
    if (more && more.length === 0) this.rowMore.delete(r);
  }

  private intern(source: string | null): number {
    if (source === null || source === '') return 0;
    let c = this.sourceCode.get(source);
    if (c === undefined) {
      c = this.sources.length;
      if (c > 255) return 255;
      this.sources.push(source);
      this.sourceCode.set(source, c);
    }
    return c;
  }

  /** Reads one property as HubSpot returns it (strings; null when unset). */
  prop(slot: number, name: string): string | null {
    switch (name) {
      case 'email':
        return this.email[slot] || null;
      case 'firstname':
        return this.firstname[slot] || null;
      case 'lastname':
        return this.lastname[slot] || null;
      case 'phone':
        return this.phone[slot] || null;
      case 'hs_object_id':
        return String(slot + ID_BASE);
      case 'createdate':
        return new Date(this.createdAt[slot] ?? 0).toISOString();
      case 'lastmodifieddate':
        return new Date(this.updatedAt[slot] ?? 0).toISOString();
      case 'hs_email_optout': {
        const r = this.row[slot] ?? -1;
        if (r < 0) return null;
        return this.wide[r] === 2 ? 'true' : 'false';
      }
      case 'hs_marketable_status':
        return this.extra.get(slot)?.['hs_marketable_status'] ?? 'true';
      default:
        break;
    }
    if (name.startsWith('hs_email_optout_')) {
      const k = this.typeIndex(name.slice('hs_email_optout_'.length));
      const r = this.row[slot] ?? -1;
      if (k < 0 || r < 0) return null;
      const c = this.subState[k]?.[r] ?? 0;
      return c === 2 ? 'true' : c === 1 ? 'false' : null;
    }
    return this.extra.get(slot)?.[name] ?? null;
  }

  /** Is this a property HubSpot knows for contacts (readable)? */
  knows(name: string): boolean {
    return this.writable.has(name) || this.readOnly.has(name);
  }

  typeIndex(subscriptionId: string): number {
    return this.subscriptionTypes.findIndex((t) => t.id === subscriptionId);
  }

  private setRaw(slot: number, name: string, value: string): void {
    switch (name) {
      case 'email':
        this.detach(slot);
        this.email[slot] = value;
        this.attach(slot, value);
        return;
      case 'firstname':
        this.firstname[slot] = value;
        return;
      case 'lastname':
        this.lastname[slot] = value;
        return;
      case 'phone':
        this.phone[slot] = value;
        return;
      default: {
        const ex = this.extra.get(slot);
        if (value === '') {
          if (ex) {
            delete ex[name];
            if (Object.keys(ex).length === 0) this.extra.delete(slot);
          }
        } else if (ex) ex[name] = value;
        else this.extra.set(slot, { [name]: value });
      }
    }
  }

  private touch(slot: number, at: number): void {
    this.updatedAt[slot] = at;
    this.indexPush(slot);
    this.generation++;
  }

  /** Creates an active contact. Properties must already be validated. */
  create(props: Record<string, string>, ctx: ChangeCtx | null, opts: { createdAt?: number; updatedAt?: number } = {}): number {
    const slot = this.n++;
    this.ensureSlots(this.n);
    const at = opts.createdAt ?? this.now();
    this.life[slot] = 1;
    this.createdAt[slot] = at;
    this.updatedAt[slot] = opts.updatedAt ?? at;
    this.activeCount++;
    for (const [k, v] of Object.entries(props)) if (v !== '') this.setRaw(slot, k, v);
    if (ctx) {
      this.indexPush(slot);
      this.generation++;
      this.onEvent({ type: 'contact.creation', objectId: slot + ID_BASE, ctx, at });
      for (const [k, v] of Object.entries(props)) {
        if (v !== '') this.onEvent({ type: 'contact.propertyChange', objectId: slot + ID_BASE, propertyName: k, propertyValue: v, ctx, at });
      }
    } else {
      this.idxDirty = true;
    }
    return slot;
  }

  /** Sets properties (validated); bumps lastmodifieddate when anything changed. Returns changed names. */
  update(slot: number, props: Record<string, string | null>, ctx: ChangeCtx): string[] {
    const changed: string[] = [];
    for (const [k, raw] of Object.entries(props)) {
      const v = raw ?? '';
      if ((this.prop(slot, k) ?? '') === v) continue;
      this.setRaw(slot, k, v);
      changed.push(k);
    }
    if (changed.length > 0) {
      const at = this.now();
      this.touch(slot, at);
      for (const k of changed) {
        this.onEvent({ type: 'contact.propertyChange', objectId: slot + ID_BASE, propertyName: k, propertyValue: this.prop(slot, k) ?? '', ctx, at });
      }
    }
    return changed;
  }

  archive(slot: number, ctx: ChangeCtx): void {
    if (this.life[slot] !== 1) return;
    const at = this.now();
    this.life[slot] = 2;
    this.archivedAt[slot] = at;
    this.activeCount--;
    this.idxStale++;
    this.generation++;
    this.onEvent({ type: 'contact.deletion', objectId: slot + ID_BASE, ctx, at });
  }

  /** Permanently removes a contact (GDPR delete). privacy=true emits contact.privacyDeletion. */
  purge(slot: number, ctx: ChangeCtx, privacy: boolean): void {
    const st = this.life[slot];
    if (st === 0 || st === undefined) return;
    const at = this.now();
    if (st === 1) this.activeCount--;
    this.life[slot] = 0;
    this.pendingPrivacyDeletion.delete(slot);
    const r = this.row[slot] ?? -1;
    this.detach(slot);
    this.email[slot] = '';
    this.firstname[slot] = '';
    this.lastname[slot] = '';
    this.phone[slot] = '';
    this.extra.delete(slot);
    this.idxStale++;
    this.generation++;
    // A GDPR deletion also forgets the address's subscription statuses when no contact keeps it.
    if (privacy && r >= 0 && (this.rowSlot[r] ?? -1) < 0) this.forgetRow(r);
    this.onEvent({ type: privacy ? 'contact.privacyDeletion' : 'contact.deletion', objectId: slot + ID_BASE, ctx, at });
  }

  private forgetRow(r: number): void {
    this.wide[r] = 0;
    this.wideSrc[r] = 0;
    this.wideTs[r] = 0;
    for (let k = 0; k < this.subscriptionTypes.length; k++) {
      (this.subState[k] as Uint8Array)[r] = 0;
      (this.subSrc[k] as Uint8Array)[r] = 0;
      (this.subBasis[k] as Uint8Array)[r] = 0;
      (this.subTs[k] as Float64Array)[r] = 0;
      this.explanations.delete(`${r}:${k}`);
    }
  }

  /** Merges `other` into `primary`: fills primary's empty properties, other's id becomes an alias. */
  merge(primary: number, other: number, ctx: ChangeCtx): void {
    const fill: Record<string, string> = {};
    for (const name of ['email', 'firstname', 'lastname', 'phone', ...Object.keys(this.extra.get(other) ?? {})]) {
      const v = this.prop(other, name);
      if (v !== null && this.prop(primary, name) === null && this.writable.has(name)) fill[name] = v;
    }
    const at = this.now();
    if (this.life[other] === 1) this.activeCount--;
    this.life[other] = 0;
    this.detach(other);
    this.extra.delete(other);
    this.aliases.set(other, primary);
    this.idxStale++;
    for (const [k, v] of Object.entries(fill)) this.setRaw(primary, k, v);
    this.touch(primary, at);
    this.onEvent({ type: 'contact.merge', objectId: primary + ID_BASE, mergedObjectIds: [primary + ID_BASE, other + ID_BASE], newObjectId: primary + ID_BASE, ctx, at });
    for (const [k, v] of Object.entries(fill)) {
      this.onEvent({ type: 'contact.propertyChange', objectId: primary + ID_BASE, propertyName: k, propertyValue: v, ctx, at });
    }
  }

  /** Sets bounce/quarantine flags (read-only through the API) on every contact with this email. */
  setSystemProps(email: string, props: Record<string, string>, ctx: ChangeCtx): number[] {
    const slots = this.slotsByEmail(email);
    for (const s of slots) this.update(s, props, ctx);
    return slots;
  }

  // ================= subscription statuses =================

  statuses(email: string): StatusView[] {
    const r = this.rowFor(email);
    return this.subscriptionTypes.map((t, k) => this.statusAt(r, k, t));
  }

  private statusAt(r: number, k: number, t: SubscriptionType): StatusView {
    if (r < 0) return { subscriptionId: t.id, name: t.name, status: 'NOT_SPECIFIED', source: null, legalBasis: null, legalBasisExplanation: null, timestamp: null };
    const code = this.subState[k]?.[r] ?? 0;
    const basis = this.subBasis[k]?.[r] ?? 0;
    const ts = this.subTs[k]?.[r] ?? 0;
    return {
      subscriptionId: t.id,
      name: t.name,
      status: STATE_CODES[code] ?? 'NOT_SPECIFIED',
      source: this.sources[this.subSrc[k]?.[r] ?? 0] || null,
      legalBasis: basis > 0 ? (LEGAL_BASES[basis - 1] ?? null) : null,
      legalBasisExplanation: this.explanations.get(`${r}:${k}`) ?? null,
      timestamp: ts > 0 ? ts : null,
    };
  }

  status(email: string, subscriptionId: string): StatusView | null {
    const k = this.typeIndex(subscriptionId);
    const t = this.subscriptionTypes[k];
    if (!t) return null;
    return this.statusAt(this.rowFor(email), k, t);
  }

  wideStatus(email: string): WideView {
    const r = this.rowFor(email);
    if (r < 0) return { status: 'NOT_SPECIFIED', source: null, timestamp: null };
    const ts = this.wideTs[r] ?? 0;
    return { status: STATE_CODES[this.wide[r] ?? 0] ?? 'NOT_SPECIFIED', source: this.sources[this.wideSrc[r] ?? 0] || null, timestamp: ts > 0 ? ts : null };
  }

  /**
   * Sets one subscription status for an address (no contact needed). Contacts with that address
   * get hs_email_optout_<id> changed, lastmodifieddate bumped and a propertyChange event.
   * Returns false when the status was already that (nothing written).
   */
  setStatus(email: string, subscriptionId: string, state: SubState, meta: StatusMeta, ctx: ChangeCtx | null, at?: number): boolean {
    const k = this.typeIndex(subscriptionId);
    if (k < 0) throw new Error(`unknown subscription ${subscriptionId}`);
    const r = this.rowFor(email, true);
    if (r < 0) return false;
    const code = CODE_OF[state];
    const states = this.subState[k] as Uint8Array;
    const prev = states[r] ?? 0;
    const when = at ?? this.now();
    states[r] = code;
    (this.subSrc[k] as Uint8Array)[r] = this.intern(meta.source);
    (this.subTs[k] as Float64Array)[r] = when;
    if (meta.legalBasis !== undefined) (this.subBasis[k] as Uint8Array)[r] = meta.legalBasis === null ? 0 : LEGAL_BASES.indexOf(meta.legalBasis) + 1;
    if (meta.legalBasisExplanation !== undefined) {
      if (meta.legalBasisExplanation) this.explanations.set(`${r}:${k}`, meta.legalBasisExplanation);
      else this.explanations.delete(`${r}:${k}`);
    }
    this.generation++;
    if (prev === code) return false;
    if (ctx) this.bumpRow(r, `hs_email_optout_${subscriptionId}`, code === 2 ? 'true' : code === 1 ? 'false' : '', ctx, when);
    return true;
  }

  /** Portal-wide "unsubscribed from all email" (hs_email_optout). */
  setWide(email: string, state: SubState, source: string, ctx: ChangeCtx | null, at?: number): boolean {
    const r = this.rowFor(email, true);
    if (r < 0) return false;
    const code = CODE_OF[state];
    const prev = this.wide[r] ?? 0;
    const when = at ?? this.now();
    this.wide[r] = code;
    this.wideSrc[r] = this.intern(source);
    this.wideTs[r] = when;
    this.generation++;
    const before = prev === 2;
    const after = code === 2;
    if (before === after) return false;
    if (ctx) this.bumpRow(r, 'hs_email_optout', after ? 'true' : 'false', ctx, when);
    return true;
  }

  private bumpRow(r: number, propertyName: string, propertyValue: string, ctx: ChangeCtx, at: number): void {
    for (const slot of this.rowSlots(r)) {
      if (this.life[slot] !== 1) continue;
      this.touch(slot, at);
      this.onEvent({ type: 'contact.propertyChange', objectId: slot + ID_BASE, propertyName, propertyValue, ctx, at });
    }
  }

  // ================= (lastmodifieddate, id) index =================

  /**
   * Appends (slot, updatedAt) to the index. Timestamps come from now() (never decreasing), so an
   * entry can only be out of order against entries of the same millisecond: it is moved back
   * among those (insertion step) to keep (lastmodifieddate, id) order.
   */
  private indexPush(slot: number): void {
    let i = this.idxLen++;
    if (this.idxLen > this.idxSlot.length) {
      this.idxSlot = grow(this.idxSlot, this.idxLen);
      this.idxTs = grow(this.idxTs, this.idxLen);
      this.idxVer = grow(this.idxVer, this.idxLen);
    }
    const v = ((this.version[slot] ?? 0) + 1) >>> 0;
    if ((this.version[slot] ?? 0) > 0) this.idxStale++;
    this.version[slot] = v;
    const ts = this.updatedAt[slot] ?? 0;
    while (i > 0) {
      const pts = this.idxTs[i - 1] ?? 0;
      const pslot = this.idxSlot[i - 1] ?? 0;
      if (pts < ts || (pts === ts && pslot < slot)) break;
      if (pts > ts && i > 0 && this.idxLen - i > 4096) {
        // Far out of order (should not happen with now()): rebuild lazily instead.
        this.idxDirty = true;
        break;
      }
      this.idxSlot[i] = pslot;
      this.idxTs[i] = pts;
      this.idxVer[i] = this.idxVer[i - 1] ?? 0;
      i--;
    }
    this.idxSlot[i] = slot;
    this.idxTs[i] = ts;
    this.idxVer[i] = v;
  }

  private entryLive(i: number): boolean {
    const slot = this.idxSlot[i] ?? 0;
    return this.life[slot] === 1 && this.idxVer[i] === this.version[slot];
  }

  /** Rebuilds the index when entries arrived out of order or too many are stale. */
  private ensureIndex(): void {
    if (!this.idxDirty && this.idxStale * 2 <= this.idxLen + 1024) return;
    const live = new Int32Array(this.activeCount);
    let m = 0;
    for (let s = 0; s < this.n; s++) if (this.life[s] === 1) live[m++] = s;
    const ua = this.updatedAt;
    const sorted = live.subarray(0, m).sort((a, b) => (ua[a] ?? 0) - (ua[b] ?? 0) || a - b);
    const cap = Math.max(1024, m * 2);
    this.idxSlot = new Int32Array(cap);
    this.idxTs = new Float64Array(cap);
    this.idxVer = new Uint32Array(cap);
    for (let i = 0; i < m; i++) {
      const s = sorted[i] ?? 0;
      const v = ((this.version[s] ?? 0) + 1) >>> 0;
      this.version[s] = v;
      this.idxSlot[i] = s;
      this.idxTs[i] = ua[s] ?? 0;
      this.idxVer[i] = v;
    }
    this.idxLen = m;
    this.idxStale = 0;
    this.idxDirty = false;
  }

  /**
   * Visits active contacts with lo <= lastmodifieddate <= hi in (lastmodifieddate, id) order
   * (descending if desc) until visit returns false.
   */
  scanByLastModified(lo: number, hi: number, desc: boolean, visit: (slot: number) => boolean): void {
    this.ensureIndex();
    const ts = this.idxTs;
    const len = this.idxLen;
    // first index with ts >= lo
    let a = 0;
    let b = len;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if ((ts[mid] ?? 0) < lo) a = mid + 1;
      else b = mid;
    }
    const start = a;
    // first index with ts > hi
    a = start;
    b = len;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if ((ts[mid] ?? 0) <= hi) a = mid + 1;
      else b = mid;
    }
    const end = a;
    if (!desc) {
      for (let i = start; i < end; i++) if (this.entryLive(i) && !visit(this.idxSlot[i] ?? 0)) return;
    } else {
      for (let i = end - 1; i >= start; i--) if (this.entryLive(i) && !visit(this.idxSlot[i] ?? 0)) return;
    }
  }

  /** Visits slots in id order (active only, or archived only). */
  scanById(fromSlot: number, archived: boolean, visit: (slot: number) => boolean): void {
    const want = archived ? 2 : 1;
    for (let s = Math.max(0, fromSlot); s < this.n; s++) if (this.life[s] === want && !visit(s)) return;
  }

  // ================= seeding =================

  /** Seeds one contact without events (bulk load); returns its slot. */
  seedContact(email: string, firstname: string, lastname: string, phone: string | null, createdAt: number, updatedAt: number): number {
    const slot = this.n++;
    if (this.n > this.life.length) this.ensureSlots(this.n);
    this.life[slot] = 1;
    this.createdAt[slot] = createdAt;
    this.updatedAt[slot] = updatedAt;
    this.activeCount++;
    this.email[slot] = email;
    this.firstname[slot] = firstname;
    this.lastname[slot] = lastname;
    if (phone) this.phone[slot] = phone;
    this.attach(slot, email);
    this.idxDirty = true;
    return slot;
  }

  /** Row of an already attached contact. */
  rowOfSlot(slot: number): number {
    return this.row[slot] ?? -1;
  }

  /** Bulk-load a subscription status (no events, no contact bump). */
  seedStatus(row: number, k: number, state: SubState, source: string, legalBasis: LegalBasis | null, at: number): void {
    (this.subState[k] as Uint8Array)[row] = CODE_OF[state];
    (this.subSrc[k] as Uint8Array)[row] = this.intern(source);
    (this.subBasis[k] as Uint8Array)[row] = legalBasis === null ? 0 : LEGAL_BASES.indexOf(legalBasis) + 1;
    (this.subTs[k] as Float64Array)[row] = at;
  }

  /** Bulk-load "unsubscribed from all email". */
  seedWideOptOut(row: number, source: string, at: number): void {
    this.wide[row] = 2;
    this.wideSrc[row] = this.intern(source);
    this.wideTs[row] = at;
  }

  /** Marks a slot as having a pending privacy-deletion request (seeded erasure). */
  markPrivacyPending(slot: number): void {
    this.pendingPrivacyDeletion.add(slot);
  }

  setSystemPropsRaw(slot: number, props: Record<string, string>): void {
    for (const [k, v] of Object.entries(props)) this.setRaw(slot, k, v);
  }

  finishSeed(): void {
    this.idxDirty = true;
    this.generation++;
  }
}
