import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { collectSecrets, isSecretSchema, redactConfig, secret, REDACTED } from '../../src/config/secret.js';
import { duration, parseDuration } from '../../src/config/duration.js';

describe('secret()', () => {
  it('marks a string schema, also through refinements and wrappers', () => {
    expect(isSecretSchema(secret())).toBe(true);
    expect(isSecretSchema(secret(z.string().min(3)))).toBe(true);
    expect(isSecretSchema(secret().min(3))).toBe(true);
    expect(isSecretSchema(z.string())).toBe(false);
  });

  const schema = z.strictObject({
    name: z.string(),
    apiKey: secret(),
    optionalKey: secret().optional(),
    defaulted: secret().default('default-secret-value'),
    nullable: secret().nullable(),
    tokens: z.array(secret()).default([]),
    nested: z.object({ deep: z.object({ password: secret() }) }),
    byName: z.record(z.string(), secret()),
    kinds: z.array(
      z.discriminatedUnion('kind', [
        z.object({ kind: z.literal('a'), settings: z.object({ clientSecret: secret(), url: z.string() }) }),
        z.object({ kind: z.literal('b'), settings: z.object({ url: secret() }) }),
      ]),
    ),
    transformed: z.object({ wait: z.string() }).transform((o) => ({ ...o, waitMs: 5 })),
    piped: secret().transform((s) => s.trim()),
  });
  const value = schema.parse({
    name: 'visible',
    apiKey: 'key-1234',
    nullable: null,
    tokens: ['tok-aaaa', 'tok-bbbb'],
    nested: { deep: { password: 'pw-deep-1' } },
    byName: { x: 'rec-secret' },
    kinds: [
      { kind: 'a', settings: { clientSecret: 'cs-aaaa', url: 'https://a.example' } },
      { kind: 'b', settings: { url: 'https://secret.example/hook' } },
    ],
    transformed: { wait: '5s' },
    piped: ' piped-secret ',
  });

  it('collects every secret along the schema', () => {
    expect(collectSecrets(schema, value).sort()).toEqual(
      ['key-1234', 'default-secret-value', 'tok-aaaa', 'tok-bbbb', 'pw-deep-1', 'rec-secret', 'cs-aaaa', 'https://secret.example/hook', 'piped-secret'].sort(),
    );
  });

  it('redacts a copy and leaves the original alone', () => {
    const frozen = Object.freeze(value);
    const r = redactConfig(schema, frozen);
    expect(r.apiKey).toBe(REDACTED);
    expect(r.tokens).toEqual([REDACTED, REDACTED]);
    expect(r.nested.deep.password).toBe(REDACTED);
    expect(r.kinds[0]).toEqual({ kind: 'a', settings: { clientSecret: REDACTED, url: 'https://a.example' } });
    expect(r.kinds[1]).toEqual({ kind: 'b', settings: { url: REDACTED } });
    expect(r.name).toBe('visible');
    expect(r.nullable).toBeNull();
    expect(r.transformed).toEqual({ wait: '5s', waitMs: 5 });
    expect(value.apiKey).toBe('key-1234');
    expect(JSON.stringify(r)).not.toMatch(/key-1234|tok-aaaa|pw-deep|cs-aaaa|rec-secret|piped-secret/);
  });
});

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['730d', 730 * 86_400_000],
    ['1w', 604_800_000],
    ['1.5s', 1_500],
    [' 10 S ', 10_000],
    ['250', 250],
    [0, 0],
    [1500, 1500],
  ] as const)('%s -> %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(['', '5 minutes', 'ms', '-5s', '5x', '1e3s'])('rejects %j with the accepted forms', (bad) => {
    expect(() => parseDuration(bad)).toThrow(/invalid duration .*unit: ms, s, m, h, d or w/);
  });

  it('rejects negative and fractional numbers', () => {
    expect(() => parseDuration(-1)).toThrow(/non-negative integer/);
    expect(() => parseDuration(1.5)).toThrow(/non-negative integer/);
  });

  it('zod schema turns strings into ms and reports bad input as an issue', () => {
    expect(duration().parse('5m')).toBe(300_000);
    const r = duration().safeParse('soon');
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(/invalid duration "soon"/);
  });
});
