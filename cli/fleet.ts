/**
 * The operator verbs of `ekiden`: `pool create|scale|drain|resume|delete`, `status`, `runners`
 * and `hosts`. Arguments (and any config file) are checked completely before anything is
 * contacted: a mistake exits 2 with one line. Commands that ran but failed exit 1 with one
 * line. `--json` prints machine-readable results to stdout; otherwise aligned tables.
 */
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowIdConflictPolicy,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowExecutionInfo,
} from '@temporalio/client';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../config/fields.js';
import { parseFleetConfig, parsePool, POOL_KEYS, type FleetConfig } from '../config/fleet.js';
import { loadConfigFile } from '../config/load.js';
import { isSlug, poolWorkflowId, SHARED_TASK_QUEUE } from '../core/names.js';
import { RunnerPhase, SA_HOST, SA_JOB, SA_PHASE, SA_POOL, SA_RUNNER } from '../core/search-attributes.js';
import {
  drainPoolUpdate,
  hostStatusQuery,
  poolStatusQuery,
  resumePoolUpdate,
  scalePoolUpdate,
  type HostStatus,
  type PoolConfig,
  type PoolScale,
  type PoolStatus,
} from '../workflows/api.js';
import { CliError, firstLine, UsageError } from './errors.js';
import { formatAge, formatTable } from './table.js';
import { connectTemporal, resolveTarget, type TemporalSession, type TemporalTarget } from './temporal.js';

type Env = Record<string, string | undefined>;

export interface CliIo {
  env: Env;
  /** One line (or block) of normal output. */
  out(text: string): void;
  /** One line of diagnostics. */
  err(text: string): void;
  now(): number;
}

export const DEFAULT_UI_URL = 'http://127.0.0.1:8233';
/** How long a query may take before its row shows an error instead (a workflow nobody serves). */
export const QUERY_TIMEOUT_MS = 5_000;
/** How long an update may wait for the pool to accept it. */
export const UPDATE_TIMEOUT_MS = 30_000;

export const FLEET_USAGE = `  ekiden pool create --config FILE [NAME...]
  ekiden pool create NAME --hosts a,b --image IMG --labels x,y [--size N] [--min-idle N] [--max N]
                          [--cpu N] [--memory-mb N] [--credential jit|registration-token] [--task-queue Q]
  ekiden pool scale NAME [--size N] [--min-idle N] [--max N]
  ekiden pool drain NAME
  ekiden pool resume NAME
  ekiden pool delete NAME [--wait]
  ekiden status
  ekiden runners [--pool P] [--host H] [--phase X] [--ui-url URL]
  ekiden hosts
  These take --address HOST:PORT, --namespace NS, --config FILE (its temporal section) and --json.`;

// ───────────────────────────── arguments ─────────────────────────────

interface Common {
  target: TemporalTarget;
  json: boolean;
}

export type FleetCommand = Common &
  (
    | { verb: 'pool create'; pools: PoolConfig[]; taskQueue: string }
    | { verb: 'pool scale'; name: string; scale: PoolScale }
    | { verb: 'pool drain' | 'pool resume'; name: string }
    | { verb: 'pool delete'; name: string; wait: boolean }
    | { verb: 'status' }
    | { verb: 'hosts' }
    | { verb: 'runners'; pool?: string; host?: string; phase?: string; uiUrl: string }
  );

type Options = NonNullable<ParseArgsConfig['options']>;

const COMMON_OPTIONS = {
  address: { type: 'string' },
  namespace: { type: 'string' },
  config: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies Options;

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

const RUNNER_PHASES: readonly string[] = Object.values(RunnerPhase);

/** `--size -1` → `--size=-1`, so a negative number reaches the value check instead of looking like a flag. */
function joinNegativeValues(argv: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg.startsWith('--') && options[arg.slice(2)]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function parse<O extends Options>(argv: string[], options: O, what: string) {
  const all: Options = { ...COMMON_OPTIONS, ...options };
  const { values, positionals } = parseArgs({ args: joinNegativeValues(argv, all), options: all, strict: true, allowPositionals: true });
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'string' && value.trim() === '') throw new UsageError(`${what}: --${key} needs a value`);
  }
  return { values: values as { [K in keyof (typeof COMMON_OPTIONS & O)]?: string | boolean }, positionals };
}

function intFlag(name: string, value: string | boolean | undefined, min: number): number | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  if (!/^-?\d+$/.test(value.trim()) || Number(value) < min) throw new UsageError(`--${name}: "${value}" is not a whole number ≥ ${min}`);
  return Number(value);
}

function listFlag(value: string | boolean | undefined): string[] | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function strFlag(value: string | boolean | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function nameArg(what: string, positionals: string[], usage: string): string {
  if (positionals.length === 0) throw new UsageError(`${what}: NAME is missing; usage: ${usage}`);
  if (positionals.length > 1) throw new UsageError(`${what}: one NAME only, got ${positionals.map((p) => `"${p}"`).join(' ')}; usage: ${usage}`);
  const name = positionals[0]!;
  if (!isSlug(name)) throw new UsageError(`${what}: "${name}" is not a pool name; use 1-31 lower-case letters, digits and single dashes`);
  return name;
}

function loadFleet(file: string, env: Env): FleetConfig {
  return parseFleetConfig(loadConfigFile(file), env);
}

function commonOf(values: { address?: string | boolean; namespace?: string | boolean; config?: string | boolean; json?: string | boolean }, env: Env, fleet?: FleetConfig): Common {
  const file = fleet ?? (typeof values.config === 'string' ? loadFleet(values.config, env) : undefined);
  return {
    target: resolveTarget({ address: strFlag(values.address), namespace: strFlag(values.namespace) }, file?.temporal, env),
    json: values.json === true,
  };
}

/** `pool.max: …` (the pool parser's field names) → `--max: …` (the flags the user typed). */
function flagError(err: ConfigError): UsageError {
  const m = /^pool\.(\w+)(\[\d+\])?(.*)$/s.exec(err.message);
  if (!m) return new UsageError(err.message);
  const flag = m[1]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return new UsageError(`--${flag}${m[3]}`);
}

function parsePoolCreate(argv: string[], env: Env): FleetCommand {
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

/** Checks the arguments of `ekiden <noun> …` (and reads any config file); throws UsageError or ConfigError. */
export function parseFleetCommand(noun: string, argv: string[], env: Env): FleetCommand {
  switch (noun) {
    case 'pool': {
      const [verb, ...rest] = argv;
      switch (verb) {
        case 'create':
          return parsePoolCreate(rest, env);
        case 'scale': {
          const usage = 'ekiden pool scale NAME [--size N] [--min-idle N] [--max N]';
          const { values, positionals } = parse(rest, SCALE_OPTIONS, 'pool scale');
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
    case 'status':
    case 'hosts': {
      const { values, positionals } = parse(argv, {}, noun);
      if (positionals.length) throw new UsageError(`${noun}: unexpected argument "${positionals[0]}"`);
      return { verb: noun, ...commonOf(values, env) };
    }
    case 'runners': {
      const { values, positionals } = parse(argv, { pool: { type: 'string' }, host: { type: 'string' }, phase: { type: 'string' }, 'ui-url': { type: 'string' } }, 'runners');
      if (positionals.length) throw new UsageError(`runners: unexpected argument "${positionals[0]}"; filter with --pool, --host or --phase`);
      const pool = strFlag(values.pool);
      const host = strFlag(values.host);
      const phase = strFlag(values.phase);
      if (pool !== undefined && !isSlug(pool)) throw new UsageError(`--pool: "${pool}" is not a pool name`);
      if (host !== undefined && !isSlug(host)) throw new UsageError(`--host: "${host}" is not a host id`);
      if (phase !== undefined && !RUNNER_PHASES.includes(phase)) throw new UsageError(`--phase: "${phase}" is not one of ${RUNNER_PHASES.join(', ')}`);
      const uiUrl = (strFlag(values['ui-url']) ?? env.TEMPORAL_UI_URL ?? DEFAULT_UI_URL).replace(/\/+$/, '');
      try {
        new URL(uiUrl);
      } catch {
        throw new UsageError(`--ui-url: "${uiUrl}" is not a URL; write e.g. ${DEFAULT_UI_URL}`);
      }
      return { verb: 'runners', ...commonOf(values, env), pool, host, phase, uiUrl };
    }
    default:
      throw new UsageError(`unknown command "${noun}"; try \`ekiden help\``);
  }
}

// ───────────────────────────── reading the fleet ─────────────────────────────

export interface PoolRow {
  workflowId: string;
  name: string;
  status?: PoolStatus;
  error?: string;
}

export interface HostRow {
  workflowId: string;
  id: string;
  status?: HostStatus;
  error?: string;
}

export interface RunnerRow {
  workflowId: string;
  runId: string;
  pool?: string;
  host?: string;
  phase?: string;
  runner?: string;
  job?: string;
  /** Epoch ms. */
  startedAt: number;
  url?: string;
}

async function listOpen(session: TemporalSession, type: string, extra = ''): Promise<WorkflowExecutionInfo[]> {
  const found: WorkflowExecutionInfo[] = [];
  for await (const info of session.client.workflow.list({ query: `WorkflowType = '${type}' AND ExecutionStatus = 'Running'${extra}` })) found.push(info);
  return found.sort((a, b) => a.workflowId.localeCompare(b.workflowId));
}

function explain(err: unknown, timeoutMs: number): string {
  for (let e: unknown = err; e instanceof Error || (typeof e === 'object' && e !== null); e = (e as { cause?: unknown }).cause) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    // gRPC 4 DEADLINE_EXCEEDED: the workflow's worker did not answer in time.
    if (code === 4 || (typeof message === 'string' && /deadline/i.test(message))) {
      return `no answer within ${timeoutMs / 1000}s; is a worker serving its task queue?`;
    }
  }
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${firstLine(err)}: ${firstLine(cause)}` : firstLine(err);
}

async function withTimeout<T>(session: TemporalSession, ms: number, fn: () => Promise<T>): Promise<T> {
  return session.connection.withDeadline(Date.now() + ms, fn);
}

export async function readPools(session: TemporalSession): Promise<PoolRow[]> {
  const infos = await listOpen(session, 'PoolWorkflow');
  return Promise.all(
    infos.map(async (info): Promise<PoolRow> => {
      const name = info.typedSearchAttributes.get(SA_POOL) ?? info.workflowId.replace(/^pool\//, '');
      try {
        const status = await withTimeout(session, QUERY_TIMEOUT_MS, () => session.client.workflow.getHandle(info.workflowId, info.runId).query(poolStatusQuery));
        return { workflowId: info.workflowId, name, status };
      } catch (err) {
        return { workflowId: info.workflowId, name, error: explain(err, QUERY_TIMEOUT_MS) };
      }
    }),
  );
}

export async function readHosts(session: TemporalSession): Promise<HostRow[]> {
  const infos = await listOpen(session, 'HostWorkflow');
  return Promise.all(
    infos.map(async (info): Promise<HostRow> => {
      const id = info.typedSearchAttributes.get(SA_HOST) ?? info.workflowId.replace(/^host\//, '');
      try {
        const status = await withTimeout(session, QUERY_TIMEOUT_MS, () => session.client.workflow.getHandle(info.workflowId, info.runId).query(hostStatusQuery));
        return { workflowId: info.workflowId, id, status };
      } catch (err) {
        return { workflowId: info.workflowId, id, error: explain(err, QUERY_TIMEOUT_MS) };
      }
    }),
  );
}

export function runnerUrl(uiUrl: string, namespace: string, workflowId: string): string {
  return `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

export async function readRunners(session: TemporalSession, filter: { pool?: string; host?: string; phase?: string; uiUrl?: string } = {}): Promise<RunnerRow[]> {
  let extra = '';
  if (filter.pool) extra += ` AND ${SA_POOL.name} = '${filter.pool}'`;
  if (filter.host) extra += ` AND ${SA_HOST.name} = '${filter.host}'`;
  if (filter.phase) extra += ` AND ${SA_PHASE.name} = '${filter.phase}'`;
  const infos = await listOpen(session, 'RunnerWorkflow', extra);
  return infos.map((info) => {
    const sa = info.typedSearchAttributes;
    const row: RunnerRow = { workflowId: info.workflowId, runId: info.runId, startedAt: info.startTime.getTime() };
    const set = (key: 'pool' | 'host' | 'phase' | 'runner' | 'job', value: string | undefined) => {
      if (value !== undefined) row[key] = value;
    };
    set('pool', sa.get(SA_POOL));
    set('host', sa.get(SA_HOST));
    set('phase', sa.get(SA_PHASE));
    set('runner', sa.get(SA_RUNNER));
    set('job', sa.get(SA_JOB));
    if (filter.uiUrl) row.url = runnerUrl(filter.uiUrl, session.target.namespace, info.workflowId);
    return row;
  });
}

// ───────────────────────────── output ─────────────────────────────

/** `render()`, or `fallback` when a status lacks fields this CLI expects (a pool or host of another version). */
function tolerant<T>(render: () => T, fallback: T): T {
  try {
    return render();
  } catch {
    return fallback;
  }
}

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

function hostsTable(rows: HostRow[], now: number): string {
  if (rows.length === 0) return '(no hosts)';
  return formatTable(
    ['HOST', 'STATE', 'DRIVER', 'USED', 'LAST SEEN', 'VERSION', 'LABELS'],
    rows.map((r) => hostCells(r, now)),
  );
}

function runnersTable(rows: RunnerRow[], now: number, withLinks: boolean): string {
  if (rows.length === 0) return '(no runners)';
  const header = ['RUNNER', 'POOL', 'HOST', 'PHASE', 'AGE', 'JOB'];
  if (withLinks) header.push('WEB UI');
  return formatTable(
    header,
    rows.map((r) => {
      const cells = [r.workflowId, r.pool ?? '-', r.host ?? '-', r.phase ?? '-', formatAge(now - r.startedAt), r.job ?? '-'];
      if (withLinks) cells.push(r.url ?? '');
      return cells;
    }),
  );
}

// ───────────────────────────── verbs ─────────────────────────────

function json(io: CliIo, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
}

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

async function update(session: TemporalSession, cmd: Extract<FleetCommand, { name: string }>): Promise<PoolStatus> {
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

async function createPools(session: TemporalSession, io: CliIo, cmd: Extract<FleetCommand, { verb: 'pool create' }>): Promise<number> {
  const results: Array<{ pool: string; workflowId: string; created: boolean; runId?: string; error?: string }> = [];
  for (const config of cmd.pools) {
    const workflowId = poolWorkflowId(config.name);
    try {
      const handle = await session.client.workflow.start('PoolWorkflow', {
        workflowId,
        taskQueue: cmd.taskQueue,
        args: [{ config }],
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

async function deletePool(session: TemporalSession, io: CliIo, cmd: Extract<FleetCommand, { verb: 'pool delete' }>): Promise<number> {
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

async function runCommand(session: TemporalSession, io: CliIo, cmd: FleetCommand): Promise<number> {
  const now = io.now();
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
    case 'status': {
      const [pools, hosts, runners] = await Promise.all([readPools(session), readHosts(session), readRunners(session)]);
      if (cmd.json) {
        json(io, { pools, hosts, runners });
      } else {
        io.out(['POOLS', poolsTable(pools, now), '', 'HOSTS', hostsTable(hosts, now), '', 'RUNNERS', runnersTable(runners, now, false)].join('\n'));
      }
      return 0;
    }
    case 'hosts': {
      const hosts = await readHosts(session);
      if (cmd.json) json(io, hosts);
      else io.out(hostsTable(hosts, now));
      return 0;
    }
    case 'runners': {
      const runners = await readRunners(session, cmd);
      if (cmd.json) json(io, runners);
      else io.out(runnersTable(runners, now, true));
      return 0;
    }
  }
}

/** node:util parseArgs's messages, made one line and about the flag. */
function parseArgsMessage(err: Error): string {
  const flag = /^Option '(-[-\w]+)/.exec(err.message)?.[1];
  if (flag && /argument is ambiguous|argument missing/.test(err.message)) {
    return `${flag}: missing value; write ${flag} VALUE (${flag}=VALUE for a value starting with -)`;
  }
  const unknown = /^Unknown option '([^']+)'/.exec(err.message)?.[1];
  if (unknown) return `unknown option ${unknown}; see \`ekiden help\``;
  return firstLine(err);
}

/** `ekiden <noun> …` for the operator verbs: the exit code, after one-line errors on io.err. */
export async function fleetCommand(noun: string, argv: string[], io: CliIo): Promise<number> {
  let cmd: FleetCommand;
  try {
    cmd = parseFleetCommand(noun, argv, io.env);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      io.err(`ekiden: ${parseArgsMessage(err as Error)}`);
      return 2;
    }
    if (err instanceof UsageError || err instanceof ConfigError) {
      io.err(`ekiden: ${firstLine(err)}`);
      return 2;
    }
    throw err;
  }
  let session: TemporalSession | undefined;
  try {
    session = await connectTemporal(cmd.target);
    return await runCommand(session, io, cmd);
  } catch (err) {
    io.err(`ekiden: ${firstLine(err)}`);
    return 1;
  } finally {
    await session?.close().catch(() => {});
  }
}
