import { isRecord, type ApiRequest, type ApiResponse, type McContext } from './context.js';
import { badRequest, invalidResource, McHttpError } from './errors.js';
import { getList, writeMember } from './members.js';
import { memberView, subscriberHash } from './state.js';
import type { WebhookSource } from './state.js';

export const BULK_MAX = 500;

/**
 * POST /lists/{list}: batch subscribe or unsubscribe, up to 500 members, answered at once with
 * per-member errors. error_code values [unverified]: ERROR_CONTACT_EXISTS when the member
 * exists and update_existing is false; ERROR_GENERIC for everything else (compliance state,
 * forgotten email, invalid address, injected partial failure).
 */
export function bulkUpsert(ctx: McContext, listId: string, req: ApiRequest, source: WebhookSource): ApiResponse {
  const list = getList(ctx, listId);
  const body = req.body;
  if (!isRecord(body) || !Array.isArray(body['members'])) throw invalidResource([{ field: 'members', message: 'This value should not be blank.' }]);
  const members = body['members'] as unknown[];
  if (members.length > BULK_MAX) {
    throw invalidResource([{ field: 'members', message: `You may only submit up to ${BULK_MAX} members at a time. You submitted ${members.length}.` }]);
  }
  const updateExisting = body['update_existing'] === true;
  const created: unknown[] = [];
  const updated: unknown[] = [];
  const errors: { email_address: string; error: string; error_code: string; field?: string; field_message?: string }[] = [];
  for (const item of members) {
    const email = isRecord(item) && typeof item['email_address'] === 'string' ? item['email_address'] : '';
    try {
      if (!isRecord(item) || email === '') throw badRequest('Invalid Resource', 'Please provide a valid email address.');
      if (ctx.faults.itemFails()) throw badRequest('Service Unavailable', 'Service temporarily unavailable, please try again.');
      const exists = list.members.has(subscriberHash(email));
      if (exists && !updateExisting) {
        errors.push({ email_address: email, error: `${email} is already a list member, do you want to update? please provide update_existing:true in the request body`, error_code: 'ERROR_CONTACT_EXISTS' });
        continue;
      }
      // New members take status_if_new, else status (Mailchimp's bulk accepts either).
      const input = exists ? item : { ...item, status_if_new: item['status_if_new'] ?? item['status'] };
      const { member, created: isNew } = writeMember(ctx, list, exists ? subscriberHash(email) : null, input, exists ? 'put' : 'post', source);
      (isNew ? created : updated).push(memberView(member, list.config));
    } catch (err) {
      if (!(err instanceof McHttpError)) throw err;
      const e = { email_address: email, error: err.problem.detail, error_code: 'ERROR_GENERIC' } as (typeof errors)[number];
      const fe = err.problem.errors?.[0];
      if (fe) {
        e.field = fe.field;
        e.field_message = fe.message;
      }
      errors.push(e);
    }
  }
  return {
    status: 200,
    body: {
      new_members: created,
      updated_members: updated,
      errors,
      total_created: created.length,
      total_updated: updated.length,
      error_count: errors.length,
      _links: [],
    },
  };
}
