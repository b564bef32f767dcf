/**
 * Host worker configuration: what `ekiden worker` needs to run one host, taken from a config
 * file in either form — the fleet form (`hosts: [...]`, one entry picked by id) or the
 * single-host form (`host` and `driver` at the top level). Parsed once, at the edge, with
 * every error naming the field and the fix. Secrets are not in the file: it names the
 * environment variables or files that hold them, read here.
 */
import type { DriverSettings } from '../drivers/index.js';
import type { GitHubSettings as FullGitHubSettings } from '../github/client.js';
import { ConfigError } from './fields.js';
import { parseFleetConfig, resolveDriver, resolveGitHub, type ControlConfig, type HostConfig, type TemporalSettings } from './fleet.js';

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
    /** This worker also runs the control plane (hosts[i].control; true in the single-host form). */
    control: boolean;
  };
  driver: DriverSettings;
  github: GitHubSettings;
  /** The control plane's fleet-wide round (used when host.control). */
  control: ControlConfig;
  /** Test infrastructure only: hold named activities after they ran (see workers/test-hooks). */
  testing?: { pauseAfter: string[]; workflowBundle?: string };
  /** The registry image builds push to and hosts pull from (the password by reference only). */
  registry?: RegistrySettings;
}

/** The GitHub settings a worker uses (secrets resolved from the environment). */
export type GitHubSettings = Pick<FullGitHubSettings, 'apiUrl' | 'scope' | 'auth' | 'writeSpacingMs'>;

/** What `ekiden control` needs: Temporal, GitHub and the fleet-wide round; no host. */
export interface ControlPlaneConfig {
  temporal: TemporalSettings;
  github: GitHubSettings;
  control: ControlConfig;
  testing?: { pauseAfter: string[]; workflowBundle?: string };
  /** The registry image builds are pushed to: the fleet round deletes pruned builds there. */
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
  const driver = resolveDriver(host.driver, env, singleHostForm ? 'driver' : `hosts[${index}].driver`);
  const github = githubOf(fleet.github, env, 'a worker');
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
      control: host.control,
    },
    driver,
    github,
    control: fleet.control,
    testing: fleet.testing,
    ...(fleet.registry ? { registry: fleet.registry } : {}),
  };
}

function githubOf(config: Parameters<typeof resolveGitHub>[0] | undefined, env: Record<string, string | undefined>, who: string): GitHubSettings {
  if (!config) throw new ConfigError(`github: missing; ${who} needs e.g. { scope: "org:acme", auth: { tokenEnv: GITHUB_TOKEN } }`);
  const github = resolveGitHub(config, env);
  return { apiUrl: github.apiUrl, scope: github.scope, auth: github.auth, writeSpacingMs: github.writeSpacingMs };
}

/** `ekiden control --config FILE`: the file's temporal, github and control sections (hosts and pools are not needed). */
export function parseControlPlaneConfig(raw: unknown, env: Record<string, string | undefined>, opts: { configFile?: string } = {}): ControlPlaneConfig {
  const fleet = parseFleetConfig(raw, env, opts.configFile === undefined ? {} : { configFile: opts.configFile });
  return {
    temporal: fleet.temporal,
    github: githubOf(fleet.github, env, 'the control plane'),
    control: fleet.control,
    ...(fleet.testing ? { testing: fleet.testing } : {}),
    ...(fleet.registry ? { registry: fleet.registry } : {}),
  };
}
