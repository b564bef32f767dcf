/**
 * The `ekiden` command. Verbs: `up` (the embedded one-machine default), `worker` (a host
 * worker from a config file), `webhook` (the GitHub webhook receiver), and the operator verbs
 * `pool …` (cli/pool.ts), `status` (cli/status.ts), `runners` (cli/runners.ts), `hosts`
 * (cli/hosts.ts). Invalid arguments exit 2 with a one-line reason.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';
import { FLEET_USAGE } from './fleet.js';
import { hostsCommand } from './hosts.js';
import type { CliIo } from './io.js';
import { poolCommand } from './pool.js';
import { runnersCommand } from './runners.js';
import { statusCommand } from './status.js';
import type { UpOptions } from './up.js';
import { errorMessage } from '../core/failures.js';

export { UsageError } from './errors.js';

const USAGE = `usage:
  ekiden up [--driver qemu|tart|fake] [--jobs N] [--data-dir DIR] [--pool-size N] [--labels a,b]
  ekiden worker --config FILE [--host ID]
  ekiden webhook …               the GitHub webhook receiver
${FLEET_USAGE}`;

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

function positiveInt(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name}: "${value}" is not a whole number ≥ ${min}`);
  return n;
}

export function parseUpArgs(argv: string[]): UpOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      driver: { type: 'string', default: process.platform === 'darwin' ? 'tart' : 'qemu' },
      jobs: { type: 'string' },
      'data-dir': { type: 'string', default: '.ekiden' },
      'pool-size': { type: 'string' },
      labels: { type: 'string', default: 'self-hosted,ekiden' },
      'host-id': { type: 'string', default: 'local' },
      'idle-timeout': { type: 'string' },
    },
  });
  const driver = values.driver!;
  if (driver !== 'fake' && driver !== 'qemu' && driver !== 'tart') {
    throw new UsageError(`--driver: "${driver}" is not one of fake, qemu, tart`);
  }
  const labels = values.labels!.split(',').map((l) => l.trim()).filter(Boolean);
  if (labels.length === 0) throw new UsageError('--labels: give at least one label');
  return {
    driver,
    jobs: positiveInt('jobs', values.jobs, 1),
    dataDir: values['data-dir']!,
    poolSize: positiveInt('pool-size', values['pool-size'], 1),
    labels,
    hostId: values['host-id']!,
    idleTimeoutSeconds: positiveInt('idle-timeout', values['idle-timeout'], 1),
  };
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
        const { values } = parseArgs({ args: rest, strict: true, options: { config: { type: 'string' }, host: { type: 'string' } } });
        if (!values.config) throw new UsageError('worker: --config FILE is required');
        const { runWorkerFromConfig } = await import('../workers/main.js');
        return await runWorkerFromConfig(values.config, cli.env, values.host);
      }
      case 'webhook': {
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
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        (verb === undefined ? cli.err : cli.out)(USAGE);
        return verb === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${verb}"; try \`ekiden help\``);
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (err instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      cli.err(`ekiden: ${errorMessage(err).split('\n')[0]}`);
      return 2;
    }
    cli.err(`ekiden: ${errorMessage(err)}`);
    return 1;
  }
}
