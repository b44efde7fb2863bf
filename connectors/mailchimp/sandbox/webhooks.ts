import { randomBytes } from 'node:crypto';
import type { WebhookSender } from '../../../src/sandbox/webhooks.js';
import { firedAt, type ListState, type Member, type WebhookConfig, type WebhookEventType, type WebhookSource } from './state.js';

export const ALL_SOURCES: readonly WebhookSource[] = ['user', 'admin', 'api'];
export const ALL_EVENTS: readonly WebhookEventType[] = ['subscribe', 'unsubscribe', 'profile', 'cleaned', 'upemail', 'campaign'];

/** The `data[...]` fields of one webhook, flat ("merges[EMAIL]" -> value). */
export type WebhookData = Record<string, string>;

/** What was sent, for tests: type, source and the decoded body. */
export interface SentWebhook {
  webhookId: string;
  type: WebhookEventType;
  source: WebhookSource;
  body: string;
}

export function mergesOf(m: Member): WebhookData {
  const d: WebhookData = { 'merges[EMAIL]': m.email };
  for (const k of ['FNAME', 'LNAME', 'PHONE']) d[`merges[${k}]`] = m.mergeFields[k] ?? '';
  const interests = Object.entries(m.interests).filter(([, on]) => on).map(([id]) => id);
  if (interests.length > 0) d['merges[INTERESTS]'] = interests.join(',');
  return d;
}

/** The data fields Mailchimp sends for subscribe / profile / unsubscribe events about a member. */
export function memberData(m: Member, extra: WebhookData = {}): WebhookData {
  return {
    id: m.uniqueEmailId,
    list_id: m.listId,
    email: m.email,
    email_type: m.emailType,
    ip_opt: m.ipOpt,
    web_id: String(m.webId),
    ...extra,
    ...mergesOf(m),
  };
}

/** `type=...&fired_at=...&data[k]=v` form encoding, as Mailchimp posts it. */
export function encodeWebhook(type: WebhookEventType, at: number, data: WebhookData): string {
  const form = new URLSearchParams();
  form.append('type', type);
  form.append('fired_at', firedAt(at));
  for (const [k, v] of Object.entries(data)) {
    const bracket = k.indexOf('[');
    // "merges[EMAIL]" -> "data[merges][EMAIL]"
    form.append(bracket >= 0 ? `data[${k.slice(0, bracket)}]${k.slice(bracket)}` : `data[${k}]`, v);
  }
  return form.toString();
}

export function toFlags<T extends string>(all: readonly T[], on: readonly T[] | Partial<Record<T, boolean>> | undefined): Record<T, boolean> {
  const flags = {} as Record<T, boolean>;
  for (const k of all) flags[k] = on === undefined ? true : Array.isArray(on) ? on.includes(k) : ((on as Partial<Record<T, boolean>>)[k] ?? false);
  return flags;
}

/** Emits list webhooks for member changes, honouring each webhook's events and sources. */
export class MailchimpWebhooks {
  readonly sent: SentWebhook[] = [];

  constructor(
    private readonly sender: WebhookSender,
    private readonly now: () => number,
  ) {}

  emit(list: ListState, type: WebhookEventType, source: WebhookSource, data: WebhookData): void {
    for (const hook of list.webhooks) {
      if (!hook.events[type] || !hook.sources[source]) continue;
      const body = encodeWebhook(type, this.now(), data);
      this.sent.push({ webhookId: hook.id, type, source, body });
      this.sender.send({
        url: hook.url,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'MailChimp' },
        body,
      });
    }
  }

  /**
   * Registers a webhook the way Mailchimp does: first a GET to the URL, which must answer 200
   * (else 400 "Invalid Resource" "The resource submitted could not be validated").
   */
  async create(list: ListState, url: string, events?: readonly WebhookEventType[] | Partial<Record<WebhookEventType, boolean>>, sources?: readonly WebhookSource[] | Partial<Record<WebhookSource, boolean>>): Promise<WebhookConfig | { error: string }> {
    let ok = false;
    try {
      const res = await fetch(url, { method: 'GET', headers: { 'user-agent': 'MailChimp.com WebHook Validator' }, signal: AbortSignal.timeout(10_000) });
      await res.arrayBuffer();
      ok = res.status === 200;
    } catch {
      ok = false;
    }
    if (!ok) return { error: `The URL '${url}' did not return a 200 response to our validation GET request.` };
    return this.register(list, url, events, sources);
  }

  /** Registers without validation (the sandbox's `webhookUrl` option). */
  register(list: ListState, url: string, events?: readonly WebhookEventType[] | Partial<Record<WebhookEventType, boolean>>, sources?: readonly WebhookSource[] | Partial<Record<WebhookSource, boolean>>): WebhookConfig {
    const hook: WebhookConfig = {
      id: randomBytes(5).toString('hex'),
      listId: list.config.id,
      url,
      events: toFlags(ALL_EVENTS, events),
      sources: toFlags(ALL_SOURCES, sources),
    };
    list.webhooks.push(hook);
    return hook;
  }
}

export function webhookView(h: WebhookConfig): Record<string, unknown> {
  return { id: h.id, url: h.url, events: h.events, sources: h.sources, list_id: h.listId };
}
