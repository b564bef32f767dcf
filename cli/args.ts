/**
 * Argument checking shared by the verbs: node:util parseArgs with the common flags
 * (`--address`, `--namespace`, `--config`, `--json`), `--help` / `-h`, typed flag values
 * checked against the same rules as the config file (config/bounds.ts), the NAME positional,
 * the usage text, and the Temporal target those flags (or the config file, or the
 * environment) name. Every mistake is a UsageError (or the config file's ConfigError): exit 2
 * before anything is contacted.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseIntText, slugProblem, type IntRule } from '../config/bounds.js';
import { parseFleetConfig, type FleetConfig } from '../config/fleet.js';
import { loadConfigFile } from '../config/load.js';
import { isSlug } from '../core/names.js';
import { readEndpoint, type Endpoint } from '../host/endpoint.js';
import { HelpRequest, UsageError } from './errors.js';
import type { Env } from './io.js';
import { resolveTarget, type TemporalTarget } from './temporal.js';
import { envNamesConnection } from '../temporal/connect.js';

/** What every operator verb carries: the server to reach and the output form. */
export interface Common {
  target: TemporalTarget;
  json: boolean;
  /** The Web UI of the `ekiden up` whose data dir named the target, when it has one. */
  uiUrl?: string;
}

/** `ekiden up`'s data dir unless `--data-dir` says otherwise; the read verbs look there too. */
export const DEFAULT_DATA_DIR = '.ekiden';

export type Options = NonNullable<ParseArgsConfig['options']>;

type FlagValue = string | boolean | undefined;

const COMMON_OPTIONS = {
  address: { type: 'string' },
  namespace: { type: 'string' },
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies Options;

/** The common flags, as every operator verb's help lists them. */
export const COMMON_FLAGS: ReadonlyArray<readonly [string, string]> = [
  ['--address HOST:PORT', 'Temporal server (else the config file\'s, else TEMPORAL_ADDRESS, else 127.0.0.1:7233)'],
  ['--namespace NS', 'Temporal namespace (else the config file\'s, else TEMPORAL_NAMESPACE, else default)'],
  ['--config FILE', 'fleet config file (YAML or JSON): its temporal section'],
  ['--data-dir DIR', `the running \`ekiden up\` on DIR: its server, namespace and Web UI (without the flags above, ${DEFAULT_DATA_DIR} is looked at too)`],
  ['--json', 'machine-readable JSON on stdout'],
  ['-h, --help', 'this help'],
];

/**
 * A verb's help: its synopsis lines, what it does, and one line per flag (the verb's own, then
 * the common ones unless `common` is false).
 */
export function helpText(synopsis: readonly string[], about: string, flags: ReadonlyArray<readonly [string, string]>, common = true): string {
  // A verb may describe a common flag its own way (`pool create --config`): its line wins.
  const own = new Set(flags.map(([f]) => f.split(' ')[0]));
  const rest = common ? COMMON_FLAGS.filter(([f]) => !own.has(f.split(' ')[0])) : [['-h, --help', 'this help'] as const];
  const all = [...flags, ...rest];
  const width = Math.max(...all.map(([f]) => f.length));
  return [
    ...synopsis.map((line, i) => `${i === 0 ? 'usage: ' : '       '}${line}`),
    '',
    about,
    '',
    'flags:',
    ...all.map(([f, d]) => `  ${f.padEnd(width)}  ${d}`),
  ].join('\n');
}

/** `a-b` for a rule's range, as the help lists it. */
export function range(rule: IntRule): string {
  return `${rule.min}-${rule.max}`;
}

/**
 * Whether `argv` asks for help: `--help` or `-h` as an argument of its own (not the value of
 * a flag that takes one, and not after `--`).
 */
export function wantsHelp(argv: readonly string[], options: Options = {}): boolean {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return false;
    if (arg === '--help' || arg === '-h') return true;
    if (arg.startsWith('--') && !arg.includes('=') && options[arg.slice(2)]?.type === 'string') i++;
  }
  return false;
}

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

/**
 * `argv` by exactly `options`, strictly: a HelpRequest with `usage` when it asks for help;
 * an empty value is a UsageError naming `what`.
 */
export function parseFlags<O extends Options>(argv: string[], options: O, what: string, usage: string) {
  if (wantsHelp(argv, options)) throw new HelpRequest(usage);
  const { values, positionals } = parseArgs({ args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: true });
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'string' && value.trim() === '') throw new UsageError(`${what}: --${key} needs a value`);
  }
  return { values: values as { [K in keyof O]?: string | boolean }, positionals };
}

/** The verb's `options` plus the common flags (see parseFlags). */
export function parse<O extends Options>(argv: string[], options: O, what: string, usage: string) {
  return parseFlags(argv, { ...COMMON_OPTIONS, ...options }, what, usage);
}

/** `--name`'s value as a whole number within `rule` (decimal digits only), or undefined when absent. */
export function intFlag(name: string, value: FlagValue, rule: IntRule): number | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  const parsed = parseIntText(`--${name}`, value, rule);
  if ('problem' in parsed) throw new UsageError(parsed.problem);
  return parsed.value;
}

/** `--name`'s value as a slug (a pool name, a host id), or undefined when absent. */
export function slugFlag(name: string, value: FlagValue): string | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  const problem = slugProblem(`--${name}`, value);
  if (problem) throw new UsageError(problem);
  return value;
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
  return parseFleetConfig(loadConfigFile(file), env, { configFile: file });
}

/**
 * The `ekiden up` to talk to: the one on `--data-dir` (an error when none runs there), else —
 * when neither a flag, the config file nor the environment names a server — the one on
 * DEFAULT_DATA_DIR in the current directory, if it runs.
 */
function endpointOf(dataDir: string | undefined, named: boolean): Endpoint | undefined {
  if (dataDir !== undefined) {
    const found = readEndpoint(dataDir);
    if ('missing' in found) throw new UsageError(`--data-dir: ${found.missing}; start it with ekiden up --data-dir ${dataDir}, or give --address`);
    return found;
  }
  if (named) return undefined;
  const found = readEndpoint(DEFAULT_DATA_DIR);
  return 'missing' in found ? undefined : found;
}

/** The common flags' meaning; `fleet` is the already-read `--config` file, else it is read here. */
export function commonOf(
  values: { address?: FlagValue; namespace?: FlagValue; config?: FlagValue; json?: FlagValue; 'data-dir'?: FlagValue },
  env: Env,
  fleet?: FleetConfig,
): Common {
  const file = fleet ?? (typeof values.config === 'string' ? loadFleet(values.config, env) : undefined);
  const address = strFlag(values.address);
  const endpoint = address === undefined ? endpointOf(strFlag(values['data-dir']), Boolean(file?.temporal.address || envNamesConnection(env))) : undefined;
  const common: Common = {
    target: resolveTarget({ address: address ?? endpoint?.address, namespace: strFlag(values.namespace) ?? endpoint?.namespace }, file?.temporal, env),
    json: values.json === true,
  };
  if (endpoint?.uiUrl) common.uiUrl = endpoint.uiUrl;
  return common;
}

/** A verb that takes only the common flags (`ekiden status`, `ekiden hosts`). */
export function parseNoArguments(noun: string, argv: string[], env: Env, usage: string): Common {
  const { values, positionals } = parse(argv, {}, noun, usage);
  if (positionals.length) throw new UsageError(`${noun}: unexpected argument "${positionals[0]}"`);
  return commonOf(values, env);
}
