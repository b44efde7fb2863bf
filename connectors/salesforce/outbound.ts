import { timingSafeEqual } from 'node:crypto';
import { WebhookRejection, type ConnectorWebhook, type WebhookEvent, type WebhookRequest, type WebhookTranslation } from '../../src/connectors/contract.js';
import { isoTime, type PersonRow } from './mapping.js';
import { mapRows, personsOfIndividuals, type PullDeps } from './pull.js';

/**
 * Outbound Messages (workflow / flow "send outbound message"): a SOAP POST of up to 100
 * notifications, with no signature. The check is the OrganizationId (constant-time), plus
 * whatever the deployment adds (TLS, Salesforce IP ranges). The listener must answer the SOAP
 * Ack (`outboundAckResponse()`), or Salesforce retries for up to 24 hours.
 */

const MAX_BODY = 5 * 1024 * 1024;
const OUTBOUND_NS = 'http://soap.sforce.com/2005/09/outbound';

/** The answer Salesforce waits for: 200, text/xml, `<Ack>true</Ack>`. */
export function outboundAckResponse(): { status: number; contentType: string; body: string } {
  return {
    status: 200,
    contentType: 'text/xml',
    body:
      '<?xml version="1.0" encoding="UTF-8"?>' +
      '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">' +
      `<soapenv:Body><notificationsResponse xmlns="${OUTBOUND_NS}"><Ack>true</Ack></notificationsResponse></soapenv:Body>` +
      '</soapenv:Envelope>',
  };
}

// ------------------------------------------------------------------------------------------------
// A small XML reader: enough for SOAP envelopes (elements, attributes, text, entities, CDATA,
// comments, processing instructions). No DTDs (refused: no entity expansion tricks).

export interface XmlElement {
  /** Local name (prefix dropped). */
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

export class XmlError extends Error {}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decode(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|\w+);/g, (m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    const v = ENTITIES[e];
    if (v === undefined) throw new XmlError(`unknown entity ${m}`);
    return v;
  });
}

const local = (qname: string): string => qname.slice(qname.indexOf(':') + 1);

/** Parses a whole document; throws XmlError when it is not well-formed. */
export function parseXml(xml: string): XmlElement {
  let i = 0;
  const root: XmlElement = { name: '#document', attrs: {}, children: [], text: '' };
  const stack: { el: XmlElement; qname: string }[] = [{ el: root, qname: '' }];
  const top = (): XmlElement => (stack[stack.length - 1] as { el: XmlElement }).el;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const textEnd = lt === -1 ? xml.length : lt;
    if (textEnd > i) {
      const text = xml.slice(i, textEnd);
      if (stack.length === 1 && text.trim() !== '') throw new XmlError('text outside the root element');
      top().text += decode(text);
    }
    if (lt === -1) break;
    if (xml.startsWith('<?', lt)) {
      const end = xml.indexOf('?>', lt);
      if (end === -1) throw new XmlError('unterminated processing instruction');
      i = end + 2;
    } else if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt);
      if (end === -1) throw new XmlError('unterminated comment');
      i = end + 3;
    } else if (xml.startsWith('<![CDATA[', lt)) {
      const end = xml.indexOf(']]>', lt);
      if (end === -1) throw new XmlError('unterminated CDATA');
      top().text += xml.slice(lt + 9, end);
      i = end + 3;
    } else if (xml.startsWith('<!', lt)) {
      throw new XmlError('DTDs are not accepted');
    } else if (xml.startsWith('</', lt)) {
      const end = xml.indexOf('>', lt);
      if (end === -1) throw new XmlError('unterminated end tag');
      const qname = xml.slice(lt + 2, end).trim();
      const open = stack.pop();
      if (!open || stack.length === 0 || open.qname !== qname) throw new XmlError(`unexpected </${qname}>`);
      i = end + 1;
    } else {
      const m = /^<([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/.exec(xml.slice(lt, lt + 64 * 1024));
      if (!m) throw new XmlError(`malformed tag at offset ${lt}`);
      const qname = m[1] as string;
      if (stack.length === 1 && root.children.length > 0) throw new XmlError('more than one root element');
      const attrs: Record<string, string> = {};
      for (const a of (m[2] ?? '').matchAll(/([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) attrs[a[1] as string] = decode(a[2] ?? a[3] ?? '');
      const el: XmlElement = { name: local(qname), attrs, children: [], text: '' };
      top().children.push(el);
      if (m[3] !== '/') stack.push({ el, qname });
      i = lt + m[0].length;
    }
  }
  if (stack.length !== 1) throw new XmlError(`unclosed <${stack[stack.length - 1]?.qname ?? '?'}>`);
  const doc = root.children[0];
  if (!doc || root.children.length !== 1) throw new XmlError('no root element');
  return doc;
}

const child = (el: XmlElement | undefined, name: string): XmlElement | undefined => el?.children.find((c) => c.name === name);

// ------------------------------------------------------------------------------------------------

export interface OutboundPayload {
  organizationId: string;
  actionId: string | null;
  sObjectType: string;
  /** Field name -> text value (null when xsi:nil). */
  fields: Record<string, string | null>;
}

function sameOrg(a: string, b: string): boolean {
  // 15- and 18-character ids name the same org when the first 15 (case-sensitive) match.
  const x = Buffer.from(a.slice(0, 15));
  const y = Buffer.from(b.slice(0, 15));
  return a.length >= 15 && x.length === y.length && timingSafeEqual(x, y);
}

function header(req: WebhookRequest, name: string): string {
  const v = req.headers[name] ?? req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : (v ?? '');
}

/** Verifies and splits one Outbound Message into events (one per Notification). */
export function verifyOutbound(req: WebhookRequest, organizationId: string): WebhookEvent[] {
  if (req.method.toUpperCase() !== 'POST') throw new WebhookRejection('malformed', `Outbound Messages are POSTed, not ${req.method}`, 405);
  if (req.rawBody.length > MAX_BODY) throw new WebhookRejection('too_large', `body larger than ${MAX_BODY} bytes`);
  const type = header(req, 'content-type');
  if (type !== '' && !/^(?:text\/xml|application\/(?:soap\+)?xml)\b/i.test(type)) throw new WebhookRejection('malformed', `expected text/xml, got ${type}`, 415);
  let doc: XmlElement;
  try {
    doc = parseXml(req.rawBody.toString('utf8'));
  } catch (err) {
    throw new WebhookRejection('malformed', `not well-formed XML: ${err instanceof Error ? err.message : String(err)}`);
  }
  const notifications = doc.name === 'Envelope' ? child(child(doc, 'Body'), 'notifications') : undefined;
  if (!notifications) throw new WebhookRejection('malformed', 'not a SOAP envelope carrying <notifications>');
  const org = child(notifications, 'OrganizationId')?.text.trim() ?? '';
  if (org === '') throw new WebhookRejection('malformed', 'no OrganizationId');
  if (!sameOrg(org, organizationId)) throw new WebhookRejection('unauthorized', 'OrganizationId does not match the configured organization');
  const actionId = child(notifications, 'ActionId')?.text.trim() || null;
  const events: WebhookEvent[] = [];
  for (const n of notifications.children.filter((c) => c.name === 'Notification')) {
    const id = child(n, 'Id')?.text.trim() ?? '';
    const sobj = child(n, 'sObject');
    if (id === '' || !sobj) throw new WebhookRejection('malformed', 'a Notification without Id or sObject');
    const xsiType = Object.entries(sobj.attrs).find(([k]) => local(k) === 'type')?.[1] ?? '';
    const sObjectType = local(xsiType);
    const fields: Record<string, string | null> = {};
    for (const f of sobj.children) {
      const nil = Object.entries(f.attrs).some(([k, v]) => local(k) === 'nil' && v === 'true');
      fields[f.name] = nil ? null : f.text;
    }
    const payload: OutboundPayload = { organizationId: org, actionId, sObjectType, fields };
    events.push({ id, type: `outbound.${sObjectType}`, occurredAt: isoTime(fields['SystemModstamp']) ?? isoTime(fields['LastModifiedDate']), payload });
  }
  if (events.length === 0) throw new WebhookRejection('malformed', 'no Notification in the message');
  return events;
}

const bool = (v: string | null | undefined): boolean | null => (v === 'true' ? true : v === 'false' ? false : null);

/** A Contact / Lead notification as the row a query would return (Individual flags are not in it). */
function personFromFields(type: 'Contact' | 'Lead', f: Record<string, string | null>, occurredAt: string | null): PersonRow {
  return {
    attributes: { type },
    Id: f['Id'] ?? '',
    Email: f['Email'] ?? null,
    HasOptedOutOfEmail: bool(f['HasOptedOutOfEmail']),
    HasOptedOutOfFax: bool(f['HasOptedOutOfFax']),
    DoNotCall: bool(f['DoNotCall']),
    EmailBouncedReason: f['EmailBouncedReason'] ?? null,
    EmailBouncedDate: f['EmailBouncedDate'] ?? null,
    IsEmailBounced: bool(f['IsEmailBounced']),
    IsConverted: bool(f['IsConverted']),
    IsDeleted: bool(f['IsDeleted']),
    LastModifiedDate: f['LastModifiedDate'] ?? occurredAt,
    SystemModstamp: f['SystemModstamp'] ?? occurredAt,
    IndividualId: null,
    Individual: null,
  };
}

export interface OutboundDeps extends PullDeps {
  organizationId: string;
}

/**
 * Contact / Lead notifications give observations straight from the message's fields (no API
 * call; statedAt from LastModifiedDate, else the notification time). They return no record
 * snapshot: the message lacks the Individual and its consents, so a snapshot would be partial;
 * the next pull refreshes it. Individual notifications carry no address: their Contacts / Leads
 * are read through the API and mapped as a pull would (snapshots included).
 */
export function createOutboundWebhook(deps: OutboundDeps): ConnectorWebhook {
  return {
    verify: (req) => Promise.resolve().then(() => verifyOutbound(req, deps.organizationId)),
    // Salesforce redelivers for 24 h unless the answer carries <Ack>true</Ack>.
    acknowledge: outboundAckResponse,
    async toObservations(events): Promise<WebhookTranslation> {
      const persons: PersonRow[] = [];
      const individuals: string[] = [];
      for (const e of events) {
        const p = e.payload as OutboundPayload;
        const f = p.fields;
        if (p.sObjectType === 'Contact' || p.sObjectType === 'Lead') {
          if (!deps.settings.objects.includes(p.sObjectType)) continue;
          if (p.sObjectType === 'Lead' && deps.settings.convertedLeads === 'skip' && f['IsConverted'] === 'true') continue;
          persons.push(personFromFields(p.sObjectType, f, e.occurredAt));
        } else if (p.sObjectType === 'Individual' && typeof f['Id'] === 'string') {
          individuals.push(f['Id']);
        }
      }
      const direct = await mapRows(deps, persons, false, 'webhook');
      const translation: WebhookTranslation = { observations: direct.observations };
      if (individuals.length > 0 && (await deps.privacy())) {
        const linked = await mapRows(deps, await personsOfIndividuals(deps, individuals, true), true, 'webhook');
        translation.observations.push(...linked.observations);
        translation.records = linked.records;
      }
      return translation;
    },
  };
}
