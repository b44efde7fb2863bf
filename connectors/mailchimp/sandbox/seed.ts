import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import { ABUSE_REASON } from './members.js';
import { mcTime, purposeOf, subscriberHash, type ListState, type MailchimpState } from './state.js';

/** unsubscribe_reason given to seeded opt-outs. */
export const SEED_UNSUB_REASON = 'N/A (Unsubscribed by the contact)';

/**
 * Turns seed people into list members (no webhooks):
 * - one member per distinct lowercased address in presence.mailchimp.emails (Mailchimp keys
 *   members by md5 of the lowercased address, so duplicates and case variants collapse; the
 *   first spelling is kept);
 * - hardBounced -> cleaned; complained -> unsubscribed (reason abuse); optedOut -> unsubscribed;
 *   subscribedAt -> subscribed with timestamp_opt / ip_opt (explicit); otherwise an import:
 *   subscribed without timestamp_opt (implicit), or pending for about 1 in 25;
 * - marketing permissions (and interests with a purpose) from presence.purposes: granted ->
 *   enabled, anything else -> disabled;
 * - last_changed = updatedAt. An address already present (e.g. seeded twice) is left alone.
 */
export function seedMailchimp(state: MailchimpState, list: ListState, people: Iterable<SeedPerson>): number {
  let created = 0;
  const perms = list.config.marketingPermissions.map((p) => ({ id: p.id, purpose: purposeOf(p) }));
  const interests = (list.config.interestCategories ?? []).flatMap((c) => c.interests.map((i) => ({ id: i.id, purpose: purposeOf(i) })));
  for (const person of people) {
    const p = person.presence.mailchimp;
    if (!p) continue;
    const seen = new Set<string>();
    for (const email of p.emails) {
      const hash = subscriberHash(email);
      if (seen.has(hash) || list.members.has(hash)) continue;
      seen.add(hash);
      const updated = Date.parse(p.updatedAt) || Date.now();
      const m = state.newMember(list.config.id, email, 'subscribed', updated);
      m.source = 'Import';
      m.mergeFields = { FNAME: person.firstName, LNAME: person.lastName, ...(person.phone ? { PHONE: person.phone } : {}) };
      const ip = `198.51.100.${(person.index % 254) + 1}`;
      if (p.subscribedAt) {
        m.timestampOpt = mcTime(Date.parse(p.subscribedAt));
        m.ipOpt = ip;
        m.timestampSignup = m.timestampOpt;
        m.ipSignup = ip;
        m.source = 'Hosted Signup Form';
      }
      if (p.hardBounced) m.status = 'cleaned';
      else if (p.complained) {
        m.status = 'unsubscribed';
        m.unsubscribeReason = ABUSE_REASON;
      } else if (p.optedOut) {
        m.status = 'unsubscribed';
        m.unsubscribeReason = SEED_UNSUB_REASON;
      } else if (!p.subscribedAt && person.index % 25 === 7) m.status = 'pending';
      for (const x of perms) m.permissions[x.id] = p.purposes[x.purpose] === 'granted';
      for (const x of interests) if (x.purpose in p.purposes) m.interests[x.id] = p.purposes[x.purpose] === 'granted';
      list.add(m);
      created++;
    }
  }
  return created;
}
