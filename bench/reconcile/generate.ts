/**
 * Writes the benchmark's four CSV "systems" from the shared seed generator: the same people and
 * disagreements the platform sandboxes get (opted out in one place only, case variants,
 * duplicates, bounces, complaints, erasure requests), streamed to disk with backpressure.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { generatePeople, SEED_PLATFORMS } from '../../src/sandbox/seed.js';
import type { SeedPresence } from '../../src/sandbox/seed-types.js';

export const SYSTEMS = SEED_PLATFORMS;

async function write(stream: WriteStream, line: string): Promise<void> {
  if (!stream.write(line)) await once(stream, 'drain');
}

function rowsFor(email: string, p: SeedPresence): string[] {
  const rows: string[] = [];
  const at = (t: string | null) => t ?? '';
  if (p.erasureRequested) rows.push(`${email},email,*,forget,${p.updatedAt},privacy request`);
  if (p.hardBounced) rows.push(`${email},email,*,bounced,${p.updatedAt},bounce`);
  if (p.complained) rows.push(`${email},email,*,complained,${p.updatedAt},spam report`);
  if (p.optedOut) rows.push(`${email},email,*,unsubscribed,${at(p.optedOutAt)},unsubscribe link`);
  else if (p.subscribedAt === null) rows.push(`${email},email,*,subscribed,,`); // an import: no evidence
  for (const [purpose, state] of Object.entries(p.purposes)) {
    if (state === 'granted' && p.subscribedAt) rows.push(`${email},email,${purpose},subscribed,${p.subscribedAt},double opt-in`);
    if (state === 'denied') rows.push(`${email},email,${purpose},unsubscribed,${p.updatedAt},preference center`);
  }
  return rows;
}

/** Returns the number of data rows written per system. */
export async function generateSystems(dir: string, people: number, seed: number): Promise<Record<string, number>> {
  const streams = new Map(SYSTEMS.map((s) => [s, createWriteStream(join(dir, `${s}.csv`))]));
  const counts: Record<string, number> = Object.fromEntries(SYSTEMS.map((s) => [s, 0]));
  for (const s of streams.values()) s.write('email,channel,purpose,state,stated_at,evidence\n');
  for (const person of generatePeople(people, seed, { now: '2026-11-01T00:00:00Z' })) {
    for (const system of SYSTEMS) {
      const presence = person.presence[system];
      const stream = streams.get(system);
      if (!presence || !stream) continue;
      for (const email of presence.emails) {
        const lines = rowsFor(email, presence);
        counts[system] = (counts[system] ?? 0) + lines.length;
        await write(stream, lines.map((l) => `${l}\n`).join(''));
      }
    }
  }
  await Promise.all([...streams.values()].map((s) => new Promise((resolve) => s.end(resolve))));
  return counts;
}

export function configYaml(dir: string): string {
  const connectors = SYSTEMS.map(
    (s) => `  - id: ${s}
    kind: csv
    grants: true
    limits: { batchSize: 100000 }
    settings:
      path: ${join(dir, `${s}.csv`)}
      purposes: { newsletter: newsletter, product_updates: product_updates, events: events }
`,
  ).join('');
  return `store:
  path: ${join(dir, 'bench.db')}
salt: bench-salt-0123456789abcdef
log: { level: warn, pii: false }
purposes:
  - id: newsletter
  - id: product_updates
  - id: events
connectors:
${connectors}`;
}
