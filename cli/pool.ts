/**
 * `ekiden pool create|scale|drain|resume|delete`: each pool is a PoolWorkflow `pool/<name>`.
 * `create` starts it (from the config file's pools, or one pool described by flags) — all of
 * them or none: nothing starts while one of them exists already, and when a start fails the
 * pools this command started are deleted again, so a rerun works. `scale`, `drain` and
 * `resume` are updates the pool accepts or rejects at once (a rejected value changes
 * nothing), `delete` cancels it — its runners deregister and delete their VMs — and with
 * `--wait` reports when it has closed. Every flag is checked by the config file's rules
 * (config/bounds.ts, config/fleet.ts parsePool) before anything is contacted.
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowIdConflictPolicy,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { BOUNDS } from '../config/bounds.js';
import { ConfigError } from '../config/fields.js';
import { nameTextProblem, parsePool, POOL_KEYS } from '../config/fleet.js';
import { resolvePoolTuning } from '../core/defaults.js';
import type { PoolWorkflow } from '../workflows/pool.js';
import { poolWorkflowId, SHARED_TASK_QUEUE } from '../core/names.js';
import { SA_POOL } from '../core/search-attributes.js';
import { drainPoolUpdate, resumePoolUpdate, scalePoolUpdate, type PoolConfig, type PoolScale, type PoolStatus } from '../workflows/api.js';
import { commonOf, helpText, intFlag, listFlag, loadFleet, nameArg, parse, range, strFlag, type Common, type Options } from './args.js';
import { runOperatorCommand } from './command.js';
import { CliError, firstLine, HelpRequest, UsageError } from './errors.js';
import { json, type CliIo, type Env } from './io.js';
import { formatAge, tolerant } from './table.js';
import { explain, withTimeout, type TemporalSession } from './temporal.js';

/** How long an update may wait for the pool to accept it. */
export const UPDATE_TIMEOUT_MS = 30_000;
/** How long a rolled-back pool may take to close after its cancellation before it is terminated. */
export const ROLLBACK_WAIT_MS = 30_000;

const COMMON = '[--address HOST:PORT] [--namespace NS] [--json]';
const CREATE_FROM_FILE = 'ekiden pool create --config FILE [NAME...] [--task-queue Q]';
const CREATE_FROM_FLAGS =
  'ekiden pool create NAME --hosts a,b --image IMG --labels x,y [--size N] [--min-idle N] [--max N] [--cpu N] [--memory-mb N]\n' +
  '                          [--credential jit|registration-token] [--image-digest sha256:HEX] [--runner-group-id N] [--runner-dir DIR] [--task-queue Q]';
const SCALE = 'ekiden pool scale NAME [--size N] [--min-idle N] [--max N]';

export const POOL_USAGE = `  ${CREATE_FROM_FILE}
  ${CREATE_FROM_FLAGS.replace('\n', '\n  ')}
  ${SCALE}
  ekiden pool drain NAME
  ekiden pool resume NAME
  ekiden pool delete NAME [--wait]`;

const SCALE_FLAGS: ReadonlyArray<readonly [string, string]> = [
  ['--size N', `warm floor: runners kept alive whatever the demand (${range(BOUNDS.poolSize)})`],
  ['--min-idle N', `idle runners kept on top of busy ones and queued jobs (${range(BOUNDS.poolMinIdle)})`],
  ['--max N', `ceiling, at least --size and --min-idle (${range(BOUNDS.poolMax)})`],
];

const HELP = {
  create: helpText(
    [`${CREATE_FROM_FILE} ${COMMON}`, `${CREATE_FROM_FLAGS} ${COMMON}`],
    'Starts a pool (PoolWorkflow pool/<name>) for every pool of the config file (or the NAMEs given),\n' +
      'or for one pool described by flags. All or none: nothing starts while one of them exists, and\n' +
      'when one cannot be started the ones this command started are deleted again.',
    [
      ['--hosts a,b', 'host ids the pool places runners on (slugs)'],
      ['--image IMG', 'VM image: [REGISTRY/]PATH[:TAG][@sha256:…], qemu:NAME or qemu:/DIR'],
      ['--labels x,y', 'runner labels'],
      ...SCALE_FLAGS,
      ['--cpu N', `vCPUs per VM (${range(BOUNDS.cpu)})`],
      ['--memory-mb N', `memory per VM in MiB (${range(BOUNDS.memoryMb)})`],
      ['--credential C', 'jit or registration-token'],
      ['--image-digest D', 'sha256: and 64 hex digits: the image must have this digest'],
      ['--runner-group-id N', `GitHub runner group (${range(BOUNDS.runnerGroupId)})`],
      ['--runner-dir DIR', 'the runner\'s folder in the guest'],
      ['--task-queue Q', 'task queue of the pools\' workflows (else the config file\'s temporal.taskQueue, else ekiden)'],
      ['--config FILE', 'create the pools of this fleet config file (all, or the NAMEs given), with its temporal section'],
    ],
  ),
  scale: helpText([`${SCALE} ${COMMON}`], 'Changes a pool\'s numbers at once; the pool rejects invalid ones and nothing changes (exit 1).', SCALE_FLAGS),
  drain: helpText([`ekiden pool drain NAME ${COMMON}`], 'Running jobs finish; no new runners start; idle runners are retired.', []),
  resume: helpText([`ekiden pool resume NAME ${COMMON}`], 'Undoes a drain.', []),
  delete: helpText(
    [`ekiden pool delete NAME [--wait] ${COMMON}`],
    'Cancels the pool: every runner deregisters and deletes its VM.',
    [['--wait', 'wait until the pool has closed']],
  ),
};

export const POOL_HELP = `usage:
${POOL_USAGE}

Verbs: create, scale, drain, resume, delete; \`ekiden pool VERB --help\` describes each.
They take --address HOST:PORT, --namespace NS, --config FILE (its temporal section) and --json.`;

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

function taskQueueFlag(value: string | boolean | undefined): string | undefined {
  const queue = strFlag(value);
  if (queue === undefined) return undefined;
  const problem = nameTextProblem('--task-queue', queue, 'a task queue name');
  if (problem) throw new UsageError(problem);
  return queue;
}

function parsePoolCreate(argv: string[], env: Env): PoolCommand {
  const usage = 'ekiden pool create --config FILE [NAME...] | ekiden pool create NAME --hosts a,b --image IMG --labels x,y [...]';
  const { values, positionals } = parse(argv, { ...POOL_FLAG_OPTIONS, 'task-queue': { type: 'string' } }, 'pool create', HELP.create);
  const poolFlags = Object.keys(POOL_FLAG_OPTIONS).filter((k) => values[k as keyof typeof values] !== undefined);
  const taskQueue = taskQueueFlag(values['task-queue']);
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
    return { verb: 'pool create', ...commonOf(values, env, fleet), pools, taskQueue: taskQueue ?? fleet.temporal.taskQueue };
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
    size: intFlag('size', values.size, BOUNDS.poolSize),
    minIdle: intFlag('min-idle', values['min-idle'], BOUNDS.poolMinIdle),
    max: intFlag('max', values.max, BOUNDS.poolMax),
    cpu: intFlag('cpu', values.cpu, BOUNDS.cpu),
    memoryMb: intFlag('memory-mb', values['memory-mb'], BOUNDS.memoryMb),
    credential: strFlag(values.credential),
    runnerGroupId: intFlag('runner-group-id', values['runner-group-id'], BOUNDS.runnerGroupId),
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
  return { verb: 'pool create', ...commonOf(values, env), pools: [pool], taskQueue: taskQueue ?? SHARED_TASK_QUEUE };
}

function parsePoolScale(argv: string[], env: Env): PoolCommand {
  const usage = 'ekiden pool scale NAME [--size N] [--min-idle N] [--max N]';
  const { values, positionals } = parse(argv, SCALE_OPTIONS, 'pool scale', HELP.scale);
  const name = nameArg('pool scale', positionals, usage);
  const scale: PoolScale = {};
  const size = intFlag('size', values.size, BOUNDS.poolSize);
  const minIdle = intFlag('min-idle', values['min-idle'], BOUNDS.poolMinIdle);
  const max = intFlag('max', values.max, BOUNDS.poolMax);
  if (size !== undefined) scale.size = size;
  if (minIdle !== undefined) scale.minIdle = minIdle;
  if (max !== undefined) scale.max = max;
  if (Object.keys(scale).length === 0) throw new UsageError(`pool scale: give at least one of --size, --min-idle, --max; usage: ${usage}`);
  if (size !== undefined && max !== undefined && max < size) throw new UsageError(`--max: ${max} is less than --size ${size}; raise --max or lower --size`);
  if (minIdle !== undefined && max !== undefined && max < minIdle) throw new UsageError(`--max: ${max} is less than --min-idle ${minIdle}; raise --max or lower --min-idle`);
  return { verb: 'pool scale', ...commonOf(values, env), name, scale };
}

/** Checks the arguments of `ekiden pool …` (and reads any config file); throws UsageError or ConfigError. */
export function parsePoolCommand(argv: string[], env: Env): PoolCommand {
  const [verb, ...rest] = argv;
  switch (verb) {
    case '--help':
    case '-h':
    case 'help':
      throw new HelpRequest(POOL_HELP);
    case 'create':
      return parsePoolCreate(rest, env);
    case 'scale':
      return parsePoolScale(rest, env);
    case 'drain':
    case 'resume': {
      const { values, positionals } = parse(rest, {}, `pool ${verb}`, HELP[verb]);
      return { verb: `pool ${verb}`, ...commonOf(values, env), name: nameArg(`pool ${verb}`, positionals, `ekiden pool ${verb} NAME`) };
    }
    case 'delete': {
      const { values, positionals } = parse(rest, { wait: { type: 'boolean' } }, 'pool delete', HELP.delete);
      return { verb: 'pool delete', ...commonOf(values, env), name: nameArg('pool delete', positionals, 'ekiden pool delete NAME [--wait]'), wait: values.wait === true };
    }
    default:
      if (verb === undefined || verb.startsWith('-')) throw new UsageError('pool: missing verb; use create, scale, drain, resume or delete (`ekiden pool --help`)');
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

interface CreateResult {
  pool: string;
  workflowId: string;
  created: boolean;
  runId?: string;
  error?: string;
  /** Started by this command, then removed again because another pool could not be started. */
  rolledBack?: 'cancelled' | 'terminated' | 'failed';
}

function alreadyExists(name: string): string {
  return `pool ${name} already exists; use \`ekiden pool scale\``;
}

/** Waits until the workflow's result is in (whatever it is), or `ms` have passed. */
async function settleWithin(handle: WorkflowHandle, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      handle.result().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Removes a pool this command just started: cancelled (its runners, if it started any, clean
 * up), and terminated when it has not closed after ROLLBACK_WAIT_MS (no worker serves it), so
 * that its workflow id is free for the rerun.
 */
async function rollBack(handle: WorkflowHandle): Promise<{ how: 'cancelled' | 'terminated' } | { error: string }> {
  try {
    await handle.cancel();
    await settleWithin(handle, ROLLBACK_WAIT_MS);
    if ((await handle.describe()).status.name !== 'RUNNING') return { how: 'cancelled' };
    await handle.terminate('ekiden pool create: rolled back because another pool of the same command could not be created');
    return { how: 'terminated' };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { how: 'cancelled' };
    return { error: firstLine(err) };
  }
}

async function createPools(session: TemporalSession, io: CliIo, cmd: Extract<PoolCommand, { verb: 'pool create' }>): Promise<number> {
  const names = cmd.pools.map((p) => p.name);
  const results: CreateResult[] = cmd.pools.map((p) => ({ pool: p.name, workflowId: poolWorkflowId(p.name), created: false }));
  const none = names.length > 1 ? `; created none of ${names.join(', ')}` : '';
  const fail = (index: number, error: string, after = ''): number => {
    results[index]!.error = error;
    io.err(`ekiden: ${error}${none}${after}`);
    if (cmd.json) json(io, results);
    return 1;
  };

  // 1. Nothing starts while one of them is running already.
  for (const [i, config] of cmd.pools.entries()) {
    let status: string | undefined;
    try {
      status = (await session.client.workflow.getHandle(results[i]!.workflowId).describe()).status.name;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) return fail(i, `pool ${config.name}: ${firstLine(err)}`);
    }
    if (status === 'RUNNING') return fail(i, alreadyExists(config.name));
  }

  // 2. Start them in order; when one fails, remove the ones started before it.
  const started: Array<{ index: number; handle: WorkflowHandle }> = [];
  for (const [i, config] of cmd.pools.entries()) {
    try {
      const handle = await session.client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
        workflowId: results[i]!.workflowId,
        taskQueue: cmd.taskQueue,
        // The config came resolved from parsePool; the tuning's defaults are filled in here, once.
        args: [{ config, tuning: resolvePoolTuning() }],
        typedSearchAttributes: [{ key: SA_POOL, value: config.name }],
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
      });
      started.push({ index: i, handle });
      Object.assign(results[i]!, { created: true, runId: handle.firstExecutionRunId });
    } catch (err) {
      const error = err instanceof WorkflowExecutionAlreadyStartedError ? alreadyExists(config.name) : `pool ${config.name}: ${firstLine(err)}`;
      const notes: string[] = [];
      for (const { index, handle } of started.reverse()) {
        const result = results[index]!;
        const undone = await rollBack(handle);
        result.created = false;
        if ('how' in undone) {
          result.rolledBack = undone.how;
          notes.push(`pool ${result.pool} was started and has been ${undone.how} again`);
        } else {
          result.rolledBack = 'failed';
          result.error = `could not be removed again: ${undone.error}`;
          notes.push(`pool ${result.pool} was started and could not be removed (${undone.error}); delete it with \`ekiden pool delete ${result.pool}\``);
        }
      }
      return fail(i, error, notes.length ? ` (${notes.join('; ')})` : '');
    }
  }
  if (cmd.json) {
    json(io, results);
  } else {
    for (const config of cmd.pools) {
      io.out(
        `pool ${config.name}: created ${poolWorkflowId(config.name)} on task queue ${cmd.taskQueue}: size ${config.size}, min-idle ${config.minIdle}, max ${config.max} on ${config.hosts.join(', ')}`,
      );
    }
  }
  return 0;
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
