import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import type { HubSpotState } from './state.js';

const DAY = 86_400_000;

/** Source recorded on seeded statuses (HubSpot shows the import that set them). */
export const SEED_SOURCE = 'IMPORT';

/**
 * Turns seed people into HubSpot state:
 * - one contact per presence.hubspot.emails entry (case variants and duplicates kept as
 *   separate contacts, as imports create them);
 * - hs_email_optout from optedOut (the address's portal-wide status);
 * - subscription statuses per address from purposes (granted -> SUBSCRIBED, denied ->
 *   UNSUBSCRIBED, unknown -> NOT_SPECIFIED), timestamped subscribedAt / optedOutAt / updatedAt,
 *   legal basis CONSENT_WITH_NOTICE when the grant is explicit (subscribedAt set), else
 *   LEGITIMATE_INTEREST_OTHER;
 * - complained -> unsubscribed from all (source SPAM_REPORT);
 * - hardBounced -> hs_email_hard_bounce_reason_enum=BAD_MAILBOX, hs_email_bad_address=true;
 * - erasureRequested -> a pending privacy deletion (state.pendingPrivacyDeletion): the contact
 *   stays until processPrivacyDeletions() / POST /__sandbox/actions/process-privacy-deletions
 *   performs it and emits contact.privacyDeletion.
 * createdate = updatedAt minus 0..399 days (deterministic from the index).
 * No webhooks are emitted for seeded data.
 */
export function seedPeople(state: HubSpotState, people: Iterable<SeedPerson>): number {
  let created = 0;
  const typeByPurpose = new Map(state.subscriptionTypes.map((t, k) => [t.purpose, k] as const));
  const rows: number[] = [];
  for (const person of people) {
    const p = person.presence.hubspot;
    if (!p) continue;
    const updatedAt = Date.parse(p.updatedAt) || Date.now();
    const createdAt = updatedAt - ((person.index * 7919) % 400) * DAY;
    rows.length = 0;
    for (const email of p.emails) {
      const slot = state.seedContact(email, person.firstName, person.lastName, person.phone, createdAt, updatedAt);
      created++;
      if (p.hardBounced) state.setSystemPropsRaw(slot, { hs_email_hard_bounce_reason_enum: 'BAD_MAILBOX', hs_email_bad_address: 'true' });
      if (p.erasureRequested) state.markPrivacyPending(slot);
      const r = state.rowOfSlot(slot);
      if (r >= 0 && !rows.includes(r)) rows.push(r);
    }
    if (rows.length === 0) continue;
    // Statuses belong to the address (case-insensitive): set once per distinct address.
    const subscribedAt = p.subscribedAt ? Date.parse(p.subscribedAt) || updatedAt : updatedAt;
    const optedOutAt = p.optedOutAt ? Date.parse(p.optedOutAt) || updatedAt : updatedAt;
    for (const purpose in p.purposes) {
      const st = p.purposes[purpose];
      const k = typeByPurpose.get(purpose);
      if (k === undefined || st === 'unknown' || st === undefined) continue;
      const granted = st === 'granted';
      for (const r of rows) {
        state.seedStatus(
          r,
          k,
          granted ? 'SUBSCRIBED' : 'UNSUBSCRIBED',
          SEED_SOURCE,
          granted ? (p.subscribedAt ? 'CONSENT_WITH_NOTICE' : 'LEGITIMATE_INTEREST_OTHER') : null,
          granted ? subscribedAt : optedOutAt,
        );
      }
    }
    if (p.optedOut || p.complained) {
      for (const r of rows) state.seedWideOptOut(r, p.complained && !p.optedOut ? 'SPAM_REPORT' : SEED_SOURCE, optedOutAt);
    }
  }
  state.finishSeed();
  return created;
}
