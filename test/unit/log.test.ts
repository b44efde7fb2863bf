import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, createScrubber } from '../../src/log/logger.js';
import { subjectHash } from '../../src/model/email.js';

const SALT = 'log-test-salt-0123456789';
const SECRETS = ['sk_live_0123456789abcdef', 'p@ss"word\\with-quotes', 'admin-token-fedcba9876543210'];

function capture(pii: boolean, level = 'info') {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const logger = createLogger({ level, pii, salt: SALT, secrets: SECRETS, destination });
  return { logger, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

function logEverything(logger: ReturnType<typeof createLogger>): void {
  logger.info({ email: 'Ann.Example@Example.COM', connector: 'crm' }, 'pulled a record');
  logger.info({ change: { subject: 'bob@example.org', op: 'set_consent' }, subjects: ['carol@example.net'] }, 'planned');
  logger.warn({ headers: { authorization: 'Bearer sk_live_0123456789abcdef', accept: 'json' } }, 'request');
  logger.info({ config: { apiKey: 'something-else-long', password: 'hunter2hunter2', oauth: { clientSecret: 'cs-1' } }, token: 't' }, 'keys');
  logger.error({ err: new Error('push failed for dave@example.com with key sk_live_0123456789abcdef') }, 'sending to erin@example.com failed');
  logger.info({ detail: 'the admin token is admin-token-fedcba9876543210 and the password p@ss"word\\with-quotes' }, 'secret in free text');
  logger.child({ email: 'frank@example.com' }).child({ subject: 'gina@example.com' }).info({ to: 'hank@example.com' }, 'child logger');
}

const EMAILS = /ann\.example|bob@|carol@|dave@|erin@|frank@|gina@|hank@/i;

describe('createLogger', () => {
  it('emits JSON lines without secrets or emails at default settings', () => {
    const { logger, lines, parsed } = capture(false);
    logEverything(logger);
    expect(lines).toHaveLength(7);
    const all = lines.join('\n');
    for (const s of [...SECRETS, 'hunter2hunter2', 'something-else-long', 'cs-1', 'p@ss\\"word']) expect(all).not.toContain(s);
    expect(all).not.toMatch(EMAILS);
    const [first, second, third, fourth, fifth] = parsed();
    expect(first?.['email']).toBe(subjectHash('ann.example@example.com', SALT));
    expect((second?.['change'] as Record<string, unknown>)['subject']).toBe(subjectHash('bob@example.org', SALT));
    expect(second?.['subjects']).toEqual([subjectHash('carol@example.net', SALT)]);
    expect((third?.['headers'] as Record<string, unknown>)['authorization']).toBe('[REDACTED]');
    expect((third?.['headers'] as Record<string, unknown>)['accept']).toBe('json');
    expect(fourth?.['config']).toEqual({ apiKey: '[REDACTED]', password: '[REDACTED]', oauth: { clientSecret: '[REDACTED]' } });
    expect(fourth?.['token']).toBe('[REDACTED]');
    expect(fifth?.['msg']).toBe(`sending to [email:${subjectHash('erin@example.com', SALT)}] failed`);
    const child = all.split('\n')[6] ?? '';
    expect(child).toContain(`"email":"${subjectHash('frank@example.com', SALT)}"`);
    expect(child).toContain(`"subject":"${subjectHash('gina@example.com', SALT)}"`);
    expect(child).toContain(`"to":"[email:${subjectHash('hank@example.com', SALT)}]"`);
    expect((fifth?.['err'] as Record<string, unknown>)['message']).toBe(`push failed for [email:${subjectHash('dave@example.com', SALT)}] with key [REDACTED]`);
  });

  it('with pii: true logs emails, still never secrets', () => {
    const { logger, lines, parsed } = capture(true);
    logEverything(logger);
    const all = lines.join('\n');
    for (const s of SECRETS) expect(all).not.toContain(s);
    expect(all).toContain('Ann.Example@Example.COM');
    expect(all).toContain('dave@example.com');
    expect(parsed()[4]?.['msg']).toBe('sending to erin@example.com failed');
  });

  it('respects the level', () => {
    const { logger, lines } = capture(false, 'warn');
    logger.info('hidden');
    logger.warn('shown');
    expect(lines).toHaveLength(1);
  });

  it('the scrubber ignores very short secrets rather than shredding lines', () => {
    const scrub = createScrubber({ pii: true, salt: SALT, secrets: ['a', '', 'long-enough'] });
    expect(scrub('{"msg":"a long-enough value"}')).toBe('{"msg":"a [REDACTED] value"}');
  });
});
