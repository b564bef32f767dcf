/**
 * The operator verbs of `ekiden` as one surface: `pool create|scale|drain|resume|delete`
 * (cli/pool.ts), `status` (cli/status.ts), `runners` (cli/runners.ts) and `hosts`
 * (cli/hosts.ts), on the shared frame of cli/args.ts (arguments), cli/command.ts (exit codes)
 * and cli/temporal.ts (the server). Arguments (and any config file) are checked completely
 * before anything is contacted: a mistake exits 2 with one line. Commands that ran but failed
 * exit 1 with one line. `--json` prints machine-readable results to stdout; otherwise aligned
 * tables. cli/main.ts dispatches to the nouns itself; this module keeps their joint usage
 * text, a dispatch by noun, and what importers outside cli/ (tests) take from it.
 */
import { UsageError } from './errors.js';
import { HOSTS_USAGE, hostsCommand, parseHostsCommand, type HostsCommand } from './hosts.js';
import type { CliIo, Env } from './io.js';
import { parsePoolCommand, POOL_USAGE, poolCommand, type PoolCommand } from './pool.js';
import { parseRunnersCommand, RUNNERS_USAGE, runnersCommand, type RunnersCommand } from './runners.js';
import { parseStatusCommand, STATUS_USAGE, statusCommand, type StatusCommand } from './status.js';

export type { CliIo } from './io.js';
export { readHosts, type HostRow } from './hosts.js';
export { poolLine, ROLLBACK_WAIT_MS, UPDATE_TIMEOUT_MS } from './pool.js';
export { DEFAULT_UI_URL, readRunners, runnerUrl, type RunnerRow } from './runners.js';
export { readPools, type PoolRow } from './status.js';
export { QUERY_TIMEOUT_MS } from './temporal.js';

export const FLEET_USAGE = `${POOL_USAGE}
${STATUS_USAGE}
${RUNNERS_USAGE}
${HOSTS_USAGE}
  These take --address HOST:PORT, --namespace NS, --config FILE (its temporal section) and --json.`;

export type FleetCommand = PoolCommand | StatusCommand | HostsCommand | RunnersCommand;

/** Checks the arguments of `ekiden <noun> …` (and reads any config file); throws UsageError or ConfigError. */
export function parseFleetCommand(noun: string, argv: string[], env: Env): FleetCommand {
  switch (noun) {
    case 'pool':
      return parsePoolCommand(argv, env);
    case 'status':
      return parseStatusCommand(argv, env);
    case 'hosts':
      return parseHostsCommand(argv, env);
    case 'runners':
      return parseRunnersCommand(argv, env);
    default:
      throw new UsageError(`unknown command "${noun}"; try \`ekiden help\``);
  }
}

/** `ekiden <noun> …` for the operator verbs: the exit code, after one-line errors on io.err. */
export async function fleetCommand(noun: string, argv: string[], io: CliIo): Promise<number> {
  switch (noun) {
    case 'pool':
      return poolCommand(argv, io);
    case 'status':
      return statusCommand(argv, io);
    case 'hosts':
      return hostsCommand(argv, io);
    case 'runners':
      return runnersCommand(argv, io);
    default:
      io.err(`ekiden: unknown command "${noun}"; try \`ekiden help\``);
      return 2;
  }
}
