import type { FieldDef, ObjectDef } from './schema.js';

const SOAP_TYPE: Record<FieldDef['type'], string> = {
  id: 'tns:ID',
  reference: 'tns:ID',
  boolean: 'xsd:boolean',
  datetime: 'xsd:dateTime',
  string: 'xsd:string',
  email: 'xsd:string',
  phone: 'xsd:string',
  picklist: 'xsd:string',
  textarea: 'xsd:string',
};

function urls(version: string, def: ObjectDef): Record<string, string> {
  const base = `/services/data/v${version}/sobjects/${def.name}`;
  return { sobject: base, describe: `${base}/describe`, rowTemplate: `${base}/{ID}` };
}

export function describeField(fd: FieldDef): Record<string, unknown> {
  return {
    name: fd.name,
    label: fd.label,
    type: fd.type,
    soapType: SOAP_TYPE[fd.type],
    length: fd.length,
    nillable: fd.nillable,
    createable: fd.createable,
    updateable: fd.updateable,
    filterable: fd.type !== 'textarea',
    sortable: fd.type !== 'textarea',
    groupable: fd.type !== 'textarea' && fd.type !== 'datetime',
    defaultedOnCreate: fd.defaultValue !== undefined || !fd.createable,
    defaultValue: fd.defaultValue ?? null,
    calculated: fd.derived === true && fd.type !== 'id',
    custom: false,
    externalId: false,
    unique: false,
    idLookup: fd.type === 'id' || fd.type === 'email',
    referenceTo: fd.referenceTo ? [fd.referenceTo] : [],
    relationshipName: fd.relationshipName ?? null,
    restrictedPicklist: fd.picklist !== undefined,
    picklistValues: (fd.picklist ?? []).map((v) => ({ active: true, defaultValue: v === fd.defaultValue, label: v, validFor: null, value: v })),
  };
}

function summary(def: ObjectDef, version: string): Record<string, unknown> {
  return {
    name: def.name,
    label: def.label,
    labelPlural: def.labelPlural,
    keyPrefix: def.keyPrefix,
    custom: false,
    createable: true,
    updateable: true,
    deletable: true,
    queryable: true,
    retrieveable: true,
    searchable: def.emailIndexed,
    replicateable: true,
    urls: urls(version, def),
  };
}

/** GET /sobjects */
export function describeGlobal(defs: Iterable<ObjectDef>, version: string): Record<string, unknown> {
  return { encoding: 'UTF-8', maxBatchSize: 200, sobjects: [...defs].map((d) => summary(d, version)) };
}

/** GET /sobjects/{Type}/describe */
export function describeObject(def: ObjectDef, version: string): Record<string, unknown> {
  return { ...summary(def, version), fields: def.fields.map(describeField), childRelationships: [], recordTypeInfos: [] };
}
