/**
 * The shared seed generator: a deterministic, streaming population of people spread over the
 * four platforms with realistic overlap and disagreements. Every sandbox turns these people
 * into its own native state (see each sandbox's seed()).
 *
 * Person i depends only on (seed, i, opts): the generator never holds more than one person, so
 * a million can be streamed, and `generatePerson(i, seed)` gives the same person at random.
 */
import { seededRandom, type Random } from './random.js';
import type { SeedPerson, SeedPlatform, SeedPresence } from './seed-types.js';

export const SEED_PLATFORMS: readonly SeedPlatform[] = ['salesforce', 'hubspot', 'mailchimp', 'sendgrid'];
const MAILING: readonly SeedPlatform[] = ['mailchimp', 'sendgrid'];
const CRM: readonly SeedPlatform[] = ['salesforce', 'hubspot'];

export const DEFAULT_PURPOSES: readonly string[] = ['newsletter', 'product_updates', 'events'];

/** Fractions of people (0..1). Each "disagreement" lands in one (or two) platforms only. */
export interface SeedRates {
  /** Chance of a record in each platform (drawn independently; everyone is in at least one). */
  presence: Record<SeedPlatform, number>;
  /** A second, identical record in one platform. */
  duplicate: number;
  /** One platform holds the address in another case ("Jane.Doe.12@Example.com"). */
  caseVariant: number;
  /** Opted out of all email in exactly one platform. */
  optOutOne: number;
  /** Opted out of all email in exactly two platforms. */
  optOutTwo: number;
  /** Unsubscribed from one purpose only, in one platform (purposes[p] = 'denied'). */
  purposeOptOut: number;
  /** Hard bounced in one mailing platform (mailchimp or sendgrid). */
  hardBounce: number;
  /** Spam complaint in one mailing platform. */
  complaint: number;
  /** Erasure requested in one CRM (salesforce or hubspot). */
  erasure: number;
  /** Explicitly subscribed (subscribedAt + some purposes granted) in one or more platforms. */
  explicitSubscribe: number;
  /** Has a phone number. */
  phone: number;
}

export const DEFAULT_RATES: SeedRates = {
  presence: { salesforce: 0.7, hubspot: 0.6, mailchimp: 0.55, sendgrid: 0.5 },
  duplicate: 0.02,
  caseVariant: 0.05,
  optOutOne: 0.03,
  optOutTwo: 0.01,
  purposeOptOut: 0.02,
  hardBounce: 0.005,
  complaint: 0.002,
  erasure: 0.001,
  explicitSubscribe: 0.2,
  phone: 0.4,
};

export interface SeedOptions {
  rates?: Partial<Omit<SeedRates, 'presence'>> & { presence?: Partial<Record<SeedPlatform, number>> };
  /** Canonical purposes the platforms can express (default newsletter, product_updates, events). */
  purposes?: readonly string[];
  /**
   * The reference "now": every time is within the two years before it. Default: the start of
   * the current UTC day, so a seed gives the same people all day long; pass a fixed time for
   * byte-identical data across days.
   */
  now?: Date | string | number;
  /** First person index (default 0): lets several generators cover disjoint ranges. */
  startIndex?: number;
}

const FIRST = [
  'James', 'Mary', 'John', 'Patricia', 'Robert', 'Jennifer', 'Michael', 'Linda', 'William', 'Elizabeth',
  'David', 'Barbara', 'Richard', 'Susan', 'Joseph', 'Jessica', 'Thomas', 'Sarah', 'Charles', 'Karen',
  'Daniel', 'Nancy', 'Matthew', 'Lisa', 'Anthony', 'Betty', 'Mark', 'Margaret', 'Paul', 'Sandra',
  'Steven', 'Ashley', 'Andrew', 'Emily', 'Joshua', 'Michelle', 'Kevin', 'Amanda', 'Brian', 'Melissa',
  'Jane', 'Olivia', 'Lucas', 'Amelie', 'Mateo', 'Sofia', 'Noah', 'Chloe', 'Liam', 'Ines',
  'Hiroshi', 'Yuki', 'Wei', 'Mei', 'Arjun', 'Priya', 'Omar', 'Fatima', 'Lars', 'Ingrid',
];
const LAST = [
  'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez',
  'Hernandez', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson', 'Martin',
  'Lee', 'Perez', 'Thompson', 'White', 'Harris', 'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson',
  'Walker', 'Young', 'Allen', 'King', 'Wright', 'Scott', 'Torres', 'Nguyen', 'Hill', 'Flores',
  'Doe', 'Muller', 'Schmidt', 'Dubois', 'Rossi', 'Tanaka', 'Sato', 'Chen', 'Wang', 'Patel',
  'Khan', 'Ali', 'Larsen', 'Nilsson', 'Novak', 'Kowalski', 'Silva', 'Santos', 'Okafor', 'Mensah',
];
const DOMAINS = ['example.com', 'example.org', 'example.net', 'mail.example.com', 'corp.example.org'];

const DAY_MS = 86_400_000;
const TWO_YEARS_MS = 730 * DAY_MS;

function mix32(x: number): number {
  // splitmix32-style finalizer: decorrelates consecutive indexes before seeding mulberry32.
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

function personRandom(seed: number, index: number): Random {
  return seededRandom(mix32(mix32(seed) ^ Math.imul(index + 1, 0x9e3779b1)));
}

function pick<T>(r: Random, items: readonly T[]): T {
  const item = items[Math.floor(r() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

function shuffled<T>(r: Random, items: readonly T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = a[i] as T;
    a[i] = a[j] as T;
    a[j] = t;
  }
  return a;
}

function resolveNow(now: SeedOptions['now']): number {
  if (now === undefined) return Math.floor(Date.now() / DAY_MS) * DAY_MS;
  const t = now instanceof Date ? now.getTime() : typeof now === 'number' ? now : Date.parse(now);
  if (!Number.isFinite(t)) throw new Error(`invalid seed "now": ${String(now)}`);
  return t;
}

function iso(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString();
}

/** A random time in [from, to]. */
function between(r: Random, from: number, to: number): number {
  return from + r() * Math.max(0, to - from);
}

function caseVariant(email: string): string {
  // "jane.doe.12@example.com" -> "Jane.Doe.12@Example.com"
  return email
    .split(/([.@])/)
    .map((part) => (part.length > 0 ? (part[0] ?? '').toUpperCase() + part.slice(1) : part))
    .join('');
}

interface Resolved {
  rates: SeedRates;
  purposes: readonly string[];
  now: number;
}

function resolve(opts: SeedOptions): Resolved {
  const r = opts.rates ?? {};
  const rates: SeedRates = { ...DEFAULT_RATES, ...r, presence: { ...DEFAULT_RATES.presence, ...(r.presence ?? {}) } };
  return { rates, purposes: opts.purposes ?? DEFAULT_PURPOSES, now: resolveNow(opts.now) };
}

function build(index: number, seed: number, cfg: Resolved): SeedPerson {
  const { rates, purposes, now } = cfg;
  const r = personRandom(seed, index);
  const firstName = pick(r, FIRST);
  const lastName = pick(r, LAST);
  const domain = pick(r, DOMAINS);
  const email = `${firstName}.${lastName}.${index}@${domain}`.toLowerCase();
  const phone = r() < rates.phone ? `+1${200 + Math.floor(r() * 800)}555${String(Math.floor(r() * 10_000)).padStart(4, '0')}` : null;
  const createdAt = between(r, now - TWO_YEARS_MS, now - DAY_MS);

  // Where the person has records.
  const present = new Set<SeedPlatform>();
  for (const p of SEED_PLATFORMS) if (r() < rates.presence[p]) present.add(p);
  if (present.size === 0) {
    // Nobody is nowhere: weight the fallback by the platforms' own rates.
    const total = SEED_PLATFORMS.reduce((s, p) => s + rates.presence[p], 0);
    let x = r() * (total > 0 ? total : 1);
    let chosen: SeedPlatform = 'salesforce';
    for (const p of SEED_PLATFORMS) {
      x -= total > 0 ? rates.presence[p] : 0.25;
      if (x <= 0) {
        chosen = p;
        break;
      }
    }
    present.add(chosen);
  }
  /** Makes sure one of `among` is present (adds one at random if not) and returns those present. */
  const ensureAmong = (among: readonly SeedPlatform[], atLeast = 1): SeedPlatform[] => {
    let have = among.filter((p) => present.has(p));
    for (const p of shuffled(r, among.filter((q) => !present.has(q)))) {
      if (have.length >= atLeast) break;
      present.add(p);
      have = among.filter((q) => present.has(q));
    }
    return have;
  };

  // Draw the disagreements first: they may need a platform the person is not yet in.
  const draw = r();
  const optOutPlatforms: SeedPlatform[] = [];
  if (draw < rates.optOutOne) optOutPlatforms.push(...shuffled(r, ensureAmong(SEED_PLATFORMS, 1)).slice(0, 1));
  else if (draw < rates.optOutOne + rates.optOutTwo) optOutPlatforms.push(...shuffled(r, ensureAmong(SEED_PLATFORMS, 2)).slice(0, 2));
  const bounced = r() < rates.hardBounce ? pick(r, ensureAmong(MAILING)) : null;
  const complained = r() < rates.complaint ? pick(r, ensureAmong(MAILING)) : null;
  const erased = r() < rates.erasure ? pick(r, ensureAmong(CRM)) : null;
  const purposeOut = r() < rates.purposeOptOut && purposes.length > 0 ? { platform: pick(r, [...present]), purpose: pick(r, purposes) } : null;

  const platforms = SEED_PLATFORMS.filter((p) => present.has(p));
  // Explicit subscription: captured in one platform (a form), usually synced to some others.
  const subscribed = new Set<SeedPlatform>();
  let subscribedAt = 0;
  let granted: string[] = [];
  if (r() < rates.explicitSubscribe) {
    const first = pick(r, platforms);
    subscribed.add(first);
    for (const p of platforms) if (p !== first && r() < 0.5) subscribed.add(p);
    subscribedAt = between(r, createdAt, now - DAY_MS / 2);
    granted = purposes.filter(() => r() < 0.6);
    if (granted.length === 0 && purposes.length > 0) granted = [pick(r, purposes)];
  }
  const duplicateIn = r() < rates.duplicate ? pick(r, platforms) : null;
  const variantIn = r() < rates.caseVariant ? pick(r, platforms) : null;

  const presence: Partial<Record<SeedPlatform, SeedPresence>> = {};
  for (const p of platforms) {
    const isSubscribed = subscribed.has(p);
    const subAt = isSubscribed ? subscribedAt + r() * 60_000 : 0;
    const optedOut = optOutPlatforms.includes(p);
    const last = Math.max(createdAt, subAt);
    const optedOutAt = optedOut ? between(r, last, now) : 0;
    const purposeMap: Record<string, 'granted' | 'denied' | 'unknown'> = {};
    for (const purpose of purposes) purposeMap[purpose] = isSubscribed && granted.includes(purpose) ? 'granted' : 'unknown';
    let purposeOutAt = 0;
    if (purposeOut && purposeOut.platform === p) {
      purposeMap[purposeOut.purpose] = 'denied';
      purposeOutAt = between(r, last, now);
    }
    let updatedAt = Math.max(last, optedOutAt, purposeOutAt);
    if (p === bounced || p === complained || p === erased) updatedAt = between(r, updatedAt, now);
    else if (updatedAt === createdAt) updatedAt = between(r, createdAt, now);

    const base = variantIn === p ? caseVariant(email) : email;
    const emails = duplicateIn === p ? [base, email] : [base];
    presence[p] = {
      emails,
      optedOut,
      optedOutAt: optedOut ? iso(optedOutAt) : null,
      subscribedAt: isSubscribed ? iso(subAt) : null,
      purposes: purposeMap,
      hardBounced: bounced === p,
      complained: complained === p,
      erasureRequested: erased === p,
      updatedAt: iso(updatedAt),
    };
  }
  return { index, email, firstName, lastName, phone, presence };
}

/** Person number `index` of the population `seed` (the same one generatePeople yields). */
export function generatePerson(index: number, seed: number, opts: SeedOptions = {}): SeedPerson {
  return build(index, seed, resolve(opts));
}

/** Streams `count` people, deterministic from `seed` (and opts.now). Holds one person at a time. */
export function* generatePeople(count: number, seed: number, opts: SeedOptions = {}): Generator<SeedPerson, void, undefined> {
  const cfg = resolve(opts);
  const start = opts.startIndex ?? 0;
  for (let i = 0; i < count; i++) yield build(start + i, seed, cfg);
}
