import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import type { Value } from './schema.js';
import type { SalesforceState } from './state.js';

const DAY = 86_400_000;

export interface SeedCounts {
  people: number;
  contacts: number;
  leads: number;
  individuals: number;
  consents: number;
}

/**
 * Turns seed people into native rows, without outbound messages. Every 5th person (index % 5
 * === 4) is held as Leads, and every 25th (index % 25 === 4) as a converted Lead plus the Contact
 * it became. One record per entry of presence.emails. An Individual is made only when needed:
 * erasure requested (ShouldForget), every 3rd opted-out person (HasOptedOutSolicit), or consent
 * evidence to hang ContactPointTypeConsents on (granted purposes -> OptIn with CaptureDate =
 * subscribedAt; denied -> OptOut; subscribedAt without purposes -> an OptIn with no purpose).
 */
export function seedPeople(state: SalesforceState, people: Iterable<SeedPerson>): SeedCounts {
  const counts: SeedCounts = { people: 0, contacts: 0, leads: 0, individuals: 0, consents: 0 };
  const contacts = state.contacts;
  const leads = state.leads;
  const individuals = state.tables.get('Individual');
  const consents = state.tables.get('ContactPointTypeConsent');
  for (const p of people) {
    const pr = p.presence.salesforce;
    if (!pr || pr.emails.length === 0) continue;
    counts.people++;
    const updated = Date.parse(pr.updatedAt);
    const subscribed = pr.subscribedAt ? Date.parse(pr.subscribedAt) : null;
    const optedOutAt = pr.optedOutAt ? Date.parse(pr.optedOutAt) : null;
    const created = Math.min(updated, subscribed ?? updated, optedOutAt ?? updated) - (p.index % 97) * DAY;
    const isLead = p.index % 5 === 4;
    const converted = isLead && p.index % 25 === 4;

    let individualId: string | null = null;
    const purposeEntries = Object.entries(pr.purposes).filter(([, s]) => s !== 'unknown');
    const solicit = pr.optedOut && p.index % 3 === 0;
    if (individuals && (pr.erasureRequested || solicit || purposeEntries.length > 0 || subscribed !== null)) {
      const ind = individuals.insert({ FirstName: p.firstName, LastName: p.lastName, ShouldForget: pr.erasureRequested, HasOptedOutSolicit: solicit }, updated, created);
      individualId = individuals.idOf(ind);
      counts.individuals++;
      if (consents) {
        const evidence: [string | null, 'granted' | 'denied'][] = purposeEntries.map(([name, s]) => [name, s === 'granted' ? 'granted' : 'denied']);
        if (evidence.length === 0 && subscribed !== null) evidence.push([null, 'granted']);
        for (const [name, s] of evidence) {
          const purpose = name === null ? undefined : state.purpose(name, created);
          const at = s === 'granted' ? (subscribed ?? updated) : (optedOutAt ?? updated);
          consents.insert(
            {
              Name: `${name ?? 'Email'} consent`,
              PartyId: individualId,
              ContactPointType: 'Email',
              PrivacyConsentStatus: s === 'granted' ? 'OptIn' : 'OptOut',
              DataUsePurposeId: purpose ? (state.tables.get('DataUsePurpose')?.idOf(purpose) ?? null) : null,
              CaptureDate: at,
              CaptureSource: 'Seed import',
              CaptureContactPointType: 'Email',
              EffectiveFrom: at,
            },
            updated,
            Math.min(at, updated),
          );
          counts.consents++;
        }
      }
    }

    const base: Record<string, Value | undefined> = {
      FirstName: p.firstName,
      LastName: p.lastName,
      Phone: p.phone,
      HasOptedOutOfEmail: pr.optedOut,
      IndividualId: individualId,
      EmailBouncedReason: pr.hardBounced ? '550 5.1.1 The email account that you tried to reach does not exist' : null,
      EmailBouncedDate: pr.hardBounced ? updated : null,
    };
    let convertedContactId: string | null = null;
    if (converted) {
      base['Email'] = pr.emails[0] ?? null;
      convertedContactId = contacts.idOf(contacts.insert(base, updated, created));
      counts.contacts++;
    }
    if (isLead) {
      base['Company'] = `${p.lastName} Household`;
      base['Status'] = converted ? 'Closed - Converted' : 'Open - Not Contacted';
      base['IsConverted'] = converted;
      base['ConvertedContactId'] = convertedContactId;
      base['ConvertedDate'] = converted ? updated : null;
    }
    // One values object per person; the row factory copies what it needs.
    for (const email of pr.emails) {
      base['Email'] = email;
      if (isLead) {
        leads.insert(base, updated, created);
        counts.leads++;
      } else {
        contacts.insert(base, updated, created);
        counts.contacts++;
      }
    }
  }
  return counts;
}
