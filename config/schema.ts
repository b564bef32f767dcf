/**
 * Host worker configuration: parsed once, at the edge, with every error naming the field and
 * the fix. Secrets are not in the file: it names the environment variables or files that
 * hold them.
 */
import { readFileSync } from 'node:fs';
import { assertSlug, SHARED_TASK_QUEUE } from '../core/names.js';
import type { DriverSettings } from '../drivers/index.js';
import type { GitHubAuth, GitHubScope } from '../github/client.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface WorkerConfig {
  temporal: { address: string; namespace: string; taskQueue: string };
  host: { id: string; dataDir: string; pollIntervalMs?: number; shutdownGraceMs?: number };
  driver: DriverSettings;
  github: { apiUrl: string; scope: GitHubScope; auth: GitHubAuth; writeSpacingMs?: number };
  /** Test infrastructure only: hold named activities after they ran (see workers/test-hooks). */
  testing?: { pauseAfter: string[] };
}

type Obj = Record<string, unknown>;

function obj(v: unknown, field: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${field}: expected an object`);
  return v as Obj;
}
function str(o: Obj, key: string, field: string, fix: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(`${field}.${key}: missing or not a string; ${fix}`);
  return v;
}
function optNum(o: Obj, key: string, field: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(`${field}.${key}: must be a number ≥ 0`);
  return v;
}

function parseDriver(d: Obj, env: Record<string, string | undefined>): DriverSettings {
  const root = str(d, 'root', 'driver', 'set a directory for VM state');
  if (d.kind === 'fake') {
    const images = obj(d.images, 'driver.images');
    for (const [k, v] of Object.entries(images)) if (typeof v !== 'string') throw new ConfigError(`driver.images.${k}: must be a directory path`);
    return { kind: 'fake', root, images: images as Record<string, string>, bootDelayMs: optNum(d, 'bootDelayMs', 'driver') };
  }
  if (d.kind === 'qemu') {
    const accel = d.accel ?? 'auto';
    if (accel !== 'auto' && accel !== 'kvm' && accel !== 'tcg') throw new ConfigError(`driver.accel: "${String(accel)}" is not one of auto, kvm, tcg`);
    return {
      kind: 'qemu',
      root,
      imagesDir: str(d, 'imagesDir', 'driver', 'set the guest image cache, e.g. "/var/cache/ekiden/images"'),
      accel,
      cpu: optNum(d, 'cpu', 'driver'),
      memoryMb: optNum(d, 'memoryMb', 'driver'),
      maxRunning: optNum(d, 'maxRunning', 'driver'),
    };
  }
  if (d.kind === 'tart') {
    const fromEnv = (key: string): string | undefined => {
      const name = d[key];
      if (name === undefined) return undefined;
      if (typeof name !== 'string' || !env[name]) throw new ConfigError(`driver.${key}: environment variable ${String(name)} is empty; export the secret there`);
      return env[name];
    };
    return {
      kind: 'tart',
      root,
      tartBinary: typeof d.tartBinary === 'string' ? d.tartBinary : undefined,
      tartHome: typeof d.tartHome === 'string' ? d.tartHome : undefined,
      insecureRegistries: d.insecureRegistries === true,
      username: typeof d.username === 'string' ? d.username : undefined,
      password: fromEnv('passwordEnv'),
      registryUsername: typeof d.registryUsername === 'string' ? d.registryUsername : undefined,
      registryPassword: fromEnv('registryPasswordEnv'),
      maxRunning: optNum(d, 'maxRunning', 'driver'),
    };
  }
  throw new ConfigError(`driver.kind: "${String(d.kind)}" is not supported; use "qemu", "tart" or "fake"`);
}

/** `repo:owner/name`, `org:name` or `enterprise:slug`. */
export function parseScope(value: string, field: string): GitHubScope {
  const m = /^(repo|org|enterprise):(.+)$/.exec(value);
  if (m?.[1] === 'repo') {
    const [owner, repo, ...rest] = m[2]!.split('/');
    if (owner && repo && rest.length === 0) return { kind: 'repo', owner, repo };
  } else if (m?.[1] === 'org' && /^[\w.-]+$/.test(m[2]!)) {
    return { kind: 'org', org: m[2]! };
  } else if (m?.[1] === 'enterprise' && /^[\w.-]+$/.test(m[2]!)) {
    return { kind: 'enterprise', enterprise: m[2]! };
  }
  throw new ConfigError(`${field}: "${value}" is not a scope; write repo:OWNER/REPO, org:ORG or enterprise:SLUG`);
}

/** Reads secrets named by the config from `env` (and files), so they never sit in the file. */
export function parseWorkerConfig(raw: unknown, env: Record<string, string | undefined>): WorkerConfig {
  const root = obj(raw, 'config');
  const t = obj(root.temporal ?? {}, 'temporal');
  const temporal = {
    address: typeof t.address === 'string' ? t.address : (env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233'),
    namespace: typeof t.namespace === 'string' ? t.namespace : (env.TEMPORAL_NAMESPACE ?? 'default'),
    taskQueue: typeof t.taskQueue === 'string' ? t.taskQueue : SHARED_TASK_QUEUE,
  };
  const h = obj(root.host, 'host');
  const id = str(h, 'id', 'host', 'give the host a short name like "mac-mini-1"');
  try {
    assertSlug('host.id', id);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const host = {
    id,
    dataDir: str(h, 'dataDir', 'host', 'set a directory for host state, e.g. "/var/lib/ekiden"'),
    pollIntervalMs: optNum(h, 'pollIntervalMs', 'host'),
    shutdownGraceMs: optNum(h, 'shutdownGraceMs', 'host'),
  };
  const driver = parseDriver(obj(root.driver, 'driver'), env);
  const g = obj(root.github, 'github');
  const scope = parseScope(str(g, 'scope', 'github', 'write repo:OWNER/REPO or org:ORG'), 'github.scope');
  const apiUrl = typeof g.apiUrl === 'string' ? g.apiUrl : 'https://api.github.com';
  try {
    new URL(apiUrl);
  } catch {
    throw new ConfigError(`github.apiUrl: "${apiUrl}" is not a URL; use https://api.github.com or https://HOST/api/v3`);
  }
  const a = obj(g.auth, 'github.auth');
  let auth: GitHubAuth;
  if (typeof a.tokenEnv === 'string') {
    const token = env[a.tokenEnv];
    if (!token) throw new ConfigError(`github.auth.tokenEnv: environment variable ${a.tokenEnv} is empty; export the token there`);
    auth = { kind: 'token', token };
  } else if (a.appId !== undefined) {
    const appId = Number(a.appId);
    const installationId = Number(a.installationId);
    if (!Number.isInteger(appId)) throw new ConfigError('github.auth.appId: must be the numeric App id');
    if (!Number.isInteger(installationId)) throw new ConfigError('github.auth.installationId: must be the numeric installation id');
    const keyFile = str(a, 'privateKeyFile', 'github.auth', 'point it at the App private key (.pem)');
    let privateKey: string;
    try {
      privateKey = readFileSync(keyFile, 'utf8');
    } catch {
      throw new ConfigError(`github.auth.privateKeyFile: cannot read ${keyFile}; check the path and permissions`);
    }
    auth = { kind: 'app', appId, installationId, privateKey };
  } else {
    throw new ConfigError('github.auth: set tokenEnv (name of the env var with a PAT) or appId, installationId and privateKeyFile');
  }
  let testing: WorkerConfig['testing'];
  if (root.testing !== undefined) {
    const p = obj(root.testing, 'testing').pauseAfter;
    if (!Array.isArray(p) || p.some((x) => typeof x !== 'string')) throw new ConfigError('testing.pauseAfter: must be a list of activity names');
    testing = { pauseAfter: p as string[] };
  }
  return { temporal, host, driver, github: { apiUrl, scope, auth, writeSpacingMs: optNum(g, 'writeSpacingMs', 'github') }, testing };
}
