/**
 * TEST AND DEMO INFRASTRUCTURE — a small JSON-schema validator for the subset GitHub's
 * OpenAPI description uses in the responses the emulator produces: type (with OpenAPI 3.0
 * `nullable`), properties, required, additionalProperties, items, minItems/maxItems, enum,
 * anyOf/oneOf/allOf. `format` and annotations are ignored. Used by the conformance tests.
 */

export interface Schema {
  type?: string | string[];
  nullable?: boolean;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  enum?: unknown[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  [key: string]: unknown;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function typeMatches(expected: string, value: unknown): boolean {
  const actual = typeOf(value);
  if (expected === 'number') return actual === 'number' || actual === 'integer';
  return expected === actual;
}

/** Returns the violations (empty when `value` conforms), each prefixed with a JSON pointer. */
export function validateSchema(schema: Schema, value: unknown, path = ''): string[] {
  const at = path === '' ? '/' : path;
  if (value === null && (schema.nullable === true || (Array.isArray(schema.type) && schema.type.includes('null')))) return [];
  const errors: string[] = [];

  if (schema.allOf) for (const sub of schema.allOf) errors.push(...validateSchema(sub, value, path));
  if (schema.anyOf) {
    const results = schema.anyOf.map((sub) => validateSchema(sub, value, path));
    if (!results.some((r) => r.length === 0)) {
      errors.push(`${at}: matches none of anyOf (${results.map((r) => r[0]).join(' | ')})`);
    }
  }
  if (schema.oneOf) {
    const results = schema.oneOf.map((sub) => validateSchema(sub, value, path));
    const matching = results.filter((r) => r.length === 0).length;
    if (matching !== 1) errors.push(`${at}: matches ${matching} of oneOf, expected exactly 1`);
  }

  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => typeMatches(t, value))) {
      errors.push(`${at}: expected ${types.join('|')}, got ${typeOf(value)}`);
      return errors;
    }
  }
  if (schema.enum && !schema.enum.some((e) => e === value)) {
    errors.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }

  if (typeOf(value) === 'object' && (schema.properties || schema.required || schema.additionalProperties !== undefined)) {
    const obj = value as Record<string, unknown>;
    for (const key of schema.required ?? []) {
      if (!(key in obj)) errors.push(`${at}: missing required property "${key}"`);
    }
    for (const [key, v] of Object.entries(obj)) {
      const sub = schema.properties?.[key];
      if (sub) errors.push(...validateSchema(sub, v, `${path}/${key}`));
      else if (schema.additionalProperties === false) errors.push(`${at}: unexpected property "${key}"`);
      else if (typeof schema.additionalProperties === 'object') errors.push(...validateSchema(schema.additionalProperties, v, `${path}/${key}`));
    }
  }

  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) errors.push(`${at}: fewer than ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) errors.push(`${at}: more than ${schema.maxItems} items`);
    if (schema.items) value.forEach((item, i) => errors.push(...validateSchema(schema.items!, item, `${path}/${i}`)));
  }
  return errors;
}
