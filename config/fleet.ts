/**
 * The fleet config file: one document describing the Temporal connection, GitHub, the webhook
 * receiver, the hosts, the pools, and the image catalog with its registry (config/images.ts).
 * Parsed once, at the edge, into validated settings; every error names the field path
 * (`pools[1].max`) and the fix. Secrets are never in the file, only the names of the
 * environment variables or files holding them; they are read later, by the process that needs
 * them (resolveGitHub, resolveDriver, resolveWebhookSecret, resolveRegistryPassword). Relative
 * paths in the file are resolved against its directory, which parseFleetConfig is told
 * (`configFile`; loadFleetConfigFile does it).
 */
import { dirname, resolve } from 'node:path';
import { loadConfigFile, readBoundedFile } from './load.js';
import { catalogImageProblem, envNameOf, filePath, parseImages, parseRegistry, type ImageSpec, type RegistrySettings } from './images.js';
import { assertSlug, CATALOG_PREFIX, SHARED_TASK_QUEUE } from '../core/names.js';
import { DEFAULT_BACKOFF, defaultCapacity, DEFAULT_RUNNER_TIMING, resolvePoolConfig, type PoolSpec } from '../core/defaults.js';
import type { RunnerTiming } from '../core/runner-spec.js';
import type { DriverSettings } from '../drivers/index.js';
import type { GitHubAuth, GitHubScope, GitHubSettings } from '../github/client.js';
import type { PoolConfig } from '../workflows/api.js';
import { BOUNDS, check, guestDirProblem, imageProblem, intProblem, labelProblem, optBounded, optDuration, parseIntText, textProblem } from './bounds.js';
import { at, ConfigError, describe, obj, onlyKeys, optBool, optObj, optStr, str, strList, type Obj } from './fields.js';
import { errorMessage } from '../core/failures.js';

export { ConfigError } from './fields.js';
export { defaultCapacity } from '../core/defaults.js';
export type { ImageSpec, RegistrySettings } from './images.js';

type Env = Record<string, string | undefined>;

export interface TemporalSettings {
  address: string;
  namespace: string;
  /** Task queue of the shared (any-worker) work, the pools' workflows included. */
  taskQueue: string;
  /** TLS to the server (`true`: the system's CAs), with mTLS when certFile/keyFile are given. */
  tls?: TemporalTlsFiles | true;
  /** Environment variable holding the API key (Temporal Cloud); never the key itself. */
  apiKeyEnv?: string;
}

export interface TemporalTlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
}

export type GitHubAuthRef =
  | { kind: 'token'; tokenEnv: string }
  | { kind: 'app'; appId: number; installationId: number; privateKeyFile: string };

export interface GitHubConfig {
  apiUrl: string;
  scope: GitHubScope;
  auth: GitHubAuthRef;
  writeSpacingMs?: number;
}

export interface WebhookConfig {
  port: number;
  /** Environment variable holding the webhook secret. */
  secretEnv: string;
  /** Listen address; the receiver's default when absent. */
  host?: string;
  /** Largest request body accepted; the receiver's default when absent. */
  maxBodyBytes?: number;
}

type TartSettings = Extract<DriverSettings, { kind: 'tart' }>;
/** Driver settings as written in the file: secrets by environment variable name. */
export type DriverConfig =
  | Exclude<DriverSettings, TartSettings>
  | (Omit<TartSettings, 'password' | 'registryPassword'> & { passwordEnv?: string; registryPasswordEnv?: string });

export interface HostConfig {
  id: string;
  dataDir: string;
  /** VMs at once; absent for qemu, whose worker computes it from its CPUs (see defaultCapacity). */
  capacity?: number;
  labels: string[];
  driver: DriverConfig;
  pollIntervalMs?: number;
  shutdownGraceMs?: number;
  /** The host's image cache: its budget and how long an image nothing uses is kept. */
  imageCache: { budgetBytes: number; retentionMs: number };
  /**
   * Its worker also runs the control plane (the workflows, GitHub and fleet activities).
   * Default: false in the fleet form (hosts run only their own VM work; `ekiden control`
   * runs the rest), true in the single-host form (one machine is the whole fleet).
   */
  control: boolean;
}

/** The control plane's fleet-wide work: one round every `intervalMs`, on a Temporal Schedule. */
export interface ControlConfig {
  /** GitHub reconciliation and image-cache GC across the fleet, once per round. */
  intervalMs: number;
  /**
   * Worker Versioning (docs/upgrades.md): the control plane's workers poll as one version of a
   * Worker Deployment, and a runner stays on the version it started on. Absent: unversioned
   * workers (the single-host form's default; `versioning: false`).
   */
  versioning?: ControlVersioning;
}

export interface ControlVersioning {
  /** The Worker Deployment (default: the fleet's task queue name). */
  deployment: string;
  /** This worker's build id (default: Ekiden's package version). */
  buildId?: string;
}

export const DEFAULT_CONTROL: ControlConfig = { intervalMs: 10 * 60_000 };

export interface FleetConfig {
  temporal: TemporalSettings;
  github?: GitHubConfig;
  webhook?: WebhookConfig;
  hosts: HostConfig[];
  pools: PoolConfig[];
  /** The image catalog (`images:`); a pool's `image: catalog:NAME` names one of these. */
  images: ImageSpec[];
  /** Where built images are pushed; present whenever images are. */
  registry?: RegistrySettings;
  /** Test infrastructure only: hold named activities after they ran (see workers/test-hooks). */
  /** Test infrastructure only: hold named activities after they ran; run another workflow bundle (an upgrade's next version). */
  testing?: { pauseAfter: string[]; workflowBundle?: string };
  control: ControlConfig;
}

export const DEFAULT_WEBHOOK_PORT = 8088;
export const DEFAULT_WEBHOOK_SECRET_ENV = 'EKIDEN_WEBHOOK_SECRET';

function slug(field: string, value: string): string {
  try {
    assertSlug(field, value);
  } catch (err) {
    throw new ConfigError(errorMessage(err));
  }
  return value;
}

// ───────────────────────────── sections ─────────────────────────────

export const DEFAULT_TEMPORAL_PORT = 7233;

/** `host:port`, `[v6]:port` or a bare host (port 7233, as the SDK assumes); undefined when malformed. */
export function splitAddress(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(address);
  if (!m) return undefined;
  const port = m[3] === undefined ? DEFAULT_TEMPORAL_PORT : Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2]!, port };
}

/** A Temporal namespace or task queue name: 1-255 characters, no whitespace or control characters. */
export function nameTextProblem(field: string, value: string, what: string): string | undefined {
  return textProblem(field, value, { max: 255, noWhitespace: true, what });
}

export function parseTemporal(raw: unknown, env: Env, configDir?: string): TemporalSettings {
  const t = obj(raw ?? {}, 'temporal');
  onlyKeys(t, ['address', 'namespace', 'taskQueue', 'tls', 'apiKeyEnv', 'apiKey'], 'temporal');
  if (t.apiKey !== undefined) throw new ConfigError('temporal.apiKey: an API key is a secret and is never written in the file; export it in an environment variable and name that with temporal.apiKeyEnv');
  const address = optStr(t, 'address', 'temporal', 'write HOST:PORT, e.g. "temporal.example.com:7233"');
  if (address !== undefined && !splitAddress(address)) throw new ConfigError(`temporal.address: "${address}" is not HOST:PORT; write e.g. "temporal.example.com:7233"`);
  const namespace = optStr(t, 'namespace', 'temporal', 'write a namespace name, e.g. "default"');
  if (namespace !== undefined) check(nameTextProblem('temporal.namespace', namespace, 'a namespace name'));
  else if (env.TEMPORAL_NAMESPACE) check(nameTextProblem('TEMPORAL_NAMESPACE', env.TEMPORAL_NAMESPACE, 'a namespace name'));
  const taskQueue = optStr(t, 'taskQueue', 'temporal', `write a task queue name; the default is "${SHARED_TASK_QUEUE}"`);
  if (taskQueue !== undefined) check(nameTextProblem('temporal.taskQueue', taskQueue, 'a task queue name'));
  const settings: TemporalSettings = {
    address: address ?? env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    namespace: namespace ?? env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: taskQueue ?? SHARED_TASK_QUEUE,
  };
  const tls = parseTemporalTls(t.tls, configDir);
  if (tls !== undefined) settings.tls = tls;
  const apiKeyEnv = envNameOf(t, 'apiKeyEnv', 'temporal', 'the Temporal API key');
  if (apiKeyEnv !== undefined) settings.apiKeyEnv = apiKeyEnv;
  return settings;
}

function parseTemporalTls(raw: unknown, configDir: string | undefined): TemporalTlsFiles | true | undefined {
  if (raw === undefined || raw === false) return undefined;
  if (raw === true) return true;
  const o = obj(raw, 'temporal.tls', 'write true (the system CAs) or { caFile, certFile, keyFile, serverName }');
  onlyKeys(o, ['caFile', 'certFile', 'keyFile', 'serverName'], 'temporal.tls');
  const out: TemporalTlsFiles = {};
  const caFile = filePath(o, 'caFile', 'temporal.tls', configDir, "write the path of the CA certificate (PEM) that signed the server's certificate");
  const certFile = filePath(o, 'certFile', 'temporal.tls', configDir, 'write the path of the client certificate (PEM)');
  const keyFile = filePath(o, 'keyFile', 'temporal.tls', configDir, "write the path of the client certificate's private key (PEM)");
  if (certFile !== undefined && keyFile === undefined) throw new ConfigError('temporal.tls.keyFile: missing; a client certificate (temporal.tls.certFile) needs its private key file too');
  if (keyFile !== undefined && certFile === undefined) throw new ConfigError('temporal.tls.certFile: missing; a private key (temporal.tls.keyFile) needs its client certificate file too');
  const serverName = optStr(o, 'serverName', 'temporal.tls', "write the name in the server's certificate, e.g. \"temporal.example.com\"");
  if (serverName !== undefined && !/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(serverName)) {
    throw new ConfigError(`temporal.tls.serverName: "${serverName}" is not a host name; write the name in the server's certificate, e.g. "temporal.example.com"`);
  }
  if (caFile !== undefined) out.caFile = caFile;
  if (certFile !== undefined) out.certFile = certFile;
  if (keyFile !== undefined) out.keyFile = keyFile;
  if (serverName !== undefined) out.serverName = serverName;
  return out;
}

/** A GitHub account or repository name as it may appear in an API path: no `/`, never `.` or `..`. */
function isGitHubName(name: string | undefined): name is string {
  return name !== undefined && /^[\w.-]{1,100}$/.test(name) && name !== '.' && name !== '..';
}

/** `repo:owner/name`, `org:name` or `enterprise:slug`. */
export function parseScope(value: string, field: string): GitHubScope {
  const m = /^(repo|org|enterprise):(.+)$/.exec(value);
  if (m?.[1] === 'repo') {
    const [owner, repo, ...rest] = m[2]!.split('/');
    if (isGitHubName(owner) && isGitHubName(repo) && rest.length === 0) return { kind: 'repo', owner, repo };
  } else if (m?.[1] === 'org' && isGitHubName(m[2])) {
    return { kind: 'org', org: m[2] };
  } else if (m?.[1] === 'enterprise' && isGitHubName(m[2])) {
    return { kind: 'enterprise', enterprise: m[2] };
  }
  throw new ConfigError(`${field}: "${value}" is not a scope; write repo:OWNER/REPO, org:ORG or enterprise:SLUG`);
}

/** A GitHub App or installation id: a whole number (or a string of decimal digits). */
function githubId(a: Obj, key: string, what: string): number {
  const field = at('github.auth', key);
  const v = a[key];
  if (v === undefined) throw new ConfigError(`${field}: missing; write ${what}, e.g. ${BOUNDS.githubId.example}`);
  if (typeof v === 'string') {
    const parsed = parseIntText(field, v, BOUNDS.githubId);
    if ('problem' in parsed) throw new ConfigError(parsed.problem);
    return parsed.value;
  }
  check(intProblem(field, v, BOUNDS.githubId));
  return v as number;
}

export function parseGitHub(raw: unknown): GitHubConfig {
  const g = obj(raw, 'github', 'write e.g. { scope: "org:acme", auth: { tokenEnv: GITHUB_TOKEN } }');
  onlyKeys(g, ['apiUrl', 'scope', 'auth', 'writeSpacingMs'], 'github');
  const scope = parseScope(str(g, 'scope', 'github', 'write repo:OWNER/REPO or org:ORG'), 'github.scope');
  const apiUrl = optStr(g, 'apiUrl', 'github') ?? 'https://api.github.com';
  let url: URL | undefined;
  try {
    url = new URL(apiUrl);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new ConfigError(`github.apiUrl: "${apiUrl}" is not an http(s) URL; use https://api.github.com or https://HOST/api/v3`);
  }
  const a = obj(g.auth, 'github.auth', 'set tokenEnv (name of the env var with a PAT) or appId, installationId and privateKeyFile');
  onlyKeys(a, ['tokenEnv', 'appId', 'installationId', 'privateKeyFile'], 'github.auth');
  let auth: GitHubAuthRef;
  if (a.tokenEnv !== undefined) {
    const tokenEnv = str(a, 'tokenEnv', 'github.auth', 'name the environment variable holding the token, e.g. GITHUB_TOKEN');
    if (a.appId !== undefined) throw new ConfigError('github.auth: set either tokenEnv or appId, not both');
    auth = { kind: 'token', tokenEnv };
  } else if (a.appId !== undefined) {
    const appId = githubId(a, 'appId', 'the numeric App id');
    const installationId = githubId(a, 'installationId', 'the numeric installation id');
    const privateKeyFile = str(a, 'privateKeyFile', 'github.auth', 'point it at the App private key (.pem)');
    auth = { kind: 'app', appId, installationId, privateKeyFile };
  } else {
    throw new ConfigError('github.auth: set tokenEnv (name of the env var with a PAT) or appId, installationId and privateKeyFile');
  }
  return { apiUrl, scope, auth, writeSpacingMs: optBounded(g, 'writeSpacingMs', 'github', BOUNDS.writeSpacingMs) };
}

/** The GitHub settings with their secret read from the environment or the key file. */
export function resolveGitHub(config: GitHubConfig, env: Env): GitHubSettings {
  let auth: GitHubAuth;
  if (config.auth.kind === 'token') {
    const token = env[config.auth.tokenEnv];
    if (!token) throw new ConfigError(`github.auth.tokenEnv: environment variable ${config.auth.tokenEnv} is empty; export the token there`);
    auth = { kind: 'token', token };
  } else {
    let privateKey: string;
    try {
      privateKey = readBoundedFile(config.auth.privateKeyFile, 'GitHub App private key', 64 * 1024);
    } catch (err) {
      throw new ConfigError(`github.auth.privateKeyFile: ${errorMessage(err)}`);
    }
    auth = { kind: 'app', appId: config.auth.appId, installationId: config.auth.installationId, privateKey };
  }
  return { apiUrl: config.apiUrl, scope: config.scope, auth, writeSpacingMs: config.writeSpacingMs };
}

export function parseWebhook(raw: unknown): WebhookConfig {
  const w = obj(raw, 'webhook');
  onlyKeys(w, ['port', 'host', 'secretEnv', 'maxBodyBytes'], 'webhook');
  const port = optBounded(w, 'port', 'webhook', BOUNDS.port, DEFAULT_WEBHOOK_PORT) ?? DEFAULT_WEBHOOK_PORT;
  const secretEnv = optStr(w, 'secretEnv', 'webhook', 'name the environment variable holding the webhook secret') ?? DEFAULT_WEBHOOK_SECRET_ENV;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(secretEnv)) throw new ConfigError(`webhook.secretEnv: "${secretEnv}" is not an environment variable name; the secret itself never goes in the file`);
  const config: WebhookConfig = { port, secretEnv };
  const host = optStr(w, 'host', 'webhook', 'write an address to listen on, e.g. "0.0.0.0"');
  if (host !== undefined) config.host = host;
  const maxBodyBytes = optBounded(w, 'maxBodyBytes', 'webhook', BOUNDS.maxBodyBytes);
  if (maxBodyBytes !== undefined) config.maxBodyBytes = maxBodyBytes;
  return config;
}

/** The webhook secret, read from the environment variable the config names. */
export function resolveWebhookSecret(config: WebhookConfig, env: Env): string {
  const secret = env[config.secretEnv];
  if (!secret) throw new ConfigError(`webhook.secretEnv: environment variable ${config.secretEnv} is empty; export the webhook secret there`);
  return secret;
}

const DRIVER_KEYS = {
  fake: ['kind', 'root', 'images', 'bootDelayMs'],
  qemu: ['kind', 'root', 'imagesDir', 'accel', 'cpu', 'memoryMb', 'maxRunning'],
  tart: ['kind', 'root', 'tartBinary', 'tartHome', 'insecureRegistries', 'username', 'passwordEnv', 'registryUsername', 'registryPasswordEnv', 'maxRunning'],
} as const;

export function parseDriver(raw: unknown, path: string): DriverConfig {
  const d = obj(raw, path, 'write e.g. { kind: qemu, root: /var/lib/ekiden/vms, imagesDir: /var/cache/ekiden/images }');
  const kind = d.kind;
  if (kind !== 'fake' && kind !== 'qemu' && kind !== 'tart') {
    throw new ConfigError(`${at(path, 'kind')}: ${kind === undefined ? 'missing' : `${describe(kind)} is not supported`}; use "qemu", "tart" or "fake"`);
  }
  onlyKeys(d, DRIVER_KEYS[kind], path);
  const root = str(d, 'root', path, 'set a directory for VM state');
  if (kind === 'fake') {
    const images = obj(d.images, at(path, 'images'), 'map image names to directories');
    for (const [k, v] of Object.entries(images)) if (typeof v !== 'string') throw new ConfigError(`${at(at(path, 'images'), k)}: must be a directory path`);
    return { kind, root, images: images as Record<string, string>, bootDelayMs: optBounded(d, 'bootDelayMs', path, BOUNDS.bootDelayMs) };
  }
  if (kind === 'qemu') {
    const accel = d.accel ?? 'auto';
    if (accel !== 'auto' && accel !== 'kvm' && accel !== 'tcg') throw new ConfigError(`${at(path, 'accel')}: "${String(accel)}" is not one of auto, kvm, tcg`);
    return {
      kind,
      root,
      imagesDir: str(d, 'imagesDir', path, 'set the guest image cache, e.g. "/var/cache/ekiden/images"'),
      accel,
      cpu: optBounded(d, 'cpu', path, BOUNDS.cpu),
      memoryMb: optBounded(d, 'memoryMb', path, BOUNDS.memoryMb),
      maxRunning: optBounded(d, 'maxRunning', path, BOUNDS.hostCapacity),
    };
  }
  const envName = (key: string) => optStr(d, key, path, 'name the environment variable holding the secret');
  return {
    kind,
    root,
    tartBinary: optStr(d, 'tartBinary', path),
    tartHome: optStr(d, 'tartHome', path),
    insecureRegistries: optBool(d, 'insecureRegistries', path) ?? false,
    username: optStr(d, 'username', path),
    passwordEnv: envName('passwordEnv'),
    registryUsername: optStr(d, 'registryUsername', path),
    registryPasswordEnv: envName('registryPasswordEnv'),
    maxRunning: optBounded(d, 'maxRunning', path, BOUNDS.hostCapacity),
  };
}

/** Driver settings with their secrets read from the environment. */
export function resolveDriver(config: DriverConfig, env: Env, path = 'driver'): DriverSettings {
  if (config.kind !== 'tart') return config;
  const fromEnv = (key: 'passwordEnv' | 'registryPasswordEnv'): string | undefined => {
    const name = config[key];
    if (name === undefined) return undefined;
    if (!env[name]) throw new ConfigError(`${at(path, key)}: environment variable ${name} is empty; export the secret there`);
    return env[name];
  };
  const { passwordEnv: _p, registryPasswordEnv: _r, ...rest } = config;
  return { ...rest, password: fromEnv('passwordEnv'), registryPassword: fromEnv('registryPasswordEnv') };
}

/** `labels`: a list of labels (config/bounds.ts labelProblem). */
function labelList(o: Obj, path: string, opts: { required: boolean; nonEmpty: boolean; example: string }): string[] | undefined {
  const labels = strList(o, 'labels', path, opts);
  labels?.forEach((label, i) => check(labelProblem(at(at(path, 'labels'), i), label)));
  return labels;
}

const HOST_KEYS = ['id', 'dataDir', 'capacity', 'labels', 'driver', 'pollIntervalMs', 'shutdownGraceMs', 'imageCacheGiB', 'imageRetention', 'control'];
/** A host's image cache unless its entry says otherwise: 200 GiB, images unused for 7 days go. */
export const DEFAULT_IMAGE_CACHE = { budgetBytes: 200 * 1024 ** 3, retentionMs: 7 * 24 * 3_600_000 };

/**
 * One host: `hosts[i]` (driver inside) or the single-host form's `host` (driver given
 * separately, at the top level).
 */
export function parseHost(raw: unknown, path: string, separateDriver?: { raw: unknown; path: string }): HostConfig {
  const h = obj(raw, path, 'write e.g. { id: mac-mini-1, dataDir: /var/lib/ekiden, driver: { kind: tart, root: /var/lib/ekiden/vms } }');
  onlyKeys(h, separateDriver ? HOST_KEYS.filter((k) => k !== 'driver') : HOST_KEYS, path);
  const id = slug(at(path, 'id'), str(h, 'id', path, 'give the host a short name like "mac-mini-1"'));
  const dataDir = str(h, 'dataDir', path, 'set a directory for host state, e.g. "/var/lib/ekiden"');
  const driver = separateDriver ? parseDriver(separateDriver.raw, separateDriver.path) : parseDriver(h.driver, at(path, 'driver'));
  const capacity = optBounded(h, 'capacity', path, BOUNDS.hostCapacity) ?? (driver.kind === 'qemu' ? undefined : defaultCapacity(driver.kind, 0));
  return {
    id,
    dataDir,
    capacity,
    labels: labelList(h, path, { required: false, nonEmpty: false, example: '[macos, arm64]' }) ?? [],
    driver,
    pollIntervalMs: optBounded(h, 'pollIntervalMs', path, BOUNDS.timingMs, 1_000),
    shutdownGraceMs: optBounded(h, 'shutdownGraceMs', path, BOUNDS.graceMs),
    imageCache: {
      budgetBytes: (optBounded(h, 'imageCacheGiB', path, BOUNDS.imageCacheGiB) ?? DEFAULT_IMAGE_CACHE.budgetBytes / 1024 ** 3) * 1024 ** 3,
      retentionMs: optDuration(h, 'imageRetention', path, BOUNDS.imageRetentionMs, DEFAULT_IMAGE_CACHE.retentionMs),
    },
    control: optBool(h, 'control', path) ?? separateDriver !== undefined,
  };
}

/** A Worker Deployment name or build id: what Temporal accepts in both, and what a version string can hold unambiguously. */
const VERSION_PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * `control: { interval, versioning, deployment, buildId }`: how often the control plane's
 * fleet-wide round runs, and the Worker Deployment its workers join (on by default in the fleet
 * form, where the control plane is upgraded apart from the hosts; off in the single-host form).
 */
function parseControl(raw: unknown, ctx: { taskQueue: string; singleHostForm: boolean }): ControlConfig {
  const c = raw === undefined ? {} : obj(raw, 'control', 'write e.g. { interval: 10m }');
  onlyKeys(c, ['interval', 'versioning', 'deployment', 'buildId'], 'control');
  const config: ControlConfig = { intervalMs: optDuration(c, 'interval', 'control', BOUNDS.fleetIntervalMs, DEFAULT_CONTROL.intervalMs) };
  const part = (key: 'deployment' | 'buildId', example: string): string | undefined => {
    const v = optStr(c, key, 'control', `write it as a string, e.g. ${example}`);
    if (v !== undefined && !VERSION_PART.test(v)) {
      throw new ConfigError(`control.${key}: "${v}" is not a valid ${key === 'buildId' ? 'build id' : 'deployment name'}; use up to 100 letters, digits, '.', '_' or '-', starting with a letter or digit, e.g. ${example}`);
    }
    return v;
  };
  const deployment = part('deployment', 'ekiden');
  const buildId = part('buildId', '0.2.0');
  const versioning = optBool(c, 'versioning', 'control') ?? !ctx.singleHostForm;
  if (!versioning) {
    const set = deployment !== undefined ? 'deployment' : buildId !== undefined ? 'buildId' : undefined;
    if (set) throw new ConfigError(`control.${set}: set while control.versioning is false; drop it, or set versioning: true`);
    return config;
  }
  const name = deployment ?? ctx.taskQueue;
  if (!VERSION_PART.test(name)) {
    throw new ConfigError(`control.deployment: the task queue name "${name}" is not a valid deployment name; set control.deployment, e.g. ekiden`);
  }
  config.versioning = { deployment: name, ...(buildId !== undefined ? { buildId } : {}) };
  return config;
}

// ───────────────────────────── pools ─────────────────────────────

export const POOL_KEYS = [
  'name',
  'hosts',
  'image',
  'imageDigest',
  'labels',
  'runnerGroupId',
  'cpu',
  'memoryMb',
  'runnerDir',
  'credential',
  'size',
  'minIdle',
  'max',
  'timing',
  'backoff',
  'maxRunners',
] as const;

export interface PoolParseOptions {
  /** Host ids the file defines; a pool naming another one is an error. Absent: not checked. */
  knownHosts?: readonly string[];
  /** The file's image catalog, for `image: catalog:NAME`. */
  images?: readonly ImageSpec[];
  /** Driver kind of each host the file defines, for the catalog image's kind. */
  hostKinds?: ReadonlyMap<string, string>;
}

/**
 * One pool, with defaults filled in: runnerGroupId 1, runnerDir actions-runner, credential
 * jit, size 1, minIdle 0, max = size (or minIdle when larger).
 */
export function parsePool(raw: unknown, path: string, opts: PoolParseOptions = {}): PoolConfig {
  const p = obj(raw, path, 'write e.g. { name: linux, hosts: [host-1], image: IMAGE, labels: [self-hosted, linux] }');
  onlyKeys(p, POOL_KEYS, path);
  const name = slug(at(path, 'name'), str(p, 'name', path, 'give the pool a short name like "ios"'));
  const hosts = strList(p, 'hosts', path, { required: true, nonEmpty: true, example: '[mac-mini-1, mac-mini-2]' })!;
  hosts.forEach((h, i) => {
    const field = at(at(path, 'hosts'), i);
    slug(field, h);
    if (opts.knownHosts && !opts.knownHosts.includes(h)) {
      throw new ConfigError(`${field}: no host "${h}" in hosts; define it under hosts or remove it from the pool (hosts: ${opts.knownHosts.join(', ')})`);
    }
  });
  const image = str(p, 'image', path, 'name the VM image, e.g. "ghcr.io/cirruslabs/macos-sequoia-xcode:latest", or catalog:NAME for an entry of images');
  if (image.startsWith(CATALOG_PREFIX)) {
    check(catalogImageProblem(at(path, 'image'), image, opts.images ?? [], hosts.map((h) => [h, opts.hostKinds?.get(h)])));
  } else {
    check(imageProblem(at(path, 'image'), image));
  }
  const imageDigest = optStr(p, 'imageDigest', path, 'write sha256: and 64 hex digits');
  if (imageDigest !== undefined && !/^sha256:[0-9a-f]{64}$/.test(imageDigest)) {
    throw new ConfigError(`${at(path, 'imageDigest')}: "${imageDigest}" is not a digest; write sha256: and 64 hex digits`);
  }
  const labels = labelList(p, path, { required: true, nonEmpty: true, example: '[self-hosted, macos]' })!;
  const runnerGroupId = optBounded(p, 'runnerGroupId', path, BOUNDS.runnerGroupId) ?? 1;
  const cpu = optBounded(p, 'cpu', path, BOUNDS.cpu);
  const memoryMb = optBounded(p, 'memoryMb', path, BOUNDS.memoryMb);
  const runnerDir = optStr(p, 'runnerDir', path, 'write the runner folder in the guest, e.g. "actions-runner"') ?? 'actions-runner';
  check(guestDirProblem(at(path, 'runnerDir'), runnerDir));
  const credential = p.credential ?? 'jit';
  if (credential !== 'jit' && credential !== 'registration-token') {
    throw new ConfigError(`${at(path, 'credential')}: ${describe(credential)} is not one of jit, registration-token`);
  }
  const size = optBounded(p, 'size', path, BOUNDS.poolSize) ?? 1;
  const minIdle = optBounded(p, 'minIdle', path, BOUNDS.poolMinIdle) ?? 0;
  const max = optBounded(p, 'max', path, BOUNDS.poolMax) ?? Math.max(size, minIdle);
  if (max < 1) throw new ConfigError(`${at(path, 'max')}: the pool could never run a runner (size and max are 0); set max (or size) to at least 1`);
  if (max < size) throw new ConfigError(`${at(path, 'max')}: ${max} is less than size (${size}); raise max or lower size`);
  if (max < minIdle) throw new ConfigError(`${at(path, 'max')}: ${max} is less than minIdle (${minIdle}); raise max or lower minIdle`);

  let timing: Partial<RunnerTiming> | undefined;
  const t = optObj(p, 'timing', path);
  if (t) {
    const tPath = at(path, 'timing');
    onlyKeys(t, Object.keys(DEFAULT_RUNNER_TIMING), tPath);
    timing = {};
    for (const key of Object.keys(t) as Array<keyof RunnerTiming>) {
      timing[key] = optBounded(t, key, tPath, key === 'bootAttempts' ? BOUNDS.bootAttempts : BOUNDS.timingMs, DEFAULT_RUNNER_TIMING[key]);
    }
  }
  let backoff: PoolConfig['backoff'] | undefined;
  const b = optObj(p, 'backoff', path);
  if (b) {
    const bPath = at(path, 'backoff');
    onlyKeys(b, ['initialMs', 'maxMs'], bPath);
    const initialMs = optBounded(b, 'initialMs', bPath, BOUNDS.backoffMs, DEFAULT_BACKOFF.initialMs);
    const maxMs = optBounded(b, 'maxMs', bPath, BOUNDS.backoffMs, DEFAULT_BACKOFF.maxMs);
    if (initialMs === undefined || maxMs === undefined) throw new ConfigError(`${bPath}: set both initialMs and maxMs`);
    if (maxMs < initialMs) throw new ConfigError(`${at(bPath, 'maxMs')}: ${maxMs} is less than initialMs (${initialMs}); raise maxMs`);
    backoff = { initialMs, maxMs };
  }
  const maxRunners = optBounded(p, 'maxRunners', path, BOUNDS.maxRunners);

  const spec: PoolSpec = { name, hosts, image, labels, runnerGroupId, runnerDir, credential, size, minIdle, max, timing, backoff };
  if (imageDigest !== undefined) spec.imageDigest = imageDigest;
  if (cpu !== undefined) spec.cpu = cpu;
  if (memoryMb !== undefined) spec.memoryMb = memoryMb;
  if (maxRunners !== undefined) spec.maxRunners = maxRunners;
  return resolvePoolConfig(spec);
}

// ───────────────────────────── the document ─────────────────────────────

const TOP_KEYS = ['temporal', 'github', 'webhook', 'registry', 'images', 'hosts', 'pools', 'host', 'driver', 'testing', 'control'];

export interface FleetParseOptions {
  /** Path of the file the document was read from; relative paths in it are resolved against its directory. */
  configFile?: string;
}

function list(v: unknown, field: string, example: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new ConfigError(`${field}: ${describe(v)} is not a list; write a list of entries, e.g. ${example}`);
  return v;
}

/**
 * The whole file: both the fleet form (`hosts: [...]`, `pools: [...]`) and the single-host
 * form of a worker config (`host: {...}` with `driver: {...}` at the top level). `env`
 * supplies TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE when the file has no `temporal` section;
 * no secret is read here. Without `opts.configFile`, paths in the file must be absolute.
 */
export function parseFleetConfig(raw: unknown, env: Env, opts: FleetParseOptions = {}): FleetConfig {
  const configDir = opts.configFile === undefined ? undefined : dirname(resolve(opts.configFile));
  const root = obj(raw ?? {}, 'config', 'the file must hold a mapping with temporal, github, hosts, pools …');
  onlyKeys(root, TOP_KEYS, '');
  const temporal = parseTemporal(root.temporal, env, configDir);
  const github = root.github === undefined ? undefined : parseGitHub(root.github);
  const webhook = root.webhook === undefined ? undefined : parseWebhook(root.webhook);

  let hosts: HostConfig[];
  if (root.host !== undefined) {
    if (root.hosts !== undefined) throw new ConfigError('host: the file has both host and hosts; keep hosts (a list) and move this host into it');
    if (root.driver === undefined) throw new ConfigError('driver: missing; the single-host form needs driver next to host, e.g. { kind: qemu, root: …, imagesDir: … }');
    hosts = [parseHost(root.host, 'host', { raw: root.driver, path: 'driver' })];
  } else {
    if (root.driver !== undefined) {
      throw new ConfigError(
        root.hosts === undefined ? 'host: missing; a file with a top-level driver also needs host: { id, dataDir }' : 'driver: with hosts, put driver under each host (hosts[i].driver)',
      );
    }
    hosts = list(root.hosts, 'hosts', '[{ id: mac-mini-1, dataDir: …, driver: … }]').map((h, i) => parseHost(h, `hosts[${i}]`));
  }
  const hostIds = new Set<string>();
  hosts.forEach((h, i) => {
    if (hostIds.has(h.id)) throw new ConfigError(`hosts[${i}].id: "${h.id}" is defined twice; give each host its own id`);
    hostIds.add(h.id);
  });

  const knownHosts = hosts.length > 0 ? hosts.map((h) => h.id) : undefined;
  const hostKinds = new Map(hosts.map((h) => [h.id, h.driver.kind as string]));
  const registry = root.registry === undefined ? undefined : parseRegistry(root.registry, configDir);
  const images = parseImages(root.images, { configDir, knownHosts: knownHosts ? hostKinds : undefined });
  if (images.length > 0 && !registry) {
    throw new ConfigError('registry: missing; images are pushed to a registry, add e.g. registry: { url: "https://registry.example.com", username: ekiden, passwordEnv: EKIDEN_REGISTRY_PASSWORD }');
  }
  const pools = list(root.pools, 'pools', '[{ name: ios, hosts: [mac-mini-1], image: …, labels: […] }]').map((p, i) =>
    parsePool(p, `pools[${i}]`, { knownHosts, images, hostKinds }),
  );
  const poolNames = new Set<string>();
  pools.forEach((p, i) => {
    if (poolNames.has(p.name)) throw new ConfigError(`pools[${i}].name: "${p.name}" is defined twice; give each pool its own name`);
    poolNames.add(p.name);
  });

  let testing: FleetConfig['testing'];
  if (root.testing !== undefined) {
    const t = obj(root.testing, 'testing');
    onlyKeys(t, ['pauseAfter', 'workflowBundle'], 'testing');
    const p = t.pauseAfter ?? [];
    if (!Array.isArray(p) || p.some((x) => typeof x !== 'string')) throw new ConfigError('testing.pauseAfter: must be a list of activity names');
    testing = { pauseAfter: p as string[] };
    const bundle = optStr(t, 'workflowBundle', 'testing', 'write the path of a workflow bundle');
    if (bundle !== undefined) testing.workflowBundle = configDir === undefined ? bundle : resolve(configDir, bundle);
  }
  const config: FleetConfig = { temporal, hosts, pools, images, control: parseControl(root.control, { taskQueue: temporal.taskQueue, singleHostForm: root.host !== undefined }) };
  if (registry) config.registry = registry;
  if (github) config.github = github;
  if (webhook) config.webhook = webhook;
  if (testing) config.testing = testing;
  return config;
}

/** Reads `file` (config/load.ts) and parses it, its relative paths resolved against its directory. */
export function loadFleetConfigFile(file: string, env: Env): FleetConfig {
  return parseFleetConfig(loadConfigFile(file), env, { configFile: file });
}
