/**
 * `ekiden deployment status` and `ekiden deployment promote BUILD_ID`: the control plane's
 * Worker Deployment (temporal/deployment.ts, docs/upgrades.md) — which version is current, which
 * versions still hold pinned runners (an old version can be stopped once it holds none) and who
 * polls each; and moving new work to a version.
 */
import { SHARED_TASK_QUEUE } from '../core/names.js';
import { describeDeployment, setCurrentVersion, type DeploymentState } from '../temporal/deployment.js';
import { commonOf, helpText, loadFleet, parse, strFlag, type Common } from './args.js';
import { runOperatorCommand } from './command.js';
import { CliError, HelpRequest, UsageError } from './errors.js';
import { json, type CliIo, type Env } from './io.js';
import { formatTable } from './table.js';
import type { TemporalSession } from './temporal.js';

export const DEPLOYMENT_USAGE = [
  '  ekiden deployment status             the control plane\'s versions: current, pinned runners, workers',
  '  ekiden deployment promote BUILD_ID   send new runners (and pools, hosts) to that version',
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

const OPTIONS = { deployment: { type: 'string' }, 'task-queue': { type: 'string' } } as const;

export type DeploymentCommand = Common & { verb: 'deployment'; action: 'status' | 'promote'; deployment: string; taskQueue: string; buildId?: string };

export function parseDeploymentCommand(argv: string[], env: Env): DeploymentCommand {
  const [action, ...rest] = argv;
  if (action === '--help' || action === '-h') throw new HelpRequest(`usage:\n${DEPLOYMENT_USAGE}\n\nEach action's flags: ekiden deployment status --help, ekiden deployment promote --help.`);
  if (action === undefined || action.startsWith('-')) throw new UsageError('deployment: missing action; use status or promote (`ekiden deployment --help`)');
  if (action !== 'status' && action !== 'promote') throw new UsageError(`deployment: unknown action "${action}"; use status or promote (\`ekiden deployment --help\`)`);
  const help = action === 'status' ? DEPLOYMENT_STATUS_HELP : DEPLOYMENT_PROMOTE_HELP;
  const { values, positionals } = parse(rest, OPTIONS, `deployment ${action}`, help);
  const fleet = typeof values.config === 'string' ? loadFleet(values.config, env) : undefined;
  const taskQueue = strFlag(values['task-queue']) ?? fleet?.temporal.taskQueue ?? SHARED_TASK_QUEUE;
  const deployment = strFlag(values.deployment) ?? fleet?.control.versioning?.deployment ?? taskQueue;
  const cmd: DeploymentCommand = { verb: 'deployment', action, deployment, taskQueue, ...commonOf(values, env, fleet) };
  if (action === 'status') {
    if (positionals.length) throw new UsageError(`deployment status: unexpected argument "${positionals[0]}"; see \`ekiden deployment status --help\``);
    return cmd;
  }
  if (positionals.length !== 1) throw new UsageError('deployment promote: give one BUILD_ID, e.g. `ekiden deployment promote 0.2.0`');
  const buildId = positionals[0]!;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(buildId)) throw new UsageError(`deployment promote: "${buildId}" is not a build id; use up to 100 letters, digits, '.', '_' or '-', e.g. 0.2.0`);
  return { ...cmd, buildId };
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
  if (cmd.action === 'promote') {
    const buildId = cmd.buildId!;
    const before = await describeDeployment(session.client, cmd.deployment, cmd.taskQueue);
    if (!before) throw new CliError(`deployment ${cmd.deployment}: no worker of it has polled ${session.target.address}; start \`ekiden control\` first`);
    if (!before.versions.some((v) => v.buildId === buildId)) {
      throw new CliError(`deployment ${cmd.deployment} has no version ${buildId} (versions: ${before.versions.map((v) => v.buildId).join(', ') || 'none'}); start \`ekiden control\` of that release first`);
    }
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

export function deploymentCommand(argv: string[], io: CliIo): Promise<number> {
  return runOperatorCommand(io, () => parseDeploymentCommand(argv, io.env), (session, cmd) => runDeployment(session, io, cmd));
}
