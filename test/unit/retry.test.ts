import { describe, expect, it } from 'vitest';
import { backoffMs, classifyError, parseRetryAfter, retryDelayMs } from '../../src/engine/retry.js';

const NOW = Date.parse('2024-05-01T12:00:00.000Z');

function httpError(status: number, headers: Record<string, string> = {}, shape: 'flat' | 'axios' = 'flat'): Error {
  const e = new Error(`HTTP ${status}`);
  if (shape === 'flat') Object.assign(e, { status, headers });
  else Object.assign(e, { response: { status, headers } });
  return e;
}

describe('parseRetryAfter', () => {
  it('reads delta-seconds, decimals and HTTP dates', () => {
    expect(parseRetryAfter('120', NOW)).toBe(120_000);
    expect(parseRetryAfter(' 1.5 ', NOW)).toBe(1_500);
    expect(parseRetryAfter('Wed, 01 May 2024 12:00:30 GMT', NOW)).toBe(30_000);
  });
  it('never returns a negative wait; ignores garbage', () => {
    expect(parseRetryAfter('Wed, 01 May 2024 11:00:00 GMT', NOW)).toBe(0);
    expect(parseRetryAfter('soon', NOW)).toBeUndefined();
    expect(parseRetryAfter('', NOW)).toBeUndefined();
    expect(parseRetryAfter(undefined, NOW)).toBeUndefined();
  });
});

describe('classifyError', () => {
  it('429 retries and honours Retry-After seconds', () => {
    expect(classifyError(httpError(429, { 'retry-after': '7' }), NOW)).toMatchObject({ retry: true, waitMs: 7_000 });
  });
  it('429 honours an HTTP-date Retry-After, in the axios shape, whatever the header case', () => {
    expect(classifyError(httpError(429, { 'Retry-After': 'Wed, 01 May 2024 12:01:00 GMT' }, 'axios'), NOW)).toMatchObject({ retry: true, waitMs: 60_000 });
  });
  it('429 without Retry-After retries with no wait prescribed', () => {
    const v = classifyError(httpError(429), NOW);
    expect(v.retry).toBe(true);
    expect(v.waitMs).toBeUndefined();
    expect(v.reason).toMatch(/429/);
  });
  it('5xx, 408 and 425 retry', () => {
    for (const s of [500, 502, 503, 504, 408, 425]) expect(classifyError(httpError(s), NOW).retry).toBe(true);
    expect(classifyError(httpError(503, { 'retry-after': '2' }), NOW).waitMs).toBe(2_000);
  });
  it('other 4xx are permanent', () => {
    for (const s of [400, 401, 403, 404, 409, 422]) {
      const v = classifyError(httpError(s), NOW);
      expect(v.retry).toBe(false);
      expect(v.reason).toContain(String(s));
    }
  });
  it('statusCode and fetch Headers objects are understood', () => {
    const e = Object.assign(new Error('x'), { statusCode: 429, headers: new Headers({ 'Retry-After': '3' }) });
    expect(classifyError(e, NOW)).toMatchObject({ retry: true, waitMs: 3_000 });
  });
  it('network errors and timeouts retry', () => {
    for (const code of ['ECONNRESET', 'ETIMEDOUT', 'ECONNREFUSED', 'EAI_AGAIN', 'UND_ERR_SOCKET']) {
      expect(classifyError(Object.assign(new Error('boom'), { code }), NOW)).toMatchObject({ retry: true });
    }
    expect(classifyError(Object.assign(new Error('x'), { cause: { code: 'ECONNRESET' } }), NOW).retry).toBe(true);
    const abort = new Error('The operation was aborted');
    abort.name = 'AbortError';
    expect(classifyError(abort, NOW).retry).toBe(true);
    expect(classifyError(new Error('request timed out after 30s'), NOW).retry).toBe(true);
  });
  it('push results: retry keeps retryAfterMs, failed is permanent', () => {
    expect(classifyError({ key: 'k', status: 'retry', reason: 'busy', retryAfterMs: 1234 }, NOW)).toEqual({ retry: true, reason: 'busy', waitMs: 1234 });
    expect(classifyError({ key: 'k', status: 'retry', reason: 'busy' }, NOW)).toEqual({ retry: true, reason: 'busy' });
    expect(classifyError({ key: 'k', status: 'failed', reason: 'no such list' }, NOW)).toEqual({ retry: false, reason: 'no such list' });
  });
  it('unrecognised errors retry (bounded by maxAttempts) and say so', () => {
    const v = classifyError(new TypeError('x is undefined'), NOW);
    expect(v.retry).toBe(true);
    expect(v.reason).toMatch(/unclassified/);
    expect(classifyError('a string', NOW).retry).toBe(true);
  });
});

describe('backoffMs', () => {
  const opts = { baseMs: 1_000, maxMs: 30_000 };
  it('is exponential under full jitter', () => {
    const top = (): number => 0.999999;
    expect(backoffMs(1, opts, top)).toBe(999);
    expect(backoffMs(2, opts, top)).toBe(1_999);
    expect(backoffMs(3, opts, top)).toBe(3_999);
    expect(backoffMs(4, opts, () => 0.5)).toBe(4_000);
  });
  it('is capped by maxMs, even for huge attempts', () => {
    expect(backoffMs(6, opts, () => 0.999999)).toBe(29_999);
    expect(backoffMs(10_000, opts, () => 0.5)).toBe(15_000);
  });
  it('full jitter: zero is possible, never negative, never above the cap', () => {
    expect(backoffMs(3, opts, () => 0)).toBe(0);
    for (let i = 0; i < 200; i++) {
      const v = backoffMs(1 + (i % 8), opts);
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(30_000);
    }
  });
  it('treats attempt < 1 as the first attempt', () => {
    expect(backoffMs(0, opts, () => 0.5)).toBe(500);
  });
  it('retryDelayMs prefers the platform wait over backoff', () => {
    expect(retryDelayMs({ retry: true, reason: 'r', waitMs: 7_000 }, 5, opts, () => 0.5)).toBe(7_000);
    expect(retryDelayMs({ retry: true, reason: 'r' }, 2, opts, () => 0.5)).toBe(1_000);
  });
});
