/**
 * `ekiden deployment status` and `ekiden deployment promote BUILD_ID`: the control plane's
 * Worker Deployment (temporal/deployment.ts, docs/upgrades.md) — which version is current, which
 * versions still hold pinned runners (an old version can be stopped once it holds none) and who
 * polls each; and moving new work to a version.
 */
import { SHARED_TASK_QUEUE } from '../core/names.js';
import { describeDeployment, setCurrentVersion, setRampingVersion, type DeploymentState } from '../temporal/deployment.js';
import { commonOf, helpText, intFlag, loadFleet, parse, strFlag, type Common } from './args.js';
import { runOperatorCommand } from './command.js';
import { CliError, HelpRequest, UsageError } from './errors.js';
import { json, type CliIo, type Env } from './io.js';
import { formatTable } from './table.js';
import type { TemporalSession } from './temporal.js';

export const DEPLOYMENT_USAGE = [
  '  ekiden deployment status             the control plane\'s versions: current, pinned runners, workers',
  '  ekiden deployment promote BUILD_ID   send new runners (and pools, hosts) to that version',
  '  ekiden deployment ramp BUILD_ID --percent N   send N% of new runners there first (--stop ends the ramp)',
].join('\n');

const FLAGS = [
  ['--deployment NAME', 'the Worker Deployment (else the config file\'s control.deployment, else its task queue, else ekiden)'],
  ['--task-queue NAME', 'the fleet\'s shared task queue (else the config file\'s, else ekiden)'],
] as const;

export const DEPLOYMENT_STATUS_HELP = helpText(
  ['ekiden deployment status [--deployment NAME] [--task-queue NAME] [--config FILE] [--address HOST:PORT] [--json]'],
  'The control plane\'s Worker Deployment: the current (and ramping) version, and per version its\nstate, the open workflows pinned to it and the workers polling as it. A version that is not\ncurrent and holds no pinned workflow is drained: its workers may stop.',
  FLAGS,
);

export const DEPLOYMENT_PROMOTE_HELP = helpText(
  ['ekiden deployment promote BUILD_ID [--deployment NAME] [--task-queue NAME] [--config FILE] [--address HOST:PORT] [--json]'],
  'Makes BUILD_ID the current version: new runners start on it and pools, hosts and image catalogs\nmove to it at their next step; runners already running stay on their own version until they end.\nThe version must have a worker polling (start `ekiden control` of that release first).\nPromoting the previous build id is the rollback.',
  FLAGS,
);

export const DEPLOYMENT_RAMP_HELP = helpText(
  ['ekiden deployment ramp BUILD_ID --percent N [--deployment NAME] [--task-queue NAME] [--config FILE] [--address HOST:PORT] [--json]', 'ekiden deployment ramp --stop [--deployment NAME] …'],
  'A canary: N% of new runners (and of pools, hosts and image catalogs, chosen by workflow id) go to\nBUILD_ID, the rest to the current version; runners already running stay where they are.\n`ekiden deployment promote BUILD_ID` ends the ramp by making it current; --stop ends it without.',
  [['--percent N', 'share of new work for BUILD_ID, 0 to 100'], ['--stop', 'end the ramp: all new work to the current version'], ...FLAGS],
);

const OPTIONS = { deployment: { type: 'string' }, 'task-queue': { type: 'string' } } as const;
const RAMP_OPTIONS = { ...OPTIONS, percent: { type: 'string' }, stop: { type: 'boolean' } } as const;
const PERCENT_RULE = { min: 0, max: 100, unit: 'percent', example: 10 };

export type DeploymentCommand = Common & {
  verb: 'deployment';
  action: 'status' | 'promote' | 'ramp';
  deployment: string;
  taskQueue: string;
  buildId?: string;
  /** ramp: the share for buildId; absent with --stop. */
  percent?: number;
};

export function parseDeploymentCommand(argv: string[], env: Env): DeploymentCommand {
  const [action, ...rest] = argv;
  if (action === '--help' || action === '-h') throw new HelpRequest(`usage:\n${DEPLOYMENT_USAGE}\n\nEach action's flags: ekiden deployment status --help, ekiden deployment promote --help.`);
  if (action === undefined || action.startsWith('-')) throw new UsageError('deployment: missing action; use status or promote (`ekiden deployment --help`)');
  if (action !== 'status' && action !== 'promote' && action !== 'ramp') throw new UsageError(`deployment: unknown action "${action}"; use status, promote or ramp (\`ekiden deployment --help\`)`);
  const help = action === 'status' ? DEPLOYMENT_STATUS_HELP : action === 'promote' ? DEPLOYMENT_PROMOTE_HELP : DEPLOYMENT_RAMP_HELP;
  const { values, positionals } = parse(rest, action === 'ramp' ? RAMP_OPTIONS : OPTIONS, `deployment ${action}`, help);
  const fleet = typeof values.config === 'string' ? loadFleet(values.config, env) : undefined;
  const taskQueue = strFlag(values['task-queue']) ?? fleet?.temporal.taskQueue ?? SHARED_TASK_QUEUE;
  const deployment = strFlag(values.deployment) ?? fleet?.control.versioning?.deployment ?? taskQueue;
  const cmd: DeploymentCommand = { verb: 'deployment', action, deployment, taskQueue, ...commonOf(values, env, fleet) };
  if (action === 'status') {
    if (positionals.length) throw new UsageError(`deployment status: unexpected argument "${positionals[0]}"; see \`ekiden deployment status --help\``);
    return cmd;
  }
  if (action === 'ramp') {
    const v = values as { percent?: string; stop?: boolean };
    if (v.stop) {
      if (positionals.length || v.percent !== undefined) throw new UsageError('deployment ramp: --stop takes no BUILD_ID or --percent');
      return cmd;
    }
    const percent = intFlag('percent', v.percent, PERCENT_RULE);
    if (percent === undefined) throw new UsageError('deployment ramp: --percent N is required (or --stop to end the ramp)');
    return { ...cmd, buildId: buildIdArg('ramp', positionals), percent };
  }
  return { ...cmd, buildId: buildIdArg('promote', positionals) };
}

function buildIdArg(action: string, positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(`deployment ${action}: give one BUILD_ID, e.g. \`ekiden deployment ${action} 0.2.0${action === 'ramp' ? ' --percent 10' : ''}\``);
  const buildId = positionals[0]!;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(buildId)) throw new UsageError(`deployment ${action}: "${buildId}" is not a build id; use up to 100 letters, digits, '.', '_' or '-', e.g. 0.2.0`);
  return buildId;
}

function statusLines(s: DeploymentState): string[] {
  const lines = [`deployment ${s.deployment}: current ${s.current ?? '(none: no versioned worker gets new work)'}${s.ramping ? `, ramping ${s.ramping.buildId} at ${s.ramping.percentage}%` : ''}`];
  const rows = s.versions.map((v) => {
    const note =
      v.buildId === s.current ? '' : v.pinned > 0 ? (v.pollers === 0 ? 'pinned runners wait: no worker of this version runs; start it' : 'draining') : 'drained: its workers may stop';
    return [v.buildId, v.buildId === s.current ? 'current' : v.status, String(v.pinned), String(v.pollers), note];
  });
  lines.push(...formatTable(['BUILD ID', 'STATE', 'PINNED', 'WORKERS', ''], rows).split('\n'));
  return lines;
}

export async function runDeployment(session: TemporalSession, io: CliIo, cmd: DeploymentCommand): Promise<number> {
  const identity = `ekiden-cli@${process.pid}`;
  if (cmd.action === 'ramp') {
    const before = await knownVersion(session, cmd);
    if (cmd.buildId !== undefined && cmd.buildId === before.current) throw new CliError(`deployment ${cmd.deployment}: ${cmd.buildId} is the current version; ramp another one`);
    await setRampingVersion(session.client, cmd.deployment, cmd.buildId === undefined ? undefined : { buildId: cmd.buildId, percentage: cmd.percent! }, identity);
    const now = cmd.buildId === undefined ? 'no ramp' : `${cmd.percent}% of new work to ${cmd.buildId}`;
    if (cmd.json) json(io, { deployment: cmd.deployment, current: before.current ?? null, ramping: cmd.buildId === undefined ? null : { buildId: cmd.buildId, percentage: cmd.percent } });
    else io.out(`deployment ${cmd.deployment}: ${now}, the rest to ${before.current ?? 'no current version'}`);
    return 0;
  }
  if (cmd.action === 'promote') {
    const buildId = cmd.buildId!;
    const before = await knownVersion(session, cmd);
    if (before.current !== buildId) await setCurrentVersion(session.client, { deployment: cmd.deployment, buildId }, identity);
    if (cmd.json) json(io, { deployment: cmd.deployment, current: buildId, previous: before.current ?? null });
    else io.out(before.current === buildId ? `deployment ${cmd.deployment}: ${buildId} is already current` : `deployment ${cmd.deployment}: ${buildId} is current (was ${before.current ?? 'none'}); runners on other versions finish there`);
    return 0;
  }
  const state = await describeDeployment(session.client, cmd.deployment, cmd.taskQueue);
  if (!state) {
    if (cmd.json) json(io, { deployment: cmd.deployment, exists: false });
    else io.out(`deployment ${cmd.deployment}: none on ${session.target.address} (its control-plane workers are unversioned, or none has started)`);
    return 0;
  }
  if (cmd.json) json(io, { ...state, exists: true });
  else for (const l of statusLines(state)) io.out(l);
  return 0;
}

/** The deployment as it is, refusing a build id no worker of it has polled as. */
async function knownVersion(session: TemporalSession, cmd: DeploymentCommand): Promise<DeploymentState> {
  const state = await describeDeployment(session.client, cmd.deployment, cmd.taskQueue);
  if (!state) throw new CliError(`deployment ${cmd.deployment}: no worker of it has polled ${session.target.address}; start \`ekiden control\` first`);
  if (cmd.buildId !== undefined && !state.versions.some((v) => v.buildId === cmd.buildId)) {
    throw new CliError(`deployment ${cmd.deployment} has no version ${cmd.buildId} (versions: ${state.versions.map((v) => v.buildId).join(', ') || 'none'}); start \`ekiden control\` of that release first`);
  }
  return state;
}

export function deploymentCommand(argv: string[], io: CliIo): Promise<number> {
  return runOperatorCommand(io, () => parseDeploymentCommand(argv, io.env), (session, cmd) => runDeployment(session, io, cmd));
}
