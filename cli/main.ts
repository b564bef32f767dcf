/**
 * The `ekiden` command. Verbs: `up` (the embedded one-machine default) and `worker` (a host
 * worker from a config file). Invalid arguments exit 2 with a one-line reason.
 */
import { parseArgs } from 'node:util';
import { runWorkerFromConfig } from '../workers/main.js';
import { up, type UpOptions } from './up.js';

const USAGE = `usage:
  ekiden up [--driver qemu|tart|fake] [--jobs N] [--data-dir DIR] [--pool-size N] [--labels a,b]
  ekiden worker --config FILE`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
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

export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  try {
    switch (verb) {
      case 'up':
        return await up(parseUpArgs(rest), process.env);
      case 'worker': {
        const { values } = parseArgs({ args: rest, strict: true, options: { config: { type: 'string' } } });
        if (!values.config) throw new UsageError('worker: --config FILE is required');
        return await runWorkerFromConfig(values.config, process.env);
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return verb === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${verb}"; try \`ekiden help\``);
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (err instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      console.error(`ekiden: ${(err as Error).message.split('\n')[0]}`);
      return 2;
    }
    console.error(`ekiden: ${(err as Error).message}`);
    return 1;
  }
}
