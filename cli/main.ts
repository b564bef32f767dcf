/**
 * The `ekiden` command. Verbs: `up` (the embedded one-machine default), `worker` (a host
 * worker from a config file), `control` (the control plane), `webhook` (the GitHub webhook receiver), and the operator verbs
 * `pool …` (cli/pool.ts), `status` (cli/status.ts), `runners` (cli/runners.ts), `hosts`
 * (cli/hosts.ts), `image …` (cli/image.ts). `--help` / `-h` on any verb (or `ekiden help VERB`)
 * prints its usage to stdout and exits 0; `ekiden --version` prints the package version.
 * Invalid arguments exit 2 with a one-line reason. Numbers and names are checked by the config
 * file's rules (config/bounds.ts).
 */
import { BOUNDS, labelProblem } from '../config/bounds.js';
import { ConfigError } from '../config/fields.js';
import { DEFAULT_DATA_DIR, helpText, intFlag, listFlag, parseFlags, range, slugFlag, wantsHelp, type Options } from './args.js';
import { parseArgsMessage } from './command.js';
import { firstLine, HelpRequest, UsageError } from './errors.js';
import { FLEET_USAGE } from './fleet.js';
import { hostsCommand } from './hosts.js';
import { IMAGE_USAGE, imageCommand } from './image.js';
import type { CliIo } from './io.js';
import { poolCommand } from './pool.js';
import { runnersCommand } from './runners.js';
import { SETUP_USAGE, setupCommand } from './setup.js';
import { DEPLOYMENT_USAGE, deploymentCommand } from './deployment.js';
import { statusCommand } from './status.js';
import type { UpOptions } from './up.js';
import { packageVersion } from './version.js';
import { WEBHOOK_OPTIONS } from '../webhooks/options.js';
import { errorMessage } from '../core/failures.js';

export { UsageError } from './errors.js';

const UP_DEFAULTS = { dataDir: DEFAULT_DATA_DIR, labels: 'self-hosted,ekiden', hostId: 'local' } as const;

const UP_OPTIONS = {
  driver: { type: 'string' },
  jobs: { type: 'string' },
  'data-dir': { type: 'string', default: UP_DEFAULTS.dataDir },
  'pool-size': { type: 'string' },
  labels: { type: 'string', default: UP_DEFAULTS.labels },
  'host-id': { type: 'string', default: UP_DEFAULTS.hostId },
  'idle-timeout': { type: 'string' },
} as const satisfies Options;

const UP_SYNOPSIS = 'ekiden up [--driver qemu|tart|fake] [--jobs N] [--data-dir DIR] [--pool-size N] [--labels a,b] [--host-id ID] [--idle-timeout S]';

const UP_HELP = helpText(
  [UP_SYNOPSIS],
  'The embedded one-machine default: a Temporal dev server, the GitHub emulator (without GitHub\ncredentials), a host worker and a pool of runners, in one process until Ctrl-C.',
  [
    ['--driver D', 'VM driver: qemu (Linux), tart (macOS) or fake (local processes with a real SSH server); default by platform'],
    ['--jobs N', `run N demo jobs (${range(BOUNDS.demoJobs)}), then exit with their result`],
    ['--data-dir DIR', `Temporal database, host state, runner logs (default ${UP_DEFAULTS.dataDir})`],
    ['--pool-size N', `runners kept warm (${range(BOUNDS.demoPoolSize)}; default min(jobs, 2))`],
    ['--labels a,b', `runner labels (default ${UP_DEFAULTS.labels})`],
    ['--host-id ID', `this host's id, a slug (default ${UP_DEFAULTS.hostId})`],
    ['--idle-timeout S', `recycle a runner that got no job after S seconds (${range(BOUNDS.idleTimeoutSeconds)})`],
  ],
  false,
);

const WORKER_OPTIONS = { config: { type: 'string' }, host: { type: 'string' } } as const satisfies Options;
const WORKER_SYNOPSIS = 'ekiden worker --config FILE [--host ID]';
const WORKER_HELP = helpText(
  [WORKER_SYNOPSIS],
  "A host's worker: runs its VMs and runners, as the config file describes the host. With\ncontrol: true on the host (the default in a single-host file) it runs the control plane too.",
  [
    ['--config FILE', 'the fleet config file (or a single-host worker config); required'],
    ['--host ID', "which of the file's hosts this machine is; needed when the file has several"],
  ],
  false,
);

const CONTROL_OPTIONS = { config: { type: 'string' } } as const satisfies Options;
const CONTROL_SYNOPSIS = 'ekiden control --config FILE';
const CONTROL_HELP = helpText(
  [CONTROL_SYNOPSIS],
  "The control plane: runs the fleet's workflows, its GitHub and fleet activities and the fleet\nschedule (GitHub reconciliation, image-cache GC), holding no VM. Run one or more anywhere;\nhost workers then run only their host's VM work.",
  [['--config FILE', 'the fleet config file (its temporal, github and control sections); required']],
  false,
);

// webhooks/command.ts's parser has no --help; the dispatch here answers it, with its flags.
const WEBHOOK_SYNOPSIS = 'ekiden webhook [--config FILE] [--port N] [--host H] [--secret-env NAME] [--temporal HOST:PORT] [--namespace NS]';
const WEBHOOK_HELP = helpText(
  [WEBHOOK_SYNOPSIS],
  'The GitHub webhook receiver: each queued workflow job raises its pool\'s target until a runner\ntakes it. The secret is read from the environment variable --secret-env names, never an argument.',
  [
    ['--config FILE', 'read the temporal and webhook sections of this file; flags win over it'],
    ['--port N', 'port to listen on (else the file\'s webhook.port)'],
    ['--host H', 'address to listen on (else the file\'s webhook.host, else all interfaces)'],
    ['--secret-env NAME', 'environment variable holding the webhook secret (default EKIDEN_WEBHOOK_SECRET)'],
    ['--temporal HOST:PORT', 'Temporal server (else the file\'s, else TEMPORAL_ADDRESS, else 127.0.0.1:7233)'],
    ['--namespace NS', 'Temporal namespace (else the file\'s, else TEMPORAL_NAMESPACE, else default)'],
  ],
  false,
);

const USAGE = `usage:
  ${UP_SYNOPSIS}
  ${WORKER_SYNOPSIS}
  ${CONTROL_SYNOPSIS}
  ${WEBHOOK_SYNOPSIS}
${FLEET_USAGE}
${IMAGE_USAGE}
${SETUP_USAGE}
${DEPLOYMENT_USAGE}
  ekiden help [VERB...]     a verb's usage and every flag it takes (also: ekiden VERB --help)
  ekiden --version          the version of this CLI`;

/** Kept in a variable so the compiler does not require the module to exist at build time. */
const WEBHOOK_COMMAND_MODULE = '../webhooks/command.js';

type WebhookModule = { webhookCommand(argv: string[], env: Record<string, string | undefined>): Promise<number> };

function defaultIo(): CliIo {
  return {
    env: process.env,
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
    now: () => Date.now(),
  };
}

export function parseUpArgs(argv: string[]): UpOptions {
  const { values, positionals } = parseFlags(argv, UP_OPTIONS, 'up', UP_HELP);
  if (positionals.length) throw new UsageError(`up: unexpected argument "${positionals[0]}"; see \`ekiden up --help\``);
  const driver = (values.driver as string | undefined) ?? (process.platform === 'darwin' ? 'tart' : 'qemu');
  if (driver !== 'fake' && driver !== 'qemu' && driver !== 'tart') {
    throw new UsageError(`--driver: "${driver}" is not one of fake, qemu, tart`);
  }
  const labels = listFlag(values.labels) ?? [];
  if (labels.length === 0) throw new UsageError('--labels: give at least one label');
  for (const label of labels) {
    const problem = labelProblem('--labels', label);
    if (problem) throw new UsageError(problem);
  }
  return {
    driver,
    jobs: intFlag('jobs', values.jobs, BOUNDS.demoJobs),
    dataDir: values['data-dir'] as string,
    poolSize: intFlag('pool-size', values['pool-size'], BOUNDS.demoPoolSize),
    labels,
    hostId: slugFlag('host-id', values['host-id'])!,
    idleTimeoutSeconds: intFlag('idle-timeout', values['idle-timeout'], BOUNDS.idleTimeoutSeconds),
  };
}

/** `ekiden worker`'s arguments. */
export function parseWorkerArgs(argv: string[]): { config: string; host?: string } {
  const { values, positionals } = parseFlags(argv, WORKER_OPTIONS, 'worker', WORKER_HELP);
  if (positionals.length) throw new UsageError(`worker: unexpected argument "${positionals[0]}"; see \`ekiden worker --help\``);
  if (typeof values.config !== 'string') throw new UsageError('worker: --config FILE is required');
  const host = slugFlag('host', values.host);
  return host === undefined ? { config: values.config } : { config: values.config, host };
}

/** `ekiden control`'s arguments. */
export function parseControlArgs(argv: string[]): { config: string } {
  const { values, positionals } = parseFlags(argv, CONTROL_OPTIONS, 'control', CONTROL_HELP);
  if (positionals.length) throw new UsageError(`control: unexpected argument "${positionals[0]}"; see \`ekiden control --help\``);
  if (typeof values.config !== 'string') throw new UsageError('control: --config FILE is required');
  return { config: values.config };
}

/** Runs `ekiden ARGV…` and returns the exit code. `io` replaces the environment and the output streams (tests). */
export async function main(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  const cli: CliIo = { ...defaultIo(), ...io };
  const [verb, ...rest] = argv;
  try {
    switch (verb) {
      case 'up': {
        // Loaded on use: the operator verbs start fast without the worker and driver code.
        const options = parseUpArgs(rest);
        const { up } = await import('./up.js');
        return await up(options, cli.env);
      }
      case 'worker': {
        const { config, host } = parseWorkerArgs(rest);
        const { runWorkerFromConfig } = await import('../workers/main.js');
        return await runWorkerFromConfig(config, cli.env, host);
      }
      case 'control': {
        const { config } = parseControlArgs(rest);
        const { runControlFromConfig } = await import('../workers/main.js');
        return await runControlFromConfig(config, cli.env);
      }
      case 'webhook': {
        if (wantsHelp(rest, WEBHOOK_OPTIONS)) throw new HelpRequest(WEBHOOK_HELP);
        let mod: WebhookModule;
        try {
          mod = (await import(WEBHOOK_COMMAND_MODULE)) as WebhookModule;
        } catch (err) {
          if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && /webhooks[\\/]command/.test(errorMessage(err))) throw new Error('webhook: the webhook receiver is not part of this build');
          throw err;
        }
        return await mod.webhookCommand(rest, cli.env);
      }
      case 'pool':
        return await poolCommand(rest, cli);
      case 'status':
        return await statusCommand(rest, cli);
      case 'runners':
        return await runnersCommand(rest, cli);
      case 'hosts':
        return await hostsCommand(rest, cli);
      case 'setup':
        return await setupCommand(rest, cli);
      case 'deployment':
        return await deploymentCommand(rest, cli);
      case 'image':
        return await imageCommand(rest, cli);
      case 'help':
        // `ekiden help pool create` is `ekiden pool create --help`.
        if (rest.length > 0 && rest[0] !== 'help') return await main([...rest, '--help'], cli);
        cli.out(USAGE);
        return 0;
      case undefined:
      case '--help':
      case '-h':
        (verb === undefined ? cli.err : cli.out)(USAGE);
        return verb === undefined ? 2 : 0;
      case '--version':
      case 'version':
        cli.out(`ekiden ${packageVersion()}`);
        return 0;
      default:
        throw new UsageError(`unknown command "${verb}"; try \`ekiden help\``);
    }
  } catch (err) {
    if (err instanceof HelpRequest) {
      cli.out(err.usage);
      return 0;
    }
    const code = (err as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS') && /argument is ambiguous|argument missing/.test(errorMessage(err))) {
      cli.err(`ekiden: ${parseArgsMessage(err as Error)}`);
      return 2;
    }
    if (err instanceof UsageError || err instanceof ConfigError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      cli.err(`ekiden: ${errorMessage(err).split('\n')[0]}`);
      return 2;
    }
    // A Temporal client error says only "Failed to …": firstLine adds the server's reason (and the fix it knows).
    cli.err(`ekiden: ${err instanceof Error && err.name === 'ServiceError' ? firstLine(err) : errorMessage(err)}`);
    return 1;
  }
}
