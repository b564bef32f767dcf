/**
 * The building blocks of Ekiden's config parsers: typed field readers that name the field
 * path and the fix in every error, and the unknown-key check with a "did you mean" hint.
 */

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export type Obj = Record<string, unknown>;

/** `path` joined with `key`: `pools[1]` + `max` → `pools[1].max`; an empty path gives `key`. */
export function at(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

export function obj(v: unknown, field: string, fix = 'write it as a mapping of keys to values'): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${field}: expected an object, got ${describe(v)}; ${fix}`);
  return v as Obj;
}

export function optObj(o: Obj, key: string, path: string): Obj | undefined {
  return o[key] === undefined ? undefined : obj(o[key], at(path, key));
}

export function str(o: Obj, key: string, path: string, fix: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(`${at(path, key)}: missing or not a string; ${fix}`);
  return v;
}

export function optStr(o: Obj, key: string, path: string, fix = 'write it as a string'): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(`${at(path, key)}: ${describe(v)} is not a non-empty string; ${fix}`);
  return v;
}

export function optBool(o: Obj, key: string, path: string): boolean | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new ConfigError(`${at(path, key)}: ${describe(v)} is not true or false`);
  return v;
}

/** A list of non-empty strings (labels, host ids). */
export function strList(o: Obj, key: string, path: string, opts: { required: boolean; nonEmpty: boolean; example: string }): string[] | undefined {
  const v = o[key];
  const field = at(path, key);
  if (v === undefined) {
    if (opts.required) throw new ConfigError(`${field}: missing; write a list like ${opts.example}`);
    return undefined;
  }
  if (!Array.isArray(v)) throw new ConfigError(`${field}: ${describe(v)} is not a list; write a list like ${opts.example}`);
  v.forEach((item: unknown, i) => {
    if (typeof item !== 'string' || item.trim().length === 0) throw new ConfigError(`${at(field, i)}: ${describe(item)} is not a non-empty string`);
  });
  if (opts.nonEmpty && v.length === 0) throw new ConfigError(`${field}: empty; give at least one, like ${opts.example}`);
  const seen = new Set<string>();
  v.forEach((item: string, i) => {
    if (seen.has(item)) throw new ConfigError(`${at(field, i)}: "${item}" is listed twice; remove the duplicate`);
    seen.add(item);
  });
  return v as string[];
}

/** Edit distance (insertions, deletions, substitutions and swaps of neighbours), case-insensitive, for "did you mean" hints. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  const d: number[][] = Array.from({ length: x.length + 1 }, (_, i) => Array.from({ length: y.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[x.length]![y.length]!;
}

/** The known word closest to `word`, when it is close enough to be a likely typo (or a known word's start). */
export function suggest(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(word, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= Math.max(1, Math.floor(word.length / 3))) return best;
  const lower = word.toLowerCase();
  return lower.length >= 3 ? known.find((k) => k.toLowerCase().startsWith(lower)) : undefined;
}

/** Every key of `o` must be one of `known`; the error suggests the closest known key. */
export function onlyKeys(o: Obj, known: readonly string[], path: string): void {
  for (const key of Object.keys(o)) {
    if (known.includes(key)) continue;
    const hint = suggest(key, known);
    throw new ConfigError(
      `${at(path, key)}: unknown field; ${hint ? `did you mean ${hint}?` : `remove it (known fields${path ? ` of ${path}` : ''}: ${known.join(', ')})`}`,
    );
  }
}
