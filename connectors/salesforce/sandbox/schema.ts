/** The sObjects the sandbox serves and their fields (what describe answers and SOQL checks). */
export type FieldType = 'id' | 'string' | 'email' | 'phone' | 'boolean' | 'datetime' | 'reference' | 'picklist' | 'textarea';
export type Value = string | number | boolean | null;

/** A stored row. `$n` is its sequence number (the id derives from it); datetimes are epoch ms. */
export interface Row {
  $n: number;
  $deleted: boolean;
  [field: string]: Value;
}

export interface FieldDef {
  name: string;
  label: string;
  type: FieldType;
  createable: boolean;
  updateable: boolean;
  nillable: boolean;
  length: number;
  referenceTo?: string;
  /** Parent relationship name for SOQL (`Individual.ShouldForget`). */
  relationshipName?: string;
  picklist?: string[];
  defaultValue?: Value;
  /** Derived (not stored) fields: Id, Name, IsDeleted, IsEmailBounced. */
  derived?: boolean;
}

export interface ObjectDef {
  name: string;
  label: string;
  labelPlural: string;
  keyPrefix: string;
  fields: FieldDef[];
  byName: Map<string, FieldDef>;
  /** Lower-cased field name -> definition (SOQL names are case-insensitive). */
  byLower: Map<string, FieldDef>;
  /** Stored fields, in the fixed order rows are built with (one hidden class per object). */
  stored: FieldDef[];
  required: string[];
  /** Rows carry an Email index (Contact, Lead). */
  emailIndexed: boolean;
}

function f(name: string, type: FieldType, opts: Partial<FieldDef> = {}): FieldDef {
  const ro = type === 'id' || opts.derived === true;
  const length = type === 'id' || type === 'reference' ? 18 : type === 'email' ? 80 : type === 'phone' ? 40 : type === 'string' || type === 'picklist' ? 255 : type === 'textarea' ? 32000 : 0;
  return {
    name,
    label: name.replace(/Id$/, ' ID').replace(/([a-z])([A-Z])/g, '$1 $2'),
    type,
    createable: !ro,
    updateable: !ro,
    nillable: type !== 'boolean' && type !== 'id',
    length,
    ...opts,
  };
}

const readOnly = { createable: false, updateable: false } as const;
const USER = { referenceTo: 'User', ...readOnly };

function system(): FieldDef[] {
  return [
    f('Id', 'id', { nillable: false }),
    f('IsDeleted', 'boolean', { derived: true, ...readOnly }),
    f('CreatedDate', 'datetime', { ...readOnly, nillable: false }),
    f('CreatedById', 'reference', { ...USER, relationshipName: 'CreatedBy' }),
    f('LastModifiedDate', 'datetime', { ...readOnly, nillable: false }),
    f('LastModifiedById', 'reference', { ...USER, relationshipName: 'LastModifiedBy' }),
    f('SystemModstamp', 'datetime', { ...readOnly, nillable: false }),
  ];
}

function person(privacy: boolean): FieldDef[] {
  return [
    f('FirstName', 'string', { length: 40 }),
    f('LastName', 'string', { length: 80, nillable: false }),
    f('Name', 'string', { derived: true, ...readOnly, length: 121 }),
    f('Email', 'email'),
    f('Phone', 'phone'),
    f('HasOptedOutOfEmail', 'boolean', { defaultValue: false }),
    f('HasOptedOutOfFax', 'boolean', { defaultValue: false }),
    f('DoNotCall', 'boolean', { defaultValue: false }),
    ...(privacy ? [f('IndividualId', 'reference', { referenceTo: 'Individual', relationshipName: 'Individual' })] : []),
    f('EmailBouncedReason', 'string'),
    f('EmailBouncedDate', 'datetime'),
  ];
}

function build(name: string, labelPlural: string, keyPrefix: string, fields: FieldDef[], required: string[], emailIndexed = false): ObjectDef {
  const byName = new Map(fields.map((d) => [d.name, d]));
  const byLower = new Map(fields.map((d) => [d.name.toLowerCase(), d]));
  const stored = fields.filter((d) => d.type !== 'id' && d.derived !== true);
  return { name, label: name.replace(/([a-z])([A-Z])/g, '$1 $2'), labelPlural, keyPrefix, fields, byName, byLower, stored, required, emailIndexed };
}

export const KEY_PREFIX = {
  Contact: '003',
  Lead: '00Q',
  Individual: '0PK',
  DataUsePurpose: '0ZW',
  ContactPointTypeConsent: '0ZY',
  Organization: '00D',
  User: '005',
  OutboundMessage: '04k',
  Notification: '04l',
  QueryLocator: '01g',
} as const;

export function buildSchema(privacyFeatures: boolean): Map<string, ObjectDef> {
  const defs: ObjectDef[] = [
    build('Contact', 'Contacts', KEY_PREFIX.Contact, [...system(), ...person(privacyFeatures), f('IsEmailBounced', 'boolean', { derived: true, ...readOnly })], ['LastName'], true),
    build(
      'Lead',
      'Leads',
      KEY_PREFIX.Lead,
      [
        ...system(),
        ...person(privacyFeatures),
        f('Company', 'string', { nillable: false }),
        f('Status', 'picklist', { nillable: false, picklist: ['Open - Not Contacted', 'Working - Contacted', 'Closed - Converted', 'Closed - Not Converted'], defaultValue: 'Open - Not Contacted' }),
        f('IsConverted', 'boolean', { ...readOnly, defaultValue: false }),
        f('ConvertedContactId', 'reference', { ...readOnly, referenceTo: 'Contact', relationshipName: 'ConvertedContact' }),
        f('ConvertedDate', 'datetime', readOnly),
      ],
      ['LastName', 'Company'],
      true,
    ),
  ];
  if (privacyFeatures) {
    const flag = (n: string): FieldDef => f(n, 'boolean', { defaultValue: false });
    defs.push(
      build(
        'Individual',
        'Individuals',
        KEY_PREFIX.Individual,
        [
          ...system(),
          f('FirstName', 'string', { length: 40 }),
          f('LastName', 'string', { length: 80, nillable: false }),
          f('Name', 'string', { derived: true, ...readOnly, length: 121 }),
          flag('ShouldForget'),
          flag('HasOptedOutProcessing'),
          flag('HasOptedOutSolicit'),
          flag('HasOptedOutTracking'),
          flag('HasOptedOutProfiling'),
          flag('HasOptedOutGeoTracking'),
          flag('SendIndividualData'),
          flag('CanStorePiiElsewhere'),
        ],
        ['LastName'],
      ),
      build('DataUsePurpose', 'Data Use Purposes', KEY_PREFIX.DataUsePurpose, [...system(), f('Name', 'string', { nillable: false }), f('CanDataSubjectOptOut', 'boolean', { defaultValue: true }), f('LegalBasisId', 'reference', { referenceTo: 'DataUseLegalBasis', relationshipName: 'LegalBasis' }), f('Description', 'textarea')], ['Name']),
      build(
        'ContactPointTypeConsent',
        'Contact Point Type Consents',
        KEY_PREFIX.ContactPointTypeConsent,
        [
          ...system(),
          f('Name', 'string', { nillable: false }),
          f('PartyId', 'reference', { referenceTo: 'Individual', relationshipName: 'Party', nillable: false }),
          f('ContactPointType', 'picklist', { picklist: ['Email', 'MailingAddress', 'Phone', 'Social', 'Web'] }),
          f('PrivacyConsentStatus', 'picklist', { picklist: ['OptIn', 'OptOut', 'Seen', 'NotSeen'] }),
          f('DataUsePurposeId', 'reference', { referenceTo: 'DataUsePurpose', relationshipName: 'DataUsePurpose' }),
          f('CaptureDate', 'datetime'),
          f('CaptureSource', 'string'),
          f('CaptureContactPointType', 'picklist', { picklist: ['Email', 'Phone', 'Web', 'Social'] }),
          f('EffectiveFrom', 'datetime'),
          f('EffectiveTo', 'datetime'),
          f('DoubleConsentCaptureDate', 'datetime'),
        ],
        ['Name', 'PartyId'],
      ),
    );
  }
  return new Map(defs.map((d) => [d.name, d]));
}

/** Salesforce REST datetime format: 2024-01-01T00:00:00.000+0000. */
export function formatDateTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+0000');
}
