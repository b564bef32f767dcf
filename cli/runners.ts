/**
 * `ekiden runners [--pool P] [--host H] [--phase X] [--ui-url URL]`: every running
 * RunnerWorkflow, read from the visibility list and its search attributes alone (no query per
 * runner; the filters are part of the list query), each with a link to it in the Temporal Web
 * UI. `ekiden status` shows the same table without the links.
 *
 * The links' base is `--ui-url`, else TEMPORAL_UI_URL, else the Web UI of the `ekiden up` the
 * command talks to (it records its address and UI URL in its data dir: host/endpoint.ts; found
 * with `--data-dir`, or in ./.ekiden when nothing else names a server), else DEFAULT_UI_URL —
 * a Temporal CLI dev server on its default ports (`temporal server start-dev`).
 */
import { RunnerPhase, SA_HOST, SA_JOB, SA_PHASE, SA_POOL, SA_RUNNER } from '../core/search-attributes.js';
import { commonOf, helpText, parse, slugFlag, strFlag, type Common } from './args.js';
import { runOperatorCommand } from './command.js';
import { UsageError } from './errors.js';
import { json, type CliIo, type Env } from './io.js';
import { formatAge, formatTable } from './table.js';
import { listOpen, type TemporalSession } from './temporal.js';

export const DEFAULT_UI_URL = 'http://127.0.0.1:8233';

export const RUNNERS_USAGE = '  ekiden runners [--pool P] [--host H] [--phase X] [--ui-url URL]';

const RUNNER_PHASES: readonly string[] = Object.values(RunnerPhase);

export const RUNNERS_HELP = helpText(
  ['ekiden runners [--pool P] [--host H] [--phase X] [--ui-url URL] [--address HOST:PORT] [--namespace NS] [--config FILE] [--data-dir DIR] [--json]'],
  'Every running runner (pool, host, phase, age, job), each with a link to its workflow in the Temporal Web UI.',
  [
    ['--pool P', 'only this pool\'s runners'],
    ['--host H', 'only the runners on this host'],
    ['--phase X', `only runners in this phase: ${RUNNER_PHASES.join(', ')}`],
    ['--ui-url URL', `Web UI base of the links (http or https): else TEMPORAL_UI_URL, else that of the \`ekiden up\` on --data-dir (or ./.ekiden), else ${DEFAULT_UI_URL} (a Temporal dev server's default)`],
  ],
);

export type RunnersCommand = Common & { verb: 'runners'; pool?: string; host?: string; phase?: string; uiUrl: string };

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

export function runnersTable(rows: RunnerRow[], now: number, withLinks: boolean): string {
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

/** Checks the arguments of `ekiden runners …`; throws UsageError or ConfigError. */
export function parseRunnersCommand(argv: string[], env: Env): RunnersCommand {
  const { values, positionals } = parse(argv, { pool: { type: 'string' }, host: { type: 'string' }, phase: { type: 'string' }, 'ui-url': { type: 'string' } }, 'runners', RUNNERS_HELP);
  if (positionals.length) throw new UsageError(`runners: unexpected argument "${positionals[0]}"; filter with --pool, --host or --phase`);
  const pool = slugFlag('pool', values.pool);
  const host = slugFlag('host', values.host);
  const phase = strFlag(values.phase);
  if (phase !== undefined && !RUNNER_PHASES.includes(phase)) throw new UsageError(`--phase: "${phase}" is not one of ${RUNNER_PHASES.join(', ')}`);
  const common = commonOf(values, env);
  const flag = strFlag(values['ui-url']);
  const [given, source] =
    flag !== undefined ? [flag, '--ui-url'] : env.TEMPORAL_UI_URL ? [env.TEMPORAL_UI_URL, 'TEMPORAL_UI_URL'] : common.uiUrl ? [common.uiUrl, 'the data dir'] : [DEFAULT_UI_URL, 'default'];
  const uiUrl = given.replace(/\/+$/, '');
  let url: URL | undefined;
  try {
    url = new URL(uiUrl);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash) {
    throw new UsageError(`${source}: "${uiUrl}" is not an http(s) URL of the Temporal Web UI; write e.g. ${DEFAULT_UI_URL}`);
  }
  return { verb: 'runners', ...common, pool, host, phase, uiUrl };
}

export async function runRunners(session: TemporalSession, io: CliIo, cmd: RunnersCommand): Promise<number> {
  const now = io.now();
  const runners = await readRunners(session, cmd);
  if (cmd.json) json(io, runners);
  else io.out(runnersTable(runners, now, true));
  return 0;
}

/** `ekiden runners …`: the exit code, after one-line errors on io.err. */
export function runnersCommand(argv: string[], io: CliIo): Promise<number> {
  return runOperatorCommand(io, () => parseRunnersCommand(argv, io.env), (session, cmd) => runRunners(session, io, cmd));
}
