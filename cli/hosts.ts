/**
 * `ekiden hosts`: every running HostWorkflow with its state, driver, used/capacity slots, last
 * heartbeat and version — queried one by one with a deadline, so a host nobody serves shows
 * its error in its row instead of hanging the table. `ekiden status` shows the same table.
 */
import { SA_HOST } from '../core/search-attributes.js';
import { hostStatusQuery, type HostStatus } from '../workflows/api.js';
import { helpText, parseNoArguments, type Common } from './args.js';
import { runOperatorCommand } from './command.js';
import { json, type CliIo, type Env } from './io.js';
import { formatAge, formatTable, tolerant } from './table.js';
import { explain, listOpen, QUERY_TIMEOUT_MS, withTimeout, type TemporalSession } from './temporal.js';

export const HOSTS_USAGE = '  ekiden hosts';

export const HOSTS_HELP = helpText(
  ['ekiden hosts [--address HOST:PORT] [--namespace NS] [--config FILE] [--data-dir DIR] [--json]'],
  'Every running host: its state, driver, used/capacity VM slots, last heartbeat, version and labels.',
  [],
);

export type HostsCommand = Common & { verb: 'hosts' };

export interface HostRow {
  workflowId: string;
  id: string;
  /** The fleet's shared queue the host's workflow runs on. */
  taskQueue: string;
  status?: HostStatus;
  error?: string;
}

export async function readHosts(session: TemporalSession): Promise<HostRow[]> {
  const infos = await listOpen(session, 'HostWorkflow');
  return Promise.all(
    infos.map(async (info): Promise<HostRow> => {
      const id = info.typedSearchAttributes.get(SA_HOST) ?? info.workflowId.replace(/^host\//, '');
      try {
        const status = await withTimeout(session, QUERY_TIMEOUT_MS, () => session.client.workflow.getHandle(info.workflowId, info.runId).query(hostStatusQuery));
        return { workflowId: info.workflowId, id, taskQueue: info.taskQueue, status };
      } catch (err) {
        return { workflowId: info.workflowId, id, taskQueue: info.taskQueue, error: explain(err, QUERY_TIMEOUT_MS) };
      }
    }),
  );
}

function hostCells(r: HostRow, now: number): string[] {
  const s = r.status;
  if (!s) return [r.id, '?', '', '', '', '', `(query failed: ${r.error})`];
  return tolerant(
    () => [
      r.id,
      s.state,
      s.announcement?.driver ?? '-',
      `${s.leases.length}/${s.capacity}`,
      s.lastSeen === undefined ? '-' : `${formatAge(now - s.lastSeen)} ago`,
      s.announcement?.version ?? '-',
      s.announcement?.labels.join(',') || '-',
    ],
    [r.id, '?', '', '', '', '', '(unexpected status shape; see --json)'],
  );
}

export function hostsTable(rows: HostRow[], now: number): string {
  if (rows.length === 0) return '(no hosts)';
  return formatTable(
    ['HOST', 'STATE', 'DRIVER', 'USED', 'LAST SEEN', 'VERSION', 'LABELS'],
    rows.map((r) => hostCells(r, now)),
  );
}

/** Checks the arguments of `ekiden hosts …`; throws UsageError or ConfigError. */
export function parseHostsCommand(argv: string[], env: Env): HostsCommand {
  return { verb: 'hosts', ...parseNoArguments('hosts', argv, env, HOSTS_HELP) };
}

export async function runHosts(session: TemporalSession, io: CliIo, cmd: HostsCommand): Promise<number> {
  const now = io.now();
  const hosts = await readHosts(session);
  if (cmd.json) json(io, hosts);
  else io.out(hostsTable(hosts, now));
  return 0;
}

/** `ekiden hosts …`: the exit code, after one-line errors on io.err. */
export function hostsCommand(argv: string[], io: CliIo): Promise<number> {
  return runOperatorCommand(io, () => parseHostsCommand(argv, io.env), (session, cmd) => runHosts(session, io, cmd));
}
