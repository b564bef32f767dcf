/**
 * `ekiden pool create|scale|drain|resume|delete`: each pool is a PoolWorkflow `pool/<name>`.
 * `create` starts it (from the config file's pools, or one pool described by flags), `scale`,
 * `drain` and `resume` are updates the pool accepts or rejects at once (a rejected value
 * changes nothing), `delete` cancels it — its runners deregister and delete their VMs — and
 * with `--wait` reports when it has closed.
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowIdConflictPolicy,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { ConfigError } from '../config/fields.js';
import { parsePool, POOL_KEYS } from '../config/fleet.js';
import { resolvePoolTuning } from '../core/defaults.js';
import type { PoolWorkflow } from '../workflows/pool.js';
import { poolWorkflowId, SHARED_TASK_QUEUE } from '../core/names.js';
import { SA_POOL } from '../core/search-attributes.js';
import { drainPoolUpdate, resumePoolUpdate, scalePoolUpdate, type PoolConfig, type PoolScale, type PoolStatus } from '../workflows/api.js';
import { commonOf, intFlag, listFlag, loadFleet, nameArg, parse, strFlag, type Common, type Options } from './args.js';
import { runOperatorCommand } from './command.js';
import { CliError, firstLine, UsageError } from './errors.js';
import { json, type CliIo, type Env } from './io.js';
import { formatAge, tolerant } from './table.js';
import { explain, withTimeout, type TemporalSession } from './temporal.js';

/** How long an update may wait for the pool to accept it. */
export const UPDATE_TIMEOUT_MS = 30_000;

export const POOL_USAGE = `  ekiden pool create --config FILE [NAME...]
  ekiden pool create NAME --hosts a,b --image IMG --labels x,y [--size N] [--min-idle N] [--max N]
                          [--cpu N] [--memory-mb N] [--credential jit|registration-token] [--task-queue Q]
  ekiden pool scale NAME [--size N] [--min-idle N] [--max N]
  ekiden pool drain NAME
  ekiden pool resume NAME
  ekiden pool delete NAME [--wait]`;

export type PoolCommand = Common &
  (
    | { verb: 'pool create'; pools: PoolConfig[]; taskQueue: string }
    | { verb: 'pool scale'; name: string; scale: PoolScale }
    | { verb: 'pool drain' | 'pool resume'; name: string }
    | { verb: 'pool delete'; name: string; wait: boolean }
  );

// ───────────────────────────── arguments ─────────────────────────────

const POOL_FLAG_OPTIONS = {
  hosts: { type: 'string' },
  image: { type: 'string' },
  'image-digest': { type: 'string' },
  labels: { type: 'string' },
  size: { type: 'string' },
  'min-idle': { type: 'string' },
  max: { type: 'string' },
  cpu: { type: 'string' },
  'memory-mb': { type: 'string' },
  credential: { type: 'string' },
  'runner-group-id': { type: 'string' },
  'runner-dir': { type: 'string' },
} as const satisfies Options;

const SCALE_OPTIONS = {
  size: { type: 'string' },
  'min-idle': { type: 'string' },
  max: { type: 'string' },
} as const satisfies Options;

/** `pool.max: …` (the pool parser's field names) → `--max: …` (the flags the user typed). */
function flagError(err: ConfigError): UsageError {
  const m = /^pool\.(\w+)(\[\d+\])?(.*)$/s.exec(err.message);
  if (!m) return new UsageError(err.message);
  const flag = m[1]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return new UsageError(`--${flag}${m[3]}`);
}

function parsePoolCreate(argv: string[], env: Env): PoolCommand {
  const usage = 'ekiden pool create --config FILE [NAME...] | ekiden pool create NAME --hosts a,b --image IMG --labels x,y [...]';
  const { values, positionals } = parse(argv, { ...POOL_FLAG_OPTIONS, 'task-queue': { type: 'string' } }, 'pool create');
  const poolFlags = Object.keys(POOL_FLAG_OPTIONS).filter((k) => values[k as keyof typeof values] !== undefined);
  if (typeof values.config === 'string') {
    if (poolFlags.length > 0) {
      throw new UsageError(`pool create: --${poolFlags[0]} describes a pool on the command line; with --config the pools come from the file (edit it, or drop --config)`);
    }
    const fleet = loadFleet(values.config, env);
    if (fleet.pools.length === 0) throw new UsageError(`pool create: ${values.config} defines no pools; add them under pools`);
    const known = fleet.pools.map((p) => p.name);
    for (const n of positionals) {
      if (!known.includes(n)) throw new UsageError(`pool create: no pool "${n}" in ${values.config}; pools: ${known.join(', ')}`);
    }
    const pools = positionals.length ? fleet.pools.filter((p) => positionals.includes(p.name)) : fleet.pools;
    return { verb: 'pool create', ...commonOf(values, env, fleet), pools, taskQueue: strFlag(values['task-queue']) ?? fleet.temporal.taskQueue };
  }
  const name = nameArg('pool create', positionals, usage);
  for (const required of ['hosts', 'image', 'labels'] as const) {
    if (values[required] === undefined) throw new UsageError(`pool create: --${required} is required without --config; usage: ${usage}`);
  }
  const raw: Record<string, unknown> = {
    name,
    hosts: listFlag(values.hosts),
    image: strFlag(values.image),
    imageDigest: strFlag(values['image-digest']),
    labels: listFlag(values.labels),
    size: intFlag('size', values.size, 0),
    minIdle: intFlag('min-idle', values['min-idle'], 0),
    max: intFlag('max', values.max, 1),
    cpu: intFlag('cpu', values.cpu, 1),
    memoryMb: intFlag('memory-mb', values['memory-mb'], 1),
    credential: strFlag(values.credential),
    runnerGroupId: intFlag('runner-group-id', values['runner-group-id'], 1),
    runnerDir: strFlag(values['runner-dir']),
  };
  for (const key of Object.keys(raw)) if (raw[key] === undefined || !(POOL_KEYS as readonly string[]).includes(key)) delete raw[key];
  let pool: PoolConfig;
  try {
    pool = parsePool(raw, 'pool');
  } catch (err) {
    if (err instanceof ConfigError) throw flagError(err);
    throw err;
  }
  return { verb: 'pool create', ...commonOf(values, env), pools: [pool], taskQueue: strFlag(values['task-queue']) ?? SHARED_TASK_QUEUE };
}

function parsePoolScale(argv: string[], env: Env): PoolCommand {
  const usage = 'ekiden pool scale NAME [--size N] [--min-idle N] [--max N]';
  const { values, positionals } = parse(argv, SCALE_OPTIONS, 'pool scale');
  const name = nameArg('pool scale', positionals, usage);
  const scale: PoolScale = {};
  const size = intFlag('size', values.size, 0);
  const minIdle = intFlag('min-idle', values['min-idle'], 0);
  const max = intFlag('max', values.max, 1);
  if (size !== undefined) scale.size = size;
  if (minIdle !== undefined) scale.minIdle = minIdle;
  if (max !== undefined) scale.max = max;
  if (Object.keys(scale).length === 0) throw new UsageError(`pool scale: give at least one of --size, --min-idle, --max; usage: ${usage}`);
  if (size !== undefined && max !== undefined && max < size) throw new UsageError(`--max: ${max} is less than --size ${size}; raise --max or lower --size`);
  return { verb: 'pool scale', ...commonOf(values, env), name, scale };
}

/** Checks the arguments of `ekiden pool …` (and reads any config file); throws UsageError or ConfigError. */
export function parsePoolCommand(argv: string[], env: Env): PoolCommand {
  const [verb, ...rest] = argv;
  switch (verb) {
    case 'create':
      return parsePoolCreate(rest, env);
    case 'scale':
      return parsePoolScale(rest, env);
    case 'drain':
    case 'resume': {
      const { values, positionals } = parse(rest, {}, `pool ${verb}`);
      return { verb: `pool ${verb}`, ...commonOf(values, env), name: nameArg(`pool ${verb}`, positionals, `ekiden pool ${verb} NAME`) };
    }
    case 'delete': {
      const { values, positionals } = parse(rest, { wait: { type: 'boolean' } }, 'pool delete');
      return { verb: 'pool delete', ...commonOf(values, env), name: nameArg('pool delete', positionals, 'ekiden pool delete NAME [--wait]'), wait: values.wait === true };
    }
    default:
      if (verb === undefined || verb.startsWith('-')) throw new UsageError('pool: missing verb; use create, scale, drain, resume or delete');
      throw new UsageError(`pool: unknown verb "${verb}"; use create, scale, drain, resume or delete`);
  }
}

// ───────────────────────────── output ─────────────────────────────

export function poolLine(s: PoolStatus): string {
  return tolerant(() => poolLineOf(s), `pool ${String(s?.pool)}: done (its status has an unexpected shape; see \`ekiden status --json\`)`);
}

function poolLineOf(s: PoolStatus): string {
  const c = s.counts;
  const parts = [
    `pool ${s.pool}: target ${s.target} (size ${s.config.size}, min-idle ${s.config.minIdle}, max ${s.config.max})`,
    `${c.starting} starting, ${c.idle} idle, ${c.busy} busy, ${c.cleaning} cleaning`,
    `${s.pendingJobs} pending job(s)`,
  ];
  if (s.draining) parts.push('draining');
  if (s.blocked) parts.push(`blocked: ${s.blocked}`);
  return parts.join('; ');
}

// ───────────────────────────── verbs ─────────────────────────────

/** Turns an SDK error about one pool into the line an operator needs. */
function poolError(name: string, err: unknown, timeoutMs?: number): CliError {
  if (err instanceof WorkflowNotFoundError) {
    if (/completed/i.test(err.message)) return new CliError(`pool ${name} is not running (${poolWorkflowId(name)} has ended); create it again with \`ekiden pool create\``);
    return new CliError(`pool ${name} does not exist (no running ${poolWorkflowId(name)}); create it with \`ekiden pool create\``);
  }
  if (err instanceof WorkflowUpdateFailedError) return new CliError(`pool ${name}: rejected: ${firstLine(err.cause ?? err)}`);
  if (timeoutMs !== undefined) return new CliError(`pool ${name}: ${explain(err, timeoutMs)}`);
  return new CliError(`pool ${name}: ${firstLine(err)}`);
}

async function update(session: TemporalSession, cmd: Extract<PoolCommand, { verb: 'pool scale' | 'pool drain' | 'pool resume' }>): Promise<PoolStatus> {
  const handle = session.client.workflow.getHandle(poolWorkflowId(cmd.name));
  try {
    return await withTimeout(session, UPDATE_TIMEOUT_MS, () => {
      switch (cmd.verb) {
        case 'pool scale':
          return handle.executeUpdate(scalePoolUpdate, { args: [cmd.scale] });
        case 'pool drain':
          return handle.executeUpdate(drainPoolUpdate);
        default:
          return handle.executeUpdate(resumePoolUpdate);
      }
    });
  } catch (err) {
    throw poolError(cmd.name, err, UPDATE_TIMEOUT_MS);
  }
}

async function createPools(session: TemporalSession, io: CliIo, cmd: Extract<PoolCommand, { verb: 'pool create' }>): Promise<number> {
  const results: Array<{ pool: string; workflowId: string; created: boolean; runId?: string; error?: string }> = [];
  for (const config of cmd.pools) {
    const workflowId = poolWorkflowId(config.name);
    try {
      const handle = await session.client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
        workflowId,
        taskQueue: cmd.taskQueue,
        // The config came resolved from parsePool; the tuning's defaults are filled in here, once.
        args: [{ config, tuning: resolvePoolTuning() }],
        typedSearchAttributes: [{ key: SA_POOL, value: config.name }],
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
      });
      results.push({ pool: config.name, workflowId, created: true, runId: handle.firstExecutionRunId });
      if (!cmd.json) {
        io.out(
          `pool ${config.name}: created ${workflowId} on task queue ${cmd.taskQueue}: size ${config.size}, min-idle ${config.minIdle}, max ${config.max} on ${config.hosts.join(', ')}`,
        );
      }
    } catch (err) {
      const error =
        err instanceof WorkflowExecutionAlreadyStartedError ? `pool ${config.name} already exists; use \`ekiden pool scale\`` : `pool ${config.name}: ${firstLine(err)}`;
      results.push({ pool: config.name, workflowId, created: false, error });
      io.err(`ekiden: ${error}`);
    }
  }
  if (cmd.json) json(io, results);
  return results.every((r) => r.created) ? 0 : 1;
}

async function deletePool(session: TemporalSession, io: CliIo, cmd: Extract<PoolCommand, { verb: 'pool delete' }>): Promise<number> {
  const workflowId = poolWorkflowId(cmd.name);
  const handle = session.client.workflow.getHandle(workflowId);
  let status: string;
  try {
    status = (await handle.describe()).status.name;
  } catch (err) {
    throw poolError(cmd.name, err);
  }
  if (status !== 'RUNNING') throw new CliError(`pool ${cmd.name} is not running (${workflowId} is ${status.toLowerCase()})`);
  try {
    await handle.cancel();
  } catch (err) {
    throw poolError(cmd.name, err);
  }
  if (!cmd.wait) {
    if (cmd.json) json(io, { pool: cmd.name, workflowId, cancelRequested: true });
    else io.out(`pool ${cmd.name}: deleting; its runners clean up their VMs and registrations (\`ekiden pool delete ${cmd.name} --wait\` waits for it)`);
    return 0;
  }
  const started = io.now();
  await handle.result().catch((err: unknown) => {
    if (!(err instanceof WorkflowFailedError)) throw poolError(cmd.name, err);
  });
  const closed = await handle.describe();
  const closedStatus = closed.status.name;
  if (cmd.json) json(io, { pool: cmd.name, workflowId, cancelRequested: true, closed: { status: closedStatus, closeTime: closed.closeTime?.getTime() } });
  else io.out(`pool ${cmd.name}: deleted (${workflowId} ${closedStatus.toLowerCase()} after ${formatAge(io.now() - started)}); its runners cleaned up`);
  return 0;
}

export async function runPoolCommand(session: TemporalSession, io: CliIo, cmd: PoolCommand): Promise<number> {
  switch (cmd.verb) {
    case 'pool create':
      return createPools(session, io, cmd);
    case 'pool scale':
    case 'pool drain':
    case 'pool resume': {
      const status = await update(session, cmd);
      if (cmd.json) json(io, status);
      else io.out(poolLine(status));
      return 0;
    }
    case 'pool delete':
      return deletePool(session, io, cmd);
  }
}

/** `ekiden pool …`: the exit code, after one-line errors on io.err. */
export function poolCommand(argv: string[], io: CliIo): Promise<number> {
  return runOperatorCommand(io, () => parsePoolCommand(argv, io.env), (session, cmd) => runPoolCommand(session, io, cmd));
}
