/**
 * Argument checking shared by the operator verbs: node:util parseArgs with the common flags
 * (`--address`, `--namespace`, `--config`, `--json`), typed flag values, the NAME positional,
 * and the Temporal target those flags (or the config file, or the environment) name. Every
 * mistake is a UsageError (or the config file's ConfigError): exit 2 before anything is contacted.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseFleetConfig, type FleetConfig } from '../config/fleet.js';
import { loadConfigFile } from '../config/load.js';
import { isSlug } from '../core/names.js';
import { UsageError } from './errors.js';
import type { Env } from './io.js';
import { resolveTarget, type TemporalTarget } from './temporal.js';

/** What every operator verb carries: the server to reach and the output form. */
export interface Common {
  target: TemporalTarget;
  json: boolean;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

type FlagValue = string | boolean | undefined;

const COMMON_OPTIONS = {
  address: { type: 'string' },
  namespace: { type: 'string' },
  config: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies Options;

/** `--size -1` → `--size=-1`, so a negative number reaches the value check instead of looking like a flag. */
function joinNegativeValues(argv: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg.startsWith('--') && options[arg.slice(2)]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** The verb's `options` plus the common flags, strictly; an empty value is a UsageError naming `what`. */
export function parse<O extends Options>(argv: string[], options: O, what: string) {
  const all: Options = { ...COMMON_OPTIONS, ...options };
  const { values, positionals } = parseArgs({ args: joinNegativeValues(argv, all), options: all, strict: true, allowPositionals: true });
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'string' && value.trim() === '') throw new UsageError(`${what}: --${key} needs a value`);
  }
  return { values: values as { [K in keyof (typeof COMMON_OPTIONS & O)]?: string | boolean }, positionals };
}

export function intFlag(name: string, value: FlagValue, min: number): number | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  if (!/^-?\d+$/.test(value.trim()) || Number(value) < min) throw new UsageError(`--${name}: "${value}" is not a whole number ≥ ${min}`);
  return Number(value);
}

export function listFlag(value: FlagValue): string[] | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function strFlag(value: FlagValue): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The one pool NAME of `what`. */
export function nameArg(what: string, positionals: string[], usage: string): string {
  if (positionals.length === 0) throw new UsageError(`${what}: NAME is missing; usage: ${usage}`);
  if (positionals.length > 1) throw new UsageError(`${what}: one NAME only, got ${positionals.map((p) => `"${p}"`).join(' ')}; usage: ${usage}`);
  const name = positionals[0]!;
  if (!isSlug(name)) throw new UsageError(`${what}: "${name}" is not a pool name; use 1-31 lower-case letters, digits and single dashes`);
  return name;
}

export function loadFleet(file: string, env: Env): FleetConfig {
  return parseFleetConfig(loadConfigFile(file), env);
}

/** The common flags' meaning; `fleet` is the already-read `--config` file, else it is read here. */
export function commonOf(values: { address?: FlagValue; namespace?: FlagValue; config?: FlagValue; json?: FlagValue }, env: Env, fleet?: FleetConfig): Common {
  const file = fleet ?? (typeof values.config === 'string' ? loadFleet(values.config, env) : undefined);
  return {
    target: resolveTarget({ address: strFlag(values.address), namespace: strFlag(values.namespace) }, file?.temporal, env),
    json: values.json === true,
  };
}

/** A verb that takes only the common flags (`ekiden status`, `ekiden hosts`). */
export function parseNoArguments(noun: string, argv: string[], env: Env): Common {
  const { values, positionals } = parse(argv, {}, noun);
  if (positionals.length) throw new UsageError(`${noun}: unexpected argument "${positionals[0]}"`);
  return commonOf(values, env);
}
