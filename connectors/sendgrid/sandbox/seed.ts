import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import type { SendGridState } from './state.js';
import { BOUNCE_REASON } from './lists.js';

/**
 * Turns seed people into suppressions (no events), per distinct lowercased address in
 * presence.sendgrid.emails (SendGrid suppressions are per address):
 * - optedOut -> global unsubscribe, created = optedOutAt;
 * - a purpose denied -> suppression in the group whose purpose it is, created = updatedAt;
 * - hardBounced -> bounce (550 5.1.1), complained -> spam report, created = updatedAt.
 * Everyone else has no suppression (SendGrid holds no record of consent, only its absence).
 * Returns the number of addresses seen.
 */
export function seedSendGrid(state: SendGridState, people: Iterable<SeedPerson>): number {
  let addresses = 0;
  const groupsByPurpose = new Map([...state.groups.values()].map((g) => [g.purpose, g] as const));
  for (const person of people) {
    const p = person.presence.sendgrid;
    if (!p) continue;
    const updated = Math.floor((Date.parse(p.updatedAt) || Date.now()) / 1000);
    const seen = new Set<string>();
    for (const email of p.emails) {
      const key = email.toLowerCase();
      if (seen.has(key)) continue;
      seen.add(key);
      addresses++;
      if (p.optedOut) state.global.add({ email, created: Math.floor(Date.parse(p.optedOutAt ?? p.updatedAt) / 1000) || updated });
      for (const [purpose, st] of Object.entries(p.purposes)) {
        const g = groupsByPurpose.get(purpose);
        if (g && st === 'denied') g.suppressions.add({ email, created: updated });
      }
      if (p.hardBounced) state.lists.bounces.add({ email, created: updated, reason: BOUNCE_REASON, status: '5.1.1' });
      if (p.complained) state.lists.spam_reports.add({ email, created: updated, ip: '192.0.2.10' });
    }
  }
  return addresses;
}
