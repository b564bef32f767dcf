/**
 * The image catalog of the fleet config file: the OCI registry built images are pushed to
 * (`registry:`) and the image definitions (`images:`) that Packer builds on a schedule. Parsed
 * at the edge like the rest of the file (config/fleet.ts): every error names the field path
 * (`images[1].schedule.cron`) and the fix; unknown fields are refused.
 *
 * No secret is ever in the file or in the parsed settings: the registry password is named by
 * an environment variable (`passwordEnv`) or a file (`passwordFile`) and read by
 * resolveRegistryPassword when it is used; a Packer variable may be `{ env: NAME }`, read by
 * resolveImageVariables at build time. Errors of both name the field, never the secret.
 *
 * Relative paths (`template`, `caFile`) are resolved against the config file's directory;
 * a document that was not read from a file must give them absolute.
 */
import { CATALOG_PREFIX } from '../core/names.js';
import { isAbsolute, resolve } from 'node:path';
import { BOUNDS, check, imageProblem, optDuration, optBounded, textProblem } from './bounds.js';
import { at, ConfigError, describe, obj, onlyKeys, optBool, optObj, optStr, str, strList, type Obj } from './fields.js';
import { readBoundedFile } from './load.js';
import { assertSlug } from '../core/names.js';
import { errorMessage } from '../core/failures.js';

type Env = Record<string, string | undefined>;

/** The registry images are pushed to and pulled from; the password only by reference. */
export interface RegistrySettings {
  /** `https://HOST[:PORT]` (or `http://` with `insecure`), no path. */
  url: string;
  /** The registry's `HOST[:PORT]`, as image references write it. */
  host: string;
  insecure: boolean;
  username?: string;
  /** Environment variable holding the password (or token). */
  passwordEnv?: string;
  /** Absolute path of a file holding the password (or token). */
  passwordFile?: string;
  /** PEM file of the CA that signed the registry's certificate (absolute). */
  caFile?: string;
}

export type ImageKind = 'qemu' | 'tart';

/** A Packer variable: a value, or the name of an environment variable read at build time. */
export type ImageVariable = string | number | boolean | string[] | { env: string };

export interface ImageSchedule {
  /** Five-field cron (`minute hour day-of-month month day-of-week`) or a macro like `@daily`. */
  cron: string;
  /** IANA time zone name the cron is read in; UTC when absent. */
  timezone?: string;
  /** How late a missed build may still start (after downtime), in ms. */
  catchupWindowMs: number;
  paused: boolean;
}

export interface ImageSpec {
  name: string;
  kind: ImageKind;
  /** Absolute path of the Packer template (file or directory). */
  template: string;
  variables: Record<string, ImageVariable>;
  /** What the build starts from: a reference, a digest, or both (the digest pins the reference). */
  base: { ref?: string; digest?: string };
  /** Repository path in the registry, e.g. `ekiden/linux-runner`. */
  repository: string;
  buildHosts: string[];
  schedule?: ImageSchedule;
  /** Old builds kept besides the current one. */
  keep: number;
  promote: 'auto' | 'manual';
  smokeTest: { timeoutMs: number };
  buildTimeoutMs: number;
}

export const IMAGE_DEFAULTS = {
  keep: 5,
  promote: 'auto',
  smokeTimeoutMs: 10 * 60_000,
  buildTimeoutMs: 2 * 3_600_000,
  catchupWindowMs: 3_600_000,
} as const;

/** The prefix of a pool's `image` that names a catalog entry: `catalog:linux-runner`. */
export { CATALOG_PREFIX };

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const REPOSITORY = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/;
const MAX_REPOSITORY = 200;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,127}$/;
const TIMEZONE = /^(?:UTC|[A-Za-z][A-Za-z0-9_+-]{0,31}(?:\/[A-Za-z0-9][A-Za-z0-9_+-]{0,31}){1,2})$/;
const HOST_PORT = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;

function slug(field: string, value: string): string {
  try {
    assertSlug(field, value);
  } catch (err) {
    throw new ConfigError(errorMessage(err), { cause: err });
  }
  return value;
}

export function envNameOf(o: Obj, key: string, path: string, what: string): string | undefined {
  const name = optStr(o, key, path, `name the environment variable holding ${what}`);
  if (name !== undefined && !ENV_NAME.test(name)) {
    throw new ConfigError(`${at(path, key)}: not an environment variable name (letters, digits and _, not starting with a digit); name the variable that holds ${what}, never the value`);
  }
  return name;
}

/** A path as written in the file, made absolute against `configDir`. */
export function filePath(o: Obj, key: string, path: string, configDir: string | undefined, fix: string): string | undefined {
  const value = optStr(o, key, path, fix);
  if (value === undefined) return undefined;
  check(textProblem(at(path, key), value, { max: 4096, what: 'a path' }));
  if (isAbsolute(value)) return resolve(value);
  if (configDir === undefined) throw new ConfigError(`${at(path, key)}: "${value}" is relative, but the config was not read from a file; write an absolute path`);
  return resolve(configDir, value);
}

// ───────────────────────────── registry ─────────────────────────────

const REGISTRY_KEYS = ['url', 'insecure', 'username', 'passwordEnv', 'passwordFile', 'caFile'];

export function parseRegistry(raw: unknown, configDir?: string): RegistrySettings {
  const path = 'registry';
  const r = obj(raw, path, 'write e.g. { url: "https://registry.example.com", username: ekiden, passwordEnv: EKIDEN_REGISTRY_PASSWORD }');
  // Checked before the unknown-field check, so the message says where the password goes (and never repeats it).
  if (r.password !== undefined) {
    throw new ConfigError('registry.password: a password is never written in the config file; name where it is instead, with passwordEnv (an environment variable) or passwordFile (an absolute path)');
  }
  onlyKeys(r, REGISTRY_KEYS, path);
  const insecure = optBool(r, 'insecure', path) ?? false;
  const url = str(r, 'url', path, 'write the registry address, e.g. "https://registry.example.com"');
  const m = /^(https?):\/\/([^/?#@]+)\/?$/.exec(url);
  const host = m?.[2];
  if (!m || host === undefined || !HOST_PORT.test(host)) {
    throw new ConfigError(`registry.url: ${JSON.stringify(url)} is not https://HOST[:PORT] (no user, path or query); write e.g. "https://registry.example.com:5000"`);
  }
  const port = /:([0-9]+)$/.exec(host)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65_535)) throw new ConfigError(`registry.url: port ${port} is not 1-65535; write e.g. "https://registry.example.com:5000"`);
  if (m[1] === 'http' && !insecure) {
    throw new ConfigError(`registry.url: ${JSON.stringify(url)} is plain http; use https, or set insecure: true for a registry on a trusted network`);
  }
  const settings: RegistrySettings = { url: `${m[1]}://${host}`, host, insecure };
  const username = optStr(r, 'username', path, 'write the registry user name');
  if (username !== undefined) check(textProblem('registry.username', username, { max: 255, noWhitespace: true, what: 'a user name' }));
  const passwordEnv = envNameOf(r, 'passwordEnv', path, 'the registry password');
  const passwordFile = optStr(r, 'passwordFile', path, 'write the absolute path of the file holding the registry password');
  if (passwordEnv !== undefined && passwordFile !== undefined) throw new ConfigError('registry.passwordFile: set either passwordEnv or passwordFile, not both');
  if (passwordFile !== undefined && !isAbsolute(passwordFile)) {
    throw new ConfigError(`registry.passwordFile: "${passwordFile}" is not an absolute path; write e.g. /etc/ekiden/registry-password`);
  }
  if (passwordFile !== undefined) check(textProblem('registry.passwordFile', passwordFile, { max: 4096, what: 'a path' }));
  const hasPassword = passwordEnv !== undefined || passwordFile !== undefined;
  if (hasPassword && username === undefined) throw new ConfigError('registry.username: missing; a password needs the user name it belongs to');
  if (!hasPassword && username !== undefined) throw new ConfigError('registry.username: set without a password; add passwordEnv or passwordFile, or remove username for an anonymous registry');
  if (username !== undefined) settings.username = username;
  if (passwordEnv !== undefined) settings.passwordEnv = passwordEnv;
  if (passwordFile !== undefined) settings.passwordFile = resolve(passwordFile);
  const caFile = filePath(r, 'caFile', path, configDir, 'write the path of the registry CA certificate (PEM)');
  if (caFile !== undefined) settings.caFile = caFile;
  return settings;
}

/** A password file is small: a token, not a document. */
export const MAX_PASSWORD_FILE_BYTES = 16 * 1024;

/**
 * The registry password, read now from the environment variable or file the config names
 * (a trailing newline of the file dropped); undefined for an anonymous registry. Errors name
 * the field and the variable or file, never the value.
 */
export function resolveRegistryPassword(registry: RegistrySettings, env: Env): string | undefined {
  if (registry.passwordEnv !== undefined) {
    const value = env[registry.passwordEnv];
    if (!value) throw new ConfigError(`registry.passwordEnv: environment variable ${registry.passwordEnv} is empty; export the registry password there`);
    return value;
  }
  if (registry.passwordFile !== undefined) {
    let text: string;
    try {
      text = readBoundedFile(registry.passwordFile, 'registry password file', MAX_PASSWORD_FILE_BYTES);
    } catch (err) {
      throw new ConfigError(`registry.passwordFile: ${errorMessage(err)}`, { cause: err });
    }
    const value = text.replace(/\r?\n$/, '');
    if (value.length === 0) throw new ConfigError(`registry.passwordFile: ${registry.passwordFile} is empty; write the registry password in it`);
    if (/[\r\n]/.test(value)) throw new ConfigError(`registry.passwordFile: ${registry.passwordFile} holds more than one line; keep only the password in it`);
    return value;
  }
  return undefined;
}

// ───────────────────────────── cron and time zone ─────────────────────────────

const CRON_FIELDS = [
  { name: 'minute', min: 0, max: 59, names: [] as string[] },
  { name: 'hour', min: 0, max: 23, names: [] as string[] },
  { name: 'day-of-month', min: 1, max: 31, names: [] as string[] },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day-of-week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
] as const;
const CRON_MACROS = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];
const CRON_FIX = 'write five fields "minute hour day-of-month month day-of-week", e.g. "0 3 * * *" (every day at 03:00) or "30 2 * * 1-5"';

/** Why one cron field is wrong, or undefined. Items: `*`, `N`, `N-M`, each optionally `/STEP`, joined by commas. */
function cronFieldProblem(text: string, rule: (typeof CRON_FIELDS)[number]): string | undefined {
  const value = (v: string): number | undefined => {
    if (/^[0-9]{1,2}$/.test(v)) return Number(v);
    const i = (rule.names as readonly string[]).indexOf(v.toLowerCase());
    return i < 0 ? undefined : i + rule.min;
  };
  for (const item of text.split(',')) {
    const m = /^(\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:\/([0-9]{1,2}))?$/.exec(item);
    if (!m) return `"${item}" is not *, N, N-M or one of those with /STEP`;
    if (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > rule.max)) return `step ${m[2]} is not from 1 to ${rule.max}`;
    if (m[1] === '*') continue;
    const [from, to] = m[1]!.split('-').map(value);
    if (from === undefined || (m[1]!.includes('-') && to === undefined)) return `"${m[1]}" is not a number${rule.names.length > 0 ? ' or a name' : ''}`;
    for (const n of [from, to]) if (n !== undefined && (n < rule.min || n > rule.max)) return `${n} is outside ${rule.min}-${rule.max}`;
    if (to !== undefined && to < from) return `the range ${m[1]} runs backwards`;
  }
  return undefined;
}

/** The problem with a cron expression (shape only: five fields in range, or a macro), or undefined. */
export function cronProblem(field: string, cron: string): string | undefined {
  const bad = (why: string) => `${field}: ${JSON.stringify(cron)} is not a cron schedule (${why}); ${CRON_FIX}`;
  if (cron.startsWith('@')) return CRON_MACROS.includes(cron) ? undefined : bad(`${cron} is not one of ${CRON_MACROS.join(', ')}`);
  if (cron.length > 255) return bad('longer than 255 characters');
  const parts = cron.trim().split(/\s+/);
  if (parts.length !== 5) return bad(`${parts.length} field${parts.length === 1 ? '' : 's'}, not 5`);
  for (let i = 0; i < 5; i++) {
    const problem = cronFieldProblem(parts[i]!, CRON_FIELDS[i]!);
    if (problem) return bad(`${CRON_FIELDS[i]!.name}: ${problem}`);
  }
  return undefined;
}

// ───────────────────────────── images ─────────────────────────────

const IMAGE_KEYS = ['name', 'kind', 'template', 'variables', 'base', 'repository', 'buildHosts', 'schedule', 'keep', 'promote', 'smokeTest', 'buildTimeout'];

export interface ImageParseOptions {
  /** Directory of the config file, for relative paths. */
  configDir?: string;
  /** Host ids the file defines, with their driver kind; absent: buildHosts not checked. */
  knownHosts?: ReadonlyMap<string, string>;
}

/** Entries of one list variable. */
const MAX_LIST_VARIABLE = 1_000;

function parseVariables(o: Obj, path: string): Record<string, ImageVariable> {
  const v = optObj(o, 'variables', path);
  const vars: Array<[string, ImageVariable]> = [];
  if (!v) return {};
  const vPath = at(path, 'variables');
  for (const [key, value] of Object.entries(v)) {
    const field = at(vPath, key);
    if (!VARIABLE_NAME.test(key)) throw new ConfigError(`${field}: not a Packer variable name; use letters, digits, _ and -, starting with a letter or _`);
    if (typeof value === 'string' || typeof value === 'boolean') vars.push([key, value]);
    else if (typeof value === 'number' && Number.isFinite(value)) vars.push([key, value]);
    else if (Array.isArray(value)) {
      // A list of strings (e.g. the QEMU template's `inline` provisioner lines).
      if (value.length > MAX_LIST_VARIABLE) throw new ConfigError(`${field}: ${value.length} entries; at most ${MAX_LIST_VARIABLE}`);
      value.forEach((item, i) => {
        if (typeof item !== 'string') throw new ConfigError(`${at(field, String(i))}: ${describe(item)} is not a string; a list variable holds strings, e.g. ["apt-get install -y jq"]`);
      });
      vars.push([key, [...(value as string[])]]);
    } else if (typeof value === 'object' && value !== null) {
      const e = value as Obj;
      onlyKeys(e, ['env'], field);
      const name = envNameOf(e, 'env', field, 'the value');
      if (name === undefined) throw new ConfigError(`${at(field, 'env')}: missing; write { env: NAME } to read the value from an environment variable at build time`);
      vars.push([key, { env: name }]);
    } else {
      throw new ConfigError(`${field}: ${describe(value)} is not a string, number, true/false or { env: NAME }; write e.g. ${key}: "value"`);
    }
  }
  // fromEntries: a key such as __proto__ stays a plain own property.
  return Object.fromEntries(vars);
}

function parseBase(o: Obj, path: string, kind: ImageKind): ImageSpec['base'] {
  const bPath = at(path, 'base');
  const example = kind === 'qemu' ? '{ ref: qemu:debian-bookworm-runner }' : '{ ref: ghcr.io/cirruslabs/macos-sequoia-base:latest }';
  const b = obj(o.base, bPath, `write e.g. ${example}, or { digest: sha256:… }`);
  onlyKeys(b, ['ref', 'digest'], bPath);
  const ref = optStr(b, 'ref', bPath, `write e.g. ${example}`);
  const digest = optStr(b, 'digest', bPath, 'write sha256: and 64 hex digits');
  if (ref === undefined && digest === undefined) throw new ConfigError(`${bPath}: give ref or digest (or both); write e.g. ${example}`);
  const base: ImageSpec['base'] = {};
  if (ref !== undefined) {
    const field = at(bPath, 'ref');
    check(imageProblem(field, ref));
    if (kind === 'qemu' && !ref.startsWith('qemu:')) throw new ConfigError(`${field}: "${ref}" is not a QEMU image; a qemu image starts from qemu:NAME or qemu:/ABSOLUTE/DIR`);
    if (kind === 'tart' && ref.startsWith('qemu:')) throw new ConfigError(`${field}: "${ref}" is a QEMU image; a tart image starts from an OCI reference, e.g. ghcr.io/cirruslabs/macos-sequoia-base:latest`);
    base.ref = ref;
  }
  if (digest !== undefined) {
    if (!DIGEST.test(digest)) throw new ConfigError(`${at(bPath, 'digest')}: "${digest}" is not a digest; write sha256: and 64 hex digits`);
    base.digest = digest;
  }
  return base;
}

function parseSchedule(o: Obj, path: string): ImageSchedule | undefined {
  const s = optObj(o, 'schedule', path);
  if (!s) return undefined;
  const sPath = at(path, 'schedule');
  onlyKeys(s, ['cron', 'timezone', 'catchupWindow', 'paused'], sPath);
  const cron = str(s, 'cron', sPath, CRON_FIX);
  check(cronProblem(at(sPath, 'cron'), cron));
  const schedule: ImageSchedule = {
    cron: cron.trim().split(/\s+/).join(' '),
    catchupWindowMs: optDuration(s, 'catchupWindow', sPath, BOUNDS.catchupWindowMs, IMAGE_DEFAULTS.catchupWindowMs),
    paused: optBool(s, 'paused', sPath) ?? false,
  };
  const timezone = optStr(s, 'timezone', sPath, 'write an IANA time zone name, e.g. "Europe/Berlin" or "UTC"');
  if (timezone !== undefined) {
    if (!TIMEZONE.test(timezone)) throw new ConfigError(`${at(sPath, 'timezone')}: ${JSON.stringify(timezone)} is not an IANA time zone name; write e.g. "Europe/Berlin", "America/New_York" or "UTC"`);
    schedule.timezone = timezone;
  }
  return schedule;
}

/** One `images[i]` entry, with defaults filled in (keep 5, promote auto, smoke test 10m, build 2h). */
export function parseImage(raw: unknown, path: string, opts: ImageParseOptions = {}): ImageSpec {
  const o = obj(raw, path, 'write e.g. { name: linux-runner, kind: qemu, template: packer/linux, base: { ref: qemu:debian-bookworm-runner }, repository: ekiden/linux-runner, buildHosts: [linux-1] }');
  onlyKeys(o, IMAGE_KEYS, path);
  const name = slug(at(path, 'name'), str(o, 'name', path, 'give the image a short name like "linux-runner"'));
  const kind = o.kind;
  if (kind !== 'qemu' && kind !== 'tart') throw new ConfigError(`${at(path, 'kind')}: ${kind === undefined ? 'missing' : `${describe(kind)} is not supported`}; use "qemu" or "tart"`);
  if (o.template === undefined) throw new ConfigError(`${at(path, 'template')}: missing; write the path of the Packer template (file or directory), e.g. packer/linux-runner.pkr.hcl`);
  const template = filePath(o, 'template', path, opts.configDir, 'write the path of the Packer template (file or directory)')!;
  const variables = parseVariables(o, path);
  const base = parseBase(o, path, kind);
  const repository = str(o, 'repository', path, 'write the registry repository, e.g. "ekiden/linux-runner"');
  if (repository.length > MAX_REPOSITORY || !REPOSITORY.test(repository)) {
    const why = repository.length > MAX_REPOSITORY ? `longer than ${MAX_REPOSITORY} characters` : 'lower-case letters and digits joined by ".", "_" or "-", in "/"-separated parts';
    throw new ConfigError(`${at(path, 'repository')}: ${JSON.stringify(repository)} is not a repository name (${why}); write e.g. "ekiden/linux-runner"`);
  }
  const buildHosts = strList(o, 'buildHosts', path, { required: true, nonEmpty: true, example: '[linux-1]' })!;
  buildHosts.forEach((h, i) => {
    const field = at(at(path, 'buildHosts'), i);
    slug(field, h);
    if (!opts.knownHosts) return;
    const driver = opts.knownHosts.get(h);
    if (driver === undefined) {
      throw new ConfigError(`${field}: no host "${h}" in hosts; define it under hosts or remove it from buildHosts (hosts: ${[...opts.knownHosts.keys()].join(', ')})`);
    }
    if (driver !== kind && driver !== 'fake') throw new ConfigError(`${field}: host "${h}" runs ${driver}, but the image is ${kind}; build it on a ${kind} host`);
  });
  const promote = o.promote ?? IMAGE_DEFAULTS.promote;
  if (promote !== 'auto' && promote !== 'manual') throw new ConfigError(`${at(path, 'promote')}: ${describe(promote)} is not one of auto, manual`);
  let smokeTimeoutMs: number = IMAGE_DEFAULTS.smokeTimeoutMs;
  const smoke = optObj(o, 'smokeTest', path);
  if (smoke) {
    onlyKeys(smoke, ['timeout'], at(path, 'smokeTest'));
    smokeTimeoutMs = optDuration(smoke, 'timeout', at(path, 'smokeTest'), BOUNDS.smokeTimeoutMs, IMAGE_DEFAULTS.smokeTimeoutMs);
  }
  const spec: ImageSpec = {
    name,
    kind,
    template,
    variables,
    base,
    repository,
    buildHosts,
    keep: optBounded(o, 'keep', path, BOUNDS.imageKeep) ?? IMAGE_DEFAULTS.keep,
    promote,
    smokeTest: { timeoutMs: smokeTimeoutMs },
    buildTimeoutMs: optDuration(o, 'buildTimeout', path, BOUNDS.buildTimeoutMs, IMAGE_DEFAULTS.buildTimeoutMs),
  };
  const schedule = parseSchedule(o, path);
  if (schedule) spec.schedule = schedule;
  return spec;
}

/** The `images:` list: each entry parsed, names unique. */
export function parseImages(raw: unknown, opts: ImageParseOptions = {}): ImageSpec[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new ConfigError(`images: ${describe(raw)} is not a list; write a list of entries, e.g. [{ name: linux-runner, kind: qemu, … }]`);
  const images = raw.map((entry, i) => parseImage(entry, `images[${i}]`, opts));
  const seen = new Set<string>();
  images.forEach((image, i) => {
    if (seen.has(image.name)) throw new ConfigError(`images[${i}].name: "${image.name}" is defined twice; give each image its own name`);
    seen.add(image.name);
  });
  return images;
}

/**
 * A pool's `image: catalog:NAME` checked against the catalog: NAME must be an entry, of the
 * kind of the pool's hosts' driver where the file says it. Undefined for any other image form.
 */
export function catalogImageProblem(field: string, image: string, images: readonly ImageSpec[], hostKinds: ReadonlyArray<[host: string, kind: string | undefined]>): string | undefined {
  if (!image.startsWith(CATALOG_PREFIX)) return undefined;
  const name = image.slice(CATALOG_PREFIX.length);
  const entry = images.find((i) => i.name === name);
  if (!entry) {
    const known = images.length > 0 ? `images: ${images.map((i) => i.name).join(', ')}` : 'the file defines no images';
    return `${field}: no image ${JSON.stringify(name)} in images; define it under images or fix the name (${known})`;
  }
  for (const [host, kind] of hostKinds) {
    if (kind !== undefined && kind !== 'fake' && kind !== entry.kind) {
      return `${field}: image "${name}" is ${entry.kind}, but host "${host}" runs ${kind}; use a ${kind} image for this pool or move it to ${entry.kind} hosts`;
    }
  }
  return undefined;
}

/**
 * The Packer variables of `image` with every `{ env: NAME }` read from `env` now, at build
 * time. `path` is the image's field path (`images[0]`), for errors.
 */
export function resolveImageVariables(image: ImageSpec, env: Env, path: string): Record<string, string | number | boolean | string[]> {
  const out: Record<string, string | number | boolean | string[]> = {};
  for (const [key, value] of Object.entries(image.variables)) {
    if (typeof value !== 'object' || Array.isArray(value)) {
      out[key] = value;
      continue;
    }
    const v = env[value.env];
    if (v === undefined || v === '') throw new ConfigError(`${at(at(at(path, 'variables'), key), 'env')}: environment variable ${value.env} is empty; export the value there on the build host`);
    out[key] = v;
  }
  return out;
}
