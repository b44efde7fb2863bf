import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hsError } from './errors.js';

const MISSING =
  'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview';

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Private-app auth: `Authorization: Bearer <token>`. Answers 401 and returns false otherwise. */
export function authorize(req: IncomingMessage, res: ServerResponse, accessToken: string): boolean {
  const h = req.headers.authorization ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(h);
  if (m && same((m[1] ?? '').trim(), accessToken)) return true;
  hsError(res, 401, 'INVALID_AUTHENTICATION', MISSING);
  return false;
}
