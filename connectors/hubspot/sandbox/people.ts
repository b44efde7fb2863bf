/**
 * A small deterministic generator of SeedPerson values present in HubSpot only, for tests and
 * benchmarks of this sandbox when the shared generator (src/sandbox/seed.ts) is not wanted.
 * Every 50th person has a case-variant duplicate contact, every 10th opted out, every 97th
 * hard-bounced, every 501st asked for erasure; updatedAt spreads over 90 days before `now`.
 */
import { seededRandom } from '../../../src/sandbox/random.js';
import type { SeedPerson } from '../../../src/sandbox/seed-types.js';

const FIRST = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Margaret', 'Ken', 'Radia', 'Linus'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Hamilton', 'Thompson', 'Perlman', 'Torvalds'];

export function* hubspotPeople(count: number, opts: { seed?: number; now?: number; start?: number; purposes?: string[] } = {}): Generator<SeedPerson> {
  const rnd = seededRandom(opts.seed ?? 1);
  const now = opts.now ?? Date.parse('2025-06-01T00:00:00.000Z');
  const purposes = opts.purposes ?? ['newsletter', 'product_updates'];
  const start = opts.start ?? 0;
  for (let i = start; i < start + count; i++) {
    const email = `person${i}@example.com`;
    const emails = i % 50 === 7 ? [email, `Person${i}@Example.com`] : [email];
    const optedOut = i % 10 === 3;
    const updatedAt = new Date(now - Math.floor(rnd() * 90 * 86_400_000)).toISOString();
    const p: Record<string, 'granted' | 'denied' | 'unknown'> = {};
    for (const purpose of purposes) {
      const r = rnd();
      p[purpose] = r < 0.5 ? 'granted' : r < 0.7 ? 'denied' : 'unknown';
    }
    const explicit = rnd() < 0.6;
    yield {
      index: i,
      email,
      firstName: FIRST[i % FIRST.length] ?? 'Ada',
      lastName: LAST[Math.floor(i / FIRST.length) % LAST.length] ?? 'Lovelace',
      phone: i % 3 === 0 ? `+4420${String(7000000 + i).padStart(8, '0')}` : null,
      presence: {
        hubspot: {
          emails,
          optedOut,
          optedOutAt: optedOut ? updatedAt : null,
          subscribedAt: explicit ? updatedAt : null,
          purposes: p,
          hardBounced: i % 97 === 5,
          complained: false,
          erasureRequested: i % 501 === 11,
          updatedAt,
        },
      },
    };
  }
}
