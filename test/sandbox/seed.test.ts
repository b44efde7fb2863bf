import { describe, expect, it } from 'vitest';
import { DEFAULT_PURPOSES, generatePeople, generatePerson } from '../../src/sandbox/seed.js';
import type { SeedPerson, SeedPlatform } from '../../src/sandbox/seed-types.js';

const NOW = '2025-06-01T00:00:00.000Z';

function near(actual: number, expected: number, tolerance = 0.3): void {
  expect(actual, `${actual} vs ${expected}`).toBeGreaterThanOrEqual(expected * (1 - tolerance));
  expect(actual, `${actual} vs ${expected}`).toBeLessThanOrEqual(expected * (1 + tolerance));
}

describe('generatePeople', () => {
  it('is deterministic from the seed and person i does not depend on count', () => {
    const a = [...generatePeople(500, 42, { now: NOW })];
    const b = [...generatePeople(500, 42, { now: NOW })];
    expect(a).toEqual(b);
    const c = [...generatePeople(500, 43, { now: NOW })];
    expect(c).not.toEqual(a);
    expect(generatePerson(321, 42, { now: NOW })).toEqual(a[321]);
    const tail = [...generatePeople(10, 42, { now: NOW, startIndex: 490 })];
    expect(tail).toEqual(a.slice(490));
  });

  it('produces plausible people: unique emails, names, ISO times in the last two years, phones', () => {
    const now = Date.parse(NOW);
    const emails = new Set<string>();
    let phones = 0;
    for (const p of generatePeople(5000, 7, { now: NOW })) {
      expect(p.email).toMatch(/^[a-z]+\.[a-z]+\.\d+@[a-z.]+$/);
      expect(p.email.startsWith(`${p.firstName}.${p.lastName}`.toLowerCase())).toBe(true);
      emails.add(p.email);
      if (p.phone) {
        phones++;
        expect(p.phone).toMatch(/^\+1\d{10}$/);
      }
      const present = Object.values(p.presence);
      expect(present.length).toBeGreaterThanOrEqual(1);
      for (const pr of present) {
        for (const t of [pr.updatedAt, pr.optedOutAt, pr.subscribedAt]) {
          if (t === null) continue;
          expect(t).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
          const ms = Date.parse(t);
          expect(ms).toBeLessThanOrEqual(now);
          expect(ms).toBeGreaterThanOrEqual(now - 731 * 86_400_000);
        }
        for (const e of pr.emails) expect(e.toLowerCase()).toBe(p.email);
        expect(Object.keys(pr.purposes).sort()).toEqual([...DEFAULT_PURPOSES].sort());
        if (pr.optedOut) expect(pr.optedOutAt).not.toBeNull();
        if (pr.subscribedAt && pr.optedOutAt) expect(pr.optedOutAt >= pr.subscribedAt).toBe(true);
      }
    }
    expect(emails.size).toBe(5000);
    expect(phones).toBeGreaterThan(1000);
  });

  it('hits the configured rates roughly (50k people)', () => {
    const n = 50_000;
    const presence: Record<SeedPlatform, number> = { salesforce: 0, hubspot: 0, mailchimp: 0, sendgrid: 0 };
    let dup = 0, variant = 0, out1 = 0, out2 = 0, bounce = 0, complaint = 0, erasure = 0, subscribed = 0, purposeDenied = 0;
    for (const p of generatePeople(n, 2024, { now: NOW })) {
      const entries = Object.entries(p.presence);
      for (const [k] of entries) presence[k as SeedPlatform]++;
      if (entries.some(([, pr]) => pr.emails.length > 1)) dup++;
      if (entries.some(([, pr]) => pr.emails.some((e) => e !== p.email))) variant++;
      const outs = entries.filter(([, pr]) => pr.optedOut).length;
      if (outs === 1) out1++;
      if (outs === 2) out2++;
      const bounced = entries.filter(([, pr]) => pr.hardBounced);
      if (bounced.length > 0) {
        bounce++;
        expect(bounced.length).toBe(1);
        expect(['mailchimp', 'sendgrid']).toContain(bounced[0]?.[0]);
      }
      const complained = entries.filter(([, pr]) => pr.complained);
      if (complained.length > 0) {
        complaint++;
        expect(['mailchimp', 'sendgrid']).toContain(complained[0]?.[0]);
      }
      const erased = entries.filter(([, pr]) => pr.erasureRequested);
      if (erased.length > 0) {
        erasure++;
        expect(['salesforce', 'hubspot']).toContain(erased[0]?.[0]);
      }
      const subs = entries.filter(([, pr]) => pr.subscribedAt !== null);
      if (subs.length > 0) {
        subscribed++;
        for (const [, pr] of subs) expect(Object.values(pr.purposes).some((s) => s !== 'unknown')).toBe(true);
      }
      if (entries.some(([, pr]) => Object.values(pr.purposes).includes('denied'))) purposeDenied++;
    }
    near(presence.salesforce / n, 0.7);
    near(presence.hubspot / n, 0.6);
    near(presence.mailchimp / n, 0.55);
    near(presence.sendgrid / n, 0.5);
    near(dup / n, 0.02);
    near(variant / n, 0.05);
    near(out1 / n, 0.03);
    near(out2 / n, 0.01);
    near(bounce / n, 0.005);
    near(complaint / n, 0.002);
    near(erasure / n, 0.001);
    near(subscribed / n, 0.2);
    near(purposeDenied / n, 0.02);
  });

  it('lets a test set rates and purposes', () => {
    const people: SeedPerson[] = [
      ...generatePeople(2000, 5, {
        now: NOW,
        purposes: ['alpha', 'beta'],
        rates: { presence: { salesforce: 0, hubspot: 0, mailchimp: 1, sendgrid: 0 }, optOutOne: 0.5, optOutTwo: 0, explicitSubscribe: 1, hardBounce: 0, complaint: 0, erasure: 0, purposeOptOut: 0 },
      }),
    ];
    for (const p of people) {
      expect(Object.keys(p.presence)).toEqual(['mailchimp']);
      expect(Object.keys(p.presence.mailchimp?.purposes ?? {})).toEqual(['alpha', 'beta']);
      expect(p.presence.mailchimp?.subscribedAt).not.toBeNull();
    }
    near(people.filter((p) => p.presence.mailchimp?.optedOut).length / people.length, 0.5, 0.1);
  });

  it('streams: memory does not grow with the number of people', () => {
    const gen = generatePeople(250_000, 9, { now: NOW });
    for (let i = 0; i < 20_000; i++) gen.next();
    const before = process.memoryUsage().heapUsed;
    let count = 0;
    let peak = before;
    for (const p of gen) {
      count += p.index >= 0 ? 1 : 0;
      if (count % 50_000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
    }
    expect(count).toBe(230_000);
    // Holding 230k people would take hundreds of MB; garbage between GCs stays well under this.
    expect(peak - before).toBeLessThan(120 * 1024 * 1024);
  });
});
