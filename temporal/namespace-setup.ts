/**
 * Namespace setup: the custom search attributes Ekiden's workflows carry (core/search-attributes.ts)
 * must exist on the namespace before any of them starts — without them the server refuses every
 * start with "Namespace … has no mapping defined for search attribute …", which the client reports
 * as a bare "Failed to start Workflow". `ensureNamespace` checks them through the operator service
 * and, where it may, creates the missing ones; where it may not (Temporal Cloud, or a cluster whose
 * authorizer refuses it) it stops with one line naming the missing attributes and the command that
 * creates them. Run by `ekiden setup`, `ekiden up` (on a server it did not start) and `ekiden worker`.
 */
import { SEARCH_ATTRIBUTES } from '../core/search-attributes.js';

/** temporal.api.enums.v1.IndexedValueType, by number (what the operator service sends). */
const INDEXED_VALUE_TYPES: Record<number, string> = { 1: 'Text', 2: 'Keyword', 3: 'Int', 4: 'Double', 5: 'Bool', 6: 'Datetime', 7: 'KeywordList' };
const TYPE_NUMBER: Record<string, number> = { Text: 1, Keyword: 2, Int: 3, Double: 4, Bool: 5, Datetime: 6, KeywordList: 7 };

/** The two operator-service calls setup makes; a Connection's or NativeConnection's operatorService. */
export interface SearchAttributeOperator {
  listSearchAttributes(req: { namespace: string }): Promise<{ customAttributes?: Record<string, unknown> | null }>;
  addSearchAttributes(req: { namespace: string; searchAttributes: Record<string, number> }): Promise<unknown>;
}

export interface SetupTarget {
  address: string;
  namespace: string;
}

export interface NamespaceReport {
  namespace: string;
  /** Every attribute Ekiden needs, with its type. */
  needed: ReadonlyArray<{ name: string; type: string }>;
  /** Present before this call, with the right type. */
  present: string[];
  /** Created by this call. */
  created: string[];
  /** Still missing (only when `create` was false). */
  missing: string[];
}

/** A namespace Ekiden cannot use as it is; the message is one line naming what is wrong and the fix. */
export class NamespaceSetupError extends Error {
  override readonly name = 'NamespaceSetupError';
  constructor(
    message: string,
    readonly missing: string[] = [],
  ) {
    super(message);
  }
}

export interface NamespaceComparison {
  present: string[];
  missing: string[];
  wrongType: Array<{ name: string; want: string; have: string }>;
}

function typeName(value: unknown): string {
  if (typeof value === 'number') return INDEXED_VALUE_TYPES[value] ?? `type ${value}`;
  if (typeof value === 'string') {
    // Some encodings name the enum: INDEXED_VALUE_TYPE_KEYWORD.
    const m = /^INDEXED_VALUE_TYPE_(\w+)$/.exec(value);
    const word = m ? m[1]!.toLowerCase() : value.toLowerCase();
    return Object.keys(TYPE_NUMBER).find((t) => t.toLowerCase() === word.replace(/_/g, '')) ?? value;
  }
  return String(value);
}

/** Which of Ekiden's attributes the namespace's custom attributes (name → IndexedValueType) lack or type wrongly. */
export function compareSearchAttributes(custom: Record<string, unknown>, needed = SEARCH_ATTRIBUTES): NamespaceComparison {
  const out: NamespaceComparison = { present: [], missing: [], wrongType: [] };
  for (const { name, type } of needed) {
    if (!Object.prototype.hasOwnProperty.call(custom, name)) out.missing.push(name);
    else if (typeName(custom[name]) !== type) out.wrongType.push({ name, want: type, have: typeName(custom[name]) });
    else out.present.push(name);
  }
  return out;
}

/** Temporal Cloud endpoints: namespaces there are managed with tcld, not the operator service. */
export function isTemporalCloud(address: string): boolean {
  const host = address.replace(/:\d+$/, '').toLowerCase();
  return host.endsWith('.tmprl.cloud') || host.endsWith('.api.temporal.io') || host === 'api.temporal.io';
}

/** The command an operator runs to create `names` on the target's namespace. */
export function createCommand(target: SetupTarget, names: string[], needed = SEARCH_ATTRIBUTES): string {
  const typeOf = (n: string) => needed.find((a) => a.name === n)?.type ?? 'Keyword';
  if (isTemporalCloud(target.address)) {
    return `tcld namespace search-attributes add --namespace ${target.namespace} ${names.map((n) => `--search-attribute ${n}=${typeOf(n)}`).join(' ')}`;
  }
  // One type flag per call: the Temporal CLI takes several --name of one --type.
  const byType = new Map<string, string[]>();
  for (const n of names) byType.set(typeOf(n), [...(byType.get(typeOf(n)) ?? []), n]);
  return [...byType]
    .map(([type, ns]) => `temporal operator search-attribute create --address ${target.address} --namespace ${target.namespace} ${ns.map((n) => `--name ${n}`).join(' ')} --type ${type}`)
    .join(' && ');
}

/** The gRPC status code somewhere in `err`'s cause chain, if any. */
export function grpcCode(err: unknown): number | undefined {
  for (let e: unknown = err; typeof e === 'object' && e !== null; e = (e as { cause?: unknown }).cause) {
    const { code } = e as { code?: unknown };
    if (typeof code === 'number') return code;
  }
  return undefined;
}

function detail(err: unknown): string {
  const e = err as { details?: unknown; message?: unknown };
  const text = typeof e?.details === 'string' && e.details ? e.details : typeof e?.message === 'string' ? e.message : String(err);
  return text.split('\n')[0]!.trim();
}

/** gRPC codes that mean "this caller may not do that here": PERMISSION_DENIED, UNIMPLEMENTED, UNAUTHENTICATED. */
const NOT_ALLOWED = new Set([7, 12, 16]);

/**
 * Checks the namespace has every attribute Ekiden needs, creating the missing ones when `create`
 * (and the server lets this caller). Throws NamespaceSetupError, one line, when the namespace does
 * not exist, an attribute has another type, or attributes are missing that cannot be created here.
 * With `create: false` the missing ones are reported, not thrown.
 */
export async function ensureNamespace(operator: SearchAttributeOperator, target: SetupTarget, opts: { create: boolean }): Promise<NamespaceReport> {
  const needed = SEARCH_ATTRIBUTES;
  const list = async () => {
    try {
      return (await operator.listSearchAttributes({ namespace: target.namespace })).customAttributes ?? {};
    } catch (err) {
      const code = grpcCode(err);
      if (code === 5) {
        throw new NamespaceSetupError(
          `namespace ${target.namespace} does not exist on ${target.address}; create it (temporal operator namespace create --address ${target.address} --namespace ${target.namespace}) or name another with temporal.namespace / --namespace`,
        );
      }
      if (code !== undefined && NOT_ALLOWED.has(code)) {
        throw new NamespaceSetupError(`cannot read the search attributes of namespace ${target.namespace} on ${target.address}: ${detail(err)}; check the connection's credentials (temporal.apiKeyEnv, temporal.tls)`);
      }
      throw err;
    }
  };
  const before = compareSearchAttributes(await list(), needed);
  if (before.wrongType.length) {
    const w = before.wrongType.map((x) => `${x.name} is ${x.have}`).join(', ');
    throw new NamespaceSetupError(
      `namespace ${target.namespace}: search attribute ${w}, Ekiden needs Keyword; a type cannot be changed in place: remove ${before.wrongType.length > 1 ? 'them' : 'it'} (temporal operator search-attribute remove --namespace ${target.namespace} ${before.wrongType.map((x) => `--name ${x.name}`).join(' ')}) and run ekiden setup, or use another namespace`,
    );
  }
  const report: NamespaceReport = { namespace: target.namespace, needed, present: before.present, created: [], missing: before.missing };
  if (before.missing.length === 0 || !opts.create) return report;
  try {
    const searchAttributes = Object.fromEntries(before.missing.map((n) => [n, TYPE_NUMBER[needed.find((a) => a.name === n)!.type]!]));
    await operator.addSearchAttributes({ namespace: target.namespace, searchAttributes });
  } catch (err) {
    const code = grpcCode(err);
    if (code !== undefined && NOT_ALLOWED.has(code)) {
      throw new NamespaceSetupError(
        `namespace ${target.namespace} lacks Ekiden's search attributes ${before.missing.join(', ')} and this connection may not create them (${detail(err)}); create them with: ${createCommand(target, before.missing, needed)}`,
        before.missing,
      );
    }
    // Another process created some of them first: the re-check below decides.
    if (code !== 6) throw err;
  }
  const after = compareSearchAttributes(await list(), needed);
  if (after.missing.length || after.wrongType.length) {
    const names = [...after.missing, ...after.wrongType.map((x) => x.name)];
    throw new NamespaceSetupError(`namespace ${target.namespace}: search attributes ${names.join(', ')} are still not Keyword after creating them; create them with: ${createCommand(target, names, needed)}`, names);
  }
  return { ...report, created: before.missing, missing: [] };
}

/** The one line for a namespace that lacks `missing` (a check that may not create). */
export function missingLine(target: SetupTarget, missing: string[]): string {
  return `namespace ${target.namespace} on ${target.address} lacks Ekiden's search attributes ${missing.join(', ')}; run \`ekiden setup\` with the same connection settings${
    isTemporalCloud(target.address) ? `, or on Temporal Cloud: ${createCommand(target, missing)}` : ''
  }`;
}

/**
 * A workflow start the server refused for a search attribute it does not know (gRPC 3, "has no
 * mapping defined for search attribute NAME"): the attribute's name, else undefined.
 */
export function unknownSearchAttribute(err: unknown): string | undefined {
  for (let e: unknown = err; typeof e === 'object' && e !== null; e = (e as { cause?: unknown }).cause) {
    const { message, details } = e as { message?: unknown; details?: unknown };
    for (const text of [message, details]) {
      const m = typeof text === 'string' ? /no mapping defined for search attribute (\w+)/.exec(text) : null;
      if (m) return m[1];
    }
  }
  return undefined;
}
