/**
 * Host worker configuration: what `ekiden worker` needs to run one host, taken from a config
 * file in either form — the fleet form (`hosts: [...]`, one entry picked by id) or the
 * single-host form (`host` and `driver` at the top level). Parsed once, at the edge, with
 * every error naming the field and the fix. Secrets are not in the file: it names the
 * environment variables or files that hold them, read here.
 */
import type { DriverSettings } from '../drivers/index.js';
import type { GitHubAuth, GitHubScope } from '../github/client.js';
import { ConfigError } from './fields.js';
import { parseFleetConfig, resolveDriver, resolveGitHub, type HostConfig, type TemporalSettings } from './fleet.js';

export { ConfigError } from './fields.js';
export { parseScope } from './fleet.js';

import type { RegistrySettings } from './images.js';

export interface WorkerConfig {
  temporal: TemporalSettings;
  host: {
    id: string;
    dataDir: string;
    /** VMs at once; absent when the worker computes it (qemu: half its CPUs, at least 1). */
    capacity?: number;
    labels: string[];
    pollIntervalMs?: number;
    shutdownGraceMs?: number;
    imageCache: { budgetBytes: number; retentionMs: number };
  };
  driver: DriverSettings;
  github: { apiUrl: string; scope: GitHubScope; auth: GitHubAuth; writeSpacingMs?: number };
  /** Test infrastructure only: hold named activities after they ran (see workers/test-hooks). */
  testing?: { pauseAfter: string[] };
  /** The registry image builds push to and hosts pull from (the password by reference only). */
  registry?: RegistrySettings;
}

export interface WorkerConfigOptions {
  /** Which host of the file this worker is (`ekiden worker --host ID`); needed when the file has several. */
  hostId?: string;
  /** The file the config was read from: its relative paths are resolved against its directory. */
  configFile?: string;
}

function pickHost(hosts: HostConfig[], hostId: string | undefined, singleHostForm: boolean): { host: HostConfig; index: number } {
  const ids = hosts.map((h) => h.id).join(', ');
  if (hosts.length === 0) throw new ConfigError('hosts: the file defines no host; add one under hosts (id, dataDir, driver)');
  if (hostId === undefined) {
    if (hosts.length > 1) throw new ConfigError(`hosts: the file defines ${hosts.length} hosts (${ids}); pick this machine's with --host ID`);
    return { host: hosts[0]!, index: 0 };
  }
  const index = hosts.findIndex((h) => h.id === hostId);
  if (index < 0) {
    throw new ConfigError(
      singleHostForm ? `--host: "${hostId}" is not this file's host ("${ids}"); drop --host or fix host.id` : `--host: no host "${hostId}" in the file; hosts: ${ids}`,
    );
  }
  return { host: hosts[index]!, index };
}

/** Reads secrets named by the config from `env` (and files), so they never sit in the file. */
export function parseWorkerConfig(raw: unknown, env: Record<string, string | undefined>, opts: WorkerConfigOptions = {}): WorkerConfig {
  const singleHostForm = typeof raw === 'object' && raw !== null && 'host' in raw;
  const fleet = parseFleetConfig(raw, env, opts.configFile === undefined ? {} : { configFile: opts.configFile });
  const { host, index } = pickHost(fleet.hosts, opts.hostId, singleHostForm);
  if (!fleet.github) throw new ConfigError('github: missing; a worker needs e.g. { scope: "org:acme", auth: { tokenEnv: GITHUB_TOKEN } }');
  const driver = resolveDriver(host.driver, env, singleHostForm ? 'driver' : `hosts[${index}].driver`);
  const github = resolveGitHub(fleet.github, env);
  return {
    temporal: fleet.temporal,
    host: {
      id: host.id,
      dataDir: host.dataDir,
      capacity: host.capacity,
      labels: host.labels,
      pollIntervalMs: host.pollIntervalMs,
      shutdownGraceMs: host.shutdownGraceMs,
      imageCache: host.imageCache,
    },
    driver,
    github: { apiUrl: github.apiUrl, scope: github.scope, auth: github.auth, writeSpacingMs: github.writeSpacingMs },
    testing: fleet.testing,
    ...(fleet.registry ? { registry: fleet.registry } : {}),
  };
}
