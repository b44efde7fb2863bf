/**
 * Reading the sandboxes' state the way a person looking at each platform would: does this
 * address show as opted out of (all) email there? Used by `consentd demo` and bench/propagate
 * to time how fast an opt-out made in one platform shows in the others.
 */
import { subscriberHash } from '../../connectors/mailchimp/sandbox/index.js';
import { DEFAULT_PURPOSES, generatePeople, type SeedOptions } from '../sandbox/seed.js';
import type { SeedPerson, SeedPlatform } from '../sandbox/seed-types.js';
import type { SandboxSet } from './sandboxes.js';

export type OptOutView = 'opted_out' | 'not_opted_out' | 'absent';

/** What one platform shows for an address (every record of it must say "opted out"). */
export function optOutView(set: SandboxSet, platform: SeedPlatform, email: string): OptOutView {
  const e = email.toLowerCase();
  switch (platform) {
    case 'salesforce': {
      // Converted Leads are left alone (the Contact they became carries the person).
      const views = [...set.salesforce.state.contactsByEmail(e), ...set.salesforce.state.leadsByEmail(e).filter((l) => l['IsConverted'] !== true)];
      if (views.length === 0) return 'absent';
      return views.every((v) => v['HasOptedOutOfEmail'] === true) ? 'opted_out' : 'not_opted_out';
    }
    case 'hubspot': {
      const contacts = set.hubspot.state.contactsByEmail(e);
      if (contacts.length === 0) return 'absent';
      return contacts.every((c) => c.properties['hs_email_optout'] === 'true') ? 'opted_out' : 'not_opted_out';
    }
    case 'mailchimp': {
      let seen = false;
      for (const list of set.mailchimp.state.lists.values()) {
        const m = list.members.get(subscriberHash(e));
        if (!m) continue;
        seen = true;
        if (m.status !== 'unsubscribed' && m.status !== 'cleaned') return 'not_opted_out';
      }
      return seen ? 'opted_out' : 'absent';
    }
    case 'sendgrid':
      // SendGrid takes suppressions for any address: never "absent".
      return set.sendgrid.state.global.has(e) ? 'opted_out' : 'not_opted_out';
  }
}

/** A person who agrees everywhere after the first reconcile and can opt out in `origin`. */
export function isCleanPerson(p: SeedPerson): boolean {
  return Object.values(p.presence).every((pr) => !pr.optedOut && !pr.hardBounced && !pr.complained && !pr.erasureRequested && Object.values(pr.purposes).every((s) => s !== 'denied'));
}

/**
 * People to play opt-outs with: clean people present in the origin platform, round-robin over
 * `origins`. Deterministic for a seed.
 */
export function pickOptOuts(
  count: number,
  population: number,
  seed: number,
  origins: readonly SeedPlatform[],
  opts: SeedOptions = {},
): Array<{ person: SeedPerson; origin: SeedPlatform }> {
  const out: Array<{ person: SeedPerson; origin: SeedPlatform }> = [];
  const byOrigin = new Map<SeedPlatform, SeedPerson[]>(origins.map((o) => [o, []]));
  for (const p of generatePeople(population, seed, { purposes: DEFAULT_PURPOSES, ...opts })) {
    if (!isCleanPerson(p)) continue;
    // Case variants and duplicates are fine; the origin must hold the person.
    const present = origins.filter((o) => p.presence[o] !== undefined);
    // Someone to tell: another platform holds the person, or SendGrid (which takes any address).
    const candidates = present.filter((o) => present.some((q) => q !== o) || (o !== 'sendgrid' && origins.includes('sendgrid')));
    if (candidates.length === 0) continue;
    // Put the person in the origin list that is shortest so far.
    const o = candidates.reduce((a, b) => ((byOrigin.get(a)?.length ?? 0) <= (byOrigin.get(b)?.length ?? 0) ? a : b));
    byOrigin.get(o)?.push(p);
  }
  for (let i = 0; out.length < count; i++) {
    let added = false;
    for (const o of origins) {
      const p = byOrigin.get(o)?.[i];
      if (p && out.length < count) {
        out.push({ person: p, origin: o });
        added = true;
      }
    }
    if (!added) break;
  }
  return out;
}

/** The platforms that must show the opt-out: the others where the person is (SendGrid always). */
export function targetsOf(set: SandboxSet, email: string, origin: SeedPlatform, platforms: readonly SeedPlatform[]): SeedPlatform[] {
  return platforms.filter((p) => p !== origin && optOutView(set, p, email) !== 'absent');
}

/** The control action that makes a person opt out of all email in a platform. */
export async function playOptOut(set: SandboxSet, platform: SeedPlatform, email: string): Promise<void> {
  await set.action(platform, 'unsubscribe', { email });
}
