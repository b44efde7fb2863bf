import type { WebhookSender } from '../../../src/sandbox/webhooks.js';
import { xmlEscape } from './auth.js';
import { makeId } from './ids.js';
import { KEY_PREFIX, type Row } from './schema.js';
import type { Table } from './state.js';

/** Fields each outbound message carries, per object (what an admin would tick). */
export const OUTBOUND_FIELDS: Record<string, string[]> = {
  Contact: ['Id', 'Email', 'FirstName', 'LastName', 'HasOptedOutOfEmail', 'HasOptedOutOfFax', 'DoNotCall', 'IndividualId', 'EmailBouncedReason', 'EmailBouncedDate', 'IsEmailBounced', 'IsDeleted', 'LastModifiedDate', 'SystemModstamp'],
  Lead: ['Id', 'Email', 'FirstName', 'LastName', 'HasOptedOutOfEmail', 'HasOptedOutOfFax', 'DoNotCall', 'IndividualId', 'EmailBouncedReason', 'EmailBouncedDate', 'IsConverted', 'IsDeleted', 'LastModifiedDate', 'SystemModstamp'],
  Individual: ['Id', 'FirstName', 'LastName', 'ShouldForget', 'HasOptedOutProcessing', 'HasOptedOutSolicit', 'HasOptedOutTracking', 'HasOptedOutProfiling', 'LastModifiedDate', 'SystemModstamp'],
};

const ACTION_SEQ: Record<string, number> = { Contact: 1, Lead: 2, Individual: 3 };
/** Notifications per SOAP message, as Salesforce batches them. */
export const MAX_NOTIFICATIONS = 100;

export interface OutboundOptions {
  url: string | null;
  orgId: string;
  /** The sandbox's URL, null once stopped (pending notifications are then dropped). */
  baseUrl: () => string | null;
  version: string;
  sender: WebhookSender;
  /**
   * The workflow rule's criteria leave out changes last made by this user (as an admin writes
   * `LastModifiedById <> <integration user>` so that consentd's own writes do not come back).
   */
  excludeModifiedBy?: string | null;
}

/**
 * Outbound Messages: every create/update of a Contact, Lead or Individual (API or control
 * action) queues a notification carrying the row's values at that moment. They are flushed when
 * the API call or action that made them ends (a microtask flushes any other change), one SOAP
 * message per object type and per 100 notifications; so `webhooks.idle()` right after a call
 * sees them. The WebhookSender retries until the listener answers 2xx with `<Ack>true</Ack>`.
 */
export class OutboundMessages {
  private pending = new Map<string, string[]>();
  private scheduled = false;
  private seq = 0;
  /** SOAP messages queued so far (each may be retried). */
  sent = 0;

  constructor(private readonly opts: OutboundOptions) {}

  get url(): string | null {
    return this.opts.url;
  }

  setUrl(url: string | null): void {
    this.opts.url = url;
  }

  queue(table: Table, row: Row): void {
    if (this.opts.url === null) return;
    const fields = OUTBOUND_FIELDS[table.name];
    if (!fields) return;
    const excluded = this.opts.excludeModifiedBy;
    if (excluded != null && row['LastModifiedById'] === excluded) return;
    const sf: string[] = [];
    for (const name of fields) {
      const fd = table.def.byName.get(name);
      if (!fd) continue;
      const v = table.value(row, fd);
      if (v === null) continue; // null fields are left out of the notification
      const text = fd.type === 'datetime' && typeof v === 'number' ? new Date(v).toISOString() : String(v);
      sf.push(`<sf:${name}>${xmlEscape(text)}</sf:${name}>`);
    }
    const id = makeId(KEY_PREFIX.Notification, ++this.seq);
    const xml = `<Notification><Id>${id}</Id><sObject xsi:type="sf:${table.name}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">${sf.join('')}</sObject></Notification>`;
    const list = this.pending.get(table.name) ?? [];
    list.push(xml);
    this.pending.set(table.name, list);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending.size === 0) return;
    const url = this.opts.url;
    const pending = this.pending;
    this.pending = new Map();
    if (url === null || this.opts.baseUrl() === null) return;
    for (const [type, list] of pending) {
      for (let i = 0; i < list.length; i += MAX_NOTIFICATIONS) {
        const body = this.envelope(type, list.slice(i, i + MAX_NOTIFICATIONS));
        this.sent++;
        this.opts.sender.send({
          url,
          headers: { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: '""', 'User-Agent': 'Jakarta Commons-HttpClient/3.1' },
          body,
          accept: (status, text) => status >= 200 && status < 300 && /<(?:\w+:)?Ack>\s*true\s*<\/(?:\w+:)?Ack>/.test(text),
        });
      }
    }
  }

  private envelope(type: string, notifications: string[]): string {
    const base = this.opts.baseUrl() ?? '';
    const org15 = this.opts.orgId.slice(0, 15);
    return (
      '<?xml version="1.0" encoding="UTF-8"?>' +
      '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
      '<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">' +
      `<OrganizationId>${this.opts.orgId}</OrganizationId>` +
      `<ActionId>${makeId(KEY_PREFIX.OutboundMessage, ACTION_SEQ[type] ?? 9)}</ActionId>` +
      '<SessionId xsi:nil="true"/>' +
      `<EnterpriseUrl>${base}/services/Soap/c/${this.opts.version}/${org15}</EnterpriseUrl>` +
      `<PartnerUrl>${base}/services/Soap/u/${this.opts.version}/${org15}</PartnerUrl>` +
      notifications.join('') +
      '</notifications></soapenv:Body></soapenv:Envelope>'
    );
  }
}
