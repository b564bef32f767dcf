/**
 * `ekiden status`: the fleet at a glance — every running PoolWorkflow (target, runners by
 * phase, pending jobs, draining, failures, blocked), then the hosts and runners tables of
 * `ekiden hosts` and `ekiden runners`, then who serves each fleet queue (the control plane:
 * workers Temporal saw polling it for workflow tasks in the last 90 s). Pools are queried one by one with a deadline, so a pool
 * nobody serves shows its error in its row instead of hanging the command.
 */
import { pinnedByVersion, versionKey } from '../temporal/deployment.js';
import { SA_POOL } from '../core/search-attributes.js';
import { poolStatusQuery, type PoolStatus } from '../workflows/api.js';
import { helpText, parseNoArguments, type Common } from './args.js';
import { runOperatorCommand } from './command.js';
import { readHosts, hostsTable } from './hosts.js';
import { json, type CliIo, type Env } from './io.js';
import { readRunners, runnersTable } from './runners.js';
import { formatAge, formatTable, tolerant } from './table.js';
import { explain, listOpen, QUERY_TIMEOUT_MS, withTimeout, type TemporalSession } from './temporal.js';

export const STATUS_USAGE = '  ekiden status';

export const STATUS_HELP = helpText(
  ['ekiden status [--address HOST:PORT] [--namespace NS] [--config FILE] [--data-dir DIR] [--json]'],
  'The fleet at a glance: every running pool (target, starting/idle/busy/cleaning, pending jobs,\ndraining, failures, blocked), then the hosts and runners tables of `ekiden hosts` and `ekiden runners`,\nthen the control plane: the workers serving each fleet queue (none: its pools and runners wait).',
  [],
);

export type StatusCommand = Common & { verb: 'status' };

export interface PoolRow {
  workflowId: string;
  name: string;
  /** The fleet's shared queue the pool's workflow runs on. */
  taskQueue: string;
  status?: PoolStatus;
  error?: string;
}

/** Who serves a fleet's shared queue: the control plane's workers, as Temporal saw them poll. */
export interface ControlRow {
  taskQueue: string;
  /** Identities of the workers that polled for workflow tasks within CONTROL_LIVE_MS. */
  workers: string[];
  /** Build ids the live workers poll as (Worker Versioning); empty when they are unversioned. */
  builds: string[];
  /** Open workflows pinned to a version (`deployment:buildId`) no live worker polls as: they wait until one does. */
  stranded: Array<{ version: string; workflows: number }>;
  error?: string;
}

/** A worker long-polls for up to a minute: one seen within this is alive. */
export const CONTROL_LIVE_MS = 90_000;

/** The control plane of every fleet queue the pools and hosts run on. */
export async function readControl(session: TemporalSession, taskQueues: string[], now = Date.now()): Promise<ControlRow[]> {
  return Promise.all(
    [...new Set(taskQueues)].sort().map(async (taskQueue): Promise<ControlRow> => {
      try {
        const r = await withTimeout(session, QUERY_TIMEOUT_MS, () =>
          session.client.workflowService.describeTaskQueue({ namespace: session.target.namespace, taskQueue: { name: taskQueue }, taskQueueType: 1 /* workflow */ }),
        );
        const seen = (p: { lastAccessTime?: { seconds?: unknown; nanos?: number | null } | null }) => Number(p.lastAccessTime?.seconds ?? 0) * 1000;
        const live = (r.pollers ?? []).filter((p) => now - seen(p) <= CONTROL_LIVE_MS);
        const served = new Set(live.map((p) => (p.deploymentOptions?.buildId ? versionKey({ deployment: p.deploymentOptions.deploymentName ?? '', buildId: p.deploymentOptions.buildId }) : '')));
        // A server without Worker Deployments has no such attributes: nothing is pinned there.
        const pinned = await withTimeout(session, QUERY_TIMEOUT_MS, () => pinnedByVersion(session.client, taskQueue)).catch(() => new Map<string, number>());
        return {
          taskQueue,
          workers: live.map((p) => p.identity ?? '?').sort(),
          builds: [...new Set(live.map((p) => p.deploymentOptions?.buildId ?? '').filter(Boolean))].sort(),
          stranded: [...pinned].filter(([v]) => !served.has(v)).map(([version, workflows]) => ({ version, workflows })),
        };
      } catch (err) {
        return { taskQueue, workers: [], builds: [], stranded: [], error: explain(err, QUERY_TIMEOUT_MS) };
      }
    }),
  );
}

export function controlLines(rows: ControlRow[]): string {
  if (rows.length === 0) return '(no pools or hosts)';
  return rows
    .flatMap((r) => {
      if (r.error) return [`${r.taskQueue}: (could not ask: ${r.error})`];
      const lines =
        r.workers.length === 0
          ? [`${r.taskQueue}: no worker serves it — its pools and runners wait; start \`ekiden control --config FILE\` (or give a host control: true)`]
          : [`${r.taskQueue}: ${r.workers.length} worker${r.workers.length === 1 ? '' : 's'} (${r.workers.join(', ')})${r.builds.length ? `, build ${r.builds.join(', ')}` : ''}`];
      for (const s of r.stranded) {
        const build = s.version.slice(s.version.indexOf(':') + 1);
        lines.push(`${r.taskQueue}: ${s.workflows} workflow${s.workflows === 1 ? '' : 's'} pinned to build ${build} wait: no worker of that version runs; start \`ekiden control\` of that release until they end (ekiden deployment status)`);
      }
      return lines;
    })
    .join('\n');
}

export async function readPools(session: TemporalSession): Promise<PoolRow[]> {
  const infos = await listOpen(session, 'PoolWorkflow');
  return Promise.all(
    infos.map(async (info): Promise<PoolRow> => {
      const name = info.typedSearchAttributes.get(SA_POOL) ?? info.workflowId.replace(/^pool\//, '');
      try {
        const status = await withTimeout(session, QUERY_TIMEOUT_MS, () => session.client.workflow.getHandle(info.workflowId, info.runId).query(poolStatusQuery));
        return { workflowId: info.workflowId, name, taskQueue: info.taskQueue, status };
      } catch (err) {
        return { workflowId: info.workflowId, name, taskQueue: info.taskQueue, error: explain(err, QUERY_TIMEOUT_MS) };
      }
    }),
  );
}

function poolCells(r: PoolRow): string[] {
  const s = r.status;
  if (!s) return [r.name, '?', '', '', '', '', '', '', '', '', `(query failed: ${r.error})`];
  return tolerant(
    () => [
      r.name,
      String(s.target),
      `${s.config.size}/${s.config.minIdle}/${s.config.max}`,
      String(s.counts.starting),
      String(s.counts.idle),
      String(s.counts.busy),
      String(s.counts.cleaning),
      String(s.pendingJobs),
      s.draining ? 'yes' : 'no',
      s.consecutiveFailures > 0 ? `${s.failed} (${s.consecutiveFailures} in a row)` : String(s.failed),
      s.blocked ?? '-',
    ],
    [r.name, '?', '', '', '', '', '', '', '', '', '(unexpected status shape; see --json)'],
  );
}

function poolsTable(rows: PoolRow[], now: number): string {
  if (rows.length === 0) return '(no pools)';
  const header = ['POOL', 'TARGET', 'SIZE/MIN-IDLE/MAX', 'STARTING', 'IDLE', 'BUSY', 'CLEANING', 'PENDING', 'DRAINING', 'FAILURES', 'BLOCKED'];
  const table = formatTable(header, rows.map(poolCells));
  const failures = rows.flatMap((r) => {
    const recent = r.status?.recentFailures;
    if (!r.status || !(r.status.consecutiveFailures > 0) || !Array.isArray(recent) || recent.length === 0) return [];
    const last = recent[recent.length - 1]!;
    return [`  ${r.name}: last failure ${formatAge(now - last.at)} ago (${last.workflowId}): ${String(last.message).split('\n')[0]}`];
  });
  return failures.length ? `${table}\n${failures.join('\n')}` : table;
}

/** Checks the arguments of `ekiden status …`; throws UsageError or ConfigError. */
export function parseStatusCommand(argv: string[], env: Env): StatusCommand {
  return { verb: 'status', ...parseNoArguments('status', argv, env, STATUS_HELP) };
}

export async function runStatus(session: TemporalSession, io: CliIo, cmd: StatusCommand): Promise<number> {
  const now = io.now();
  const [pools, hosts, runners] = await Promise.all([readPools(session), readHosts(session), readRunners(session)]);
  const control = await readControl(session, [...pools.map((p) => p.taskQueue), ...hosts.map((h) => h.taskQueue)]);
  if (cmd.json) {
    json(io, { pools, hosts, runners, control });
  } else {
    io.out(['POOLS', poolsTable(pools, now), '', 'HOSTS', hostsTable(hosts, now), '', 'RUNNERS', runnersTable(runners, now, false), '', 'CONTROL PLANE', controlLines(control)].join('\n'));
  }
  return 0;
}

/** `ekiden status …`: the exit code, after one-line errors on io.err. */
export function statusCommand(argv: string[], io: CliIo): Promise<number> {
  return runOperatorCommand(io, () => parseStatusCommand(argv, io.env), (session, cmd) => runStatus(session, io, cmd));
}
