import type { SendGridHttp } from './http.js';

/** Global unsubscribes (ASM global suppressions): add in bulk, look one up. Never deleted by consentd. */

/** POST /asm/suppressions/global {recipient_emails}: idempotent (an address already there stays). */
export async function addGlobalUnsubscribes(http: SendGridHttp, emails: string[]): Promise<void> {
  await http.request({ method: 'POST', path: '/asm/suppressions/global', endpoint: 'POST /asm/suppressions/global', data: { recipient_emails: emails } });
}

/** GET /asm/suppressions/global/{email}: `{recipient_email}` when present, `{}` otherwise. */
export async function isGloballyUnsubscribed(http: SendGridHttp, email: string): Promise<boolean> {
  const res = await http.request<unknown>({ method: 'GET', path: `/asm/suppressions/global/${encodeURIComponent(email)}`, endpoint: 'GET /asm/suppressions/global/{email}' });
  const body = res.data;
  return typeof body === 'object' && body !== null && typeof (body as { recipient_email?: unknown }).recipient_email === 'string';
}
