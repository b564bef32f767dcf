/**
 * `ekiden webhook`: runs the GitHub webhook receiver (demand scaling) until SIGINT/SIGTERM.
 *
 *   ekiden webhook [--config FILE] [--port N] [--host H] [--secret-env NAME]
 *                  [--temporal ADDRESS] [--namespace NS]
 *
 * The secret is read from the environment variable named by --secret-env (default
 * EKIDEN_WEBHOOK_SECRET), never from an argument or a file. --config reads the `temporal`
 * section (`address`, `namespace`) and an optional `webhook` section (`port`, `host`,
 * `secretEnv`, `maxBodyBytes`) of a JSON or YAML file; flags win over the file. Without
 * either, Temporal comes from TEMPORAL_ADDRESS / TEMPORAL_PROFILE / TEMPORAL_CONFIG_FILE,
 * else 127.0.0.1:7233. Invalid arguments exit 2 with a one-line reason.
 */
import { Client, Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { jsonLineLogger, type WebhookLogger } from './log.js';
import { closeServer, createWebhookServer, listenOn, WEBHOOK_PATH } from './server.js';
import { errorMessage } from '../core/failures.js';

export const DEFAULT_SECRET_ENV = 'EKIDEN_WEBHOOK_SECRET';
export const DEFAULT_PORT = 8765;
export const DEFAULT_HOST = '0.0.0.0';

class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface WebhookSettings {
  port: number;
  host: string;
  secretEnv: string;
  secret: string;
  temporal: { address: string; namespace: string; connect: Parameters<typeof Connection.connect>[0] };
  maxBodyBytes?: number;
}

type Env = Record<string, string | undefined>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parsePort(value: unknown, field: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${field}: "${String(value)}" is not a port number (0-65535)`);
  return n;
}

function optString(o: Record<string, unknown>, key: string, field: string): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length === 0) throw new UsageError(`${field}.${key}: must be a non-empty string`);
  return v;
}

function readConfig(file: string): { temporal: Record<string, unknown>; webhook: Record<string, unknown> } {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--config: cannot read ${file}: ${errorMessage(err).split('\n')[0]}`);
  }
  if (!isRecord(raw)) throw new UsageError(`--config: ${file} must hold an object with a "temporal" and/or "webhook" section`);
  const section = (key: string) => {
    const v = raw[key];
    if (v === undefined) return {};
    if (!isRecord(v)) throw new UsageError(`${key}: expected an object`);
    return v;
  };
  return { temporal: section('temporal'), webhook: section('webhook') };
}

/** Parses argv and the environment; throws a UsageError with a one-line reason. */
export function parseWebhookArgs(argv: string[], env: Env): WebhookSettings {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      config: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      'secret-env': { type: 'string' },
      temporal: { type: 'string' },
      namespace: { type: 'string' },
    },
  });
  const file = values.config === undefined ? { temporal: {}, webhook: {} } : readConfig(values.config);
  const port = values.port !== undefined ? parsePort(values.port, '--port') : file.webhook['port'] !== undefined ? parsePort(file.webhook['port'], 'webhook.port') : DEFAULT_PORT;
  const host = values.host ?? optString(file.webhook, 'host', 'webhook') ?? DEFAULT_HOST;
  if (host.length === 0) throw new UsageError('--host: must not be empty');
  const secretEnv = values['secret-env'] ?? optString(file.webhook, 'secretEnv', 'webhook') ?? DEFAULT_SECRET_ENV;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(secretEnv)) throw new UsageError(`--secret-env: "${secretEnv}" is not an environment variable name`);
  const secret = env[secretEnv];
  if (!secret) throw new UsageError(`environment variable ${secretEnv} is empty; export the webhook secret there (or name another with --secret-env)`);
  const maxBody = file.webhook['maxBodyBytes'];
  if (maxBody !== undefined && (typeof maxBody !== 'number' || !Number.isInteger(maxBody) || maxBody < 1)) {
    throw new UsageError('webhook.maxBodyBytes: must be a whole number ≥ 1');
  }
  if (values.temporal !== undefined && !/^[^\s:]+:\d+$/.test(values.temporal) && !/^\[[0-9a-fA-F:]+\]:\d+$/.test(values.temporal)) {
    throw new UsageError(`--temporal: "${values.temporal}" is not HOST:PORT`);
  }
  let connect: Parameters<typeof Connection.connect>[0] = {};
  let address = values.temporal ?? optString(file.temporal, 'address', 'temporal');
  let namespace = values.namespace ?? optString(file.temporal, 'namespace', 'temporal');
  if (address === undefined && (env.TEMPORAL_ADDRESS || env.TEMPORAL_PROFILE || env.TEMPORAL_CONFIG_FILE)) {
    const cfg = loadClientConnectConfig({ profile: env.TEMPORAL_PROFILE, overrideEnvVars: env as Record<string, string> });
    connect = cfg.connectionOptions as typeof connect;
    address = cfg.connectionOptions.address ?? env.TEMPORAL_ADDRESS;
    namespace ??= cfg.namespace;
  }
  address ??= '127.0.0.1:7233';
  namespace ??= env.TEMPORAL_NAMESPACE ?? 'default';
  return {
    port,
    host,
    secretEnv,
    secret,
    temporal: { address, namespace, connect: { ...connect, address } },
    ...(typeof maxBody === 'number' ? { maxBodyBytes: maxBody } : {}),
  };
}

export interface WebhookCommandHooks {
  /** Stops the receiver like SIGINT does. */
  signal?: AbortSignal;
  /** Called with the receiver's URL once it listens. */
  onListening?: (url: string) => void;
  logger?: WebhookLogger;
}

/** Runs the receiver; resolves with the exit code (0 after SIGINT/SIGTERM, 2 on bad arguments). */
export async function webhookCommand(argv: string[], env: Env, hooks: WebhookCommandHooks = {}): Promise<number> {
  let settings: WebhookSettings;
  try {
    settings = parseWebhookArgs(argv, env);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (err instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      console.error(`ekiden webhook: ${errorMessage(err).split('\n')[0]}`);
      return 2;
    }
    throw err;
  }
  const logger = hooks.logger ?? jsonLineLogger();
  let connection: Connection;
  try {
    connection = await Connection.connect(settings.temporal.connect);
  } catch (err) {
    console.error(`ekiden webhook: cannot reach Temporal at ${settings.temporal.address}: ${errorMessage(err).split('\n')[0]}`);
    return 1;
  }
  const client = new Client({ connection, namespace: settings.temporal.namespace });
  const server = createWebhookServer({ secret: settings.secret, client, logger, maxBodyBytes: settings.maxBodyBytes });
  try {
    const url = await listenOn(server, settings.port, settings.host);
    logger.info('webhook receiver listening', { url: `${url}${WEBHOOK_PATH}`, temporal: settings.temporal.address, namespace: settings.temporal.namespace, secretEnv: settings.secretEnv });
    hooks.onListening?.(url);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        hooks.signal?.removeEventListener('abort', stop);
        resolve();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      hooks.signal?.addEventListener('abort', stop);
      if (hooks.signal?.aborted) stop();
    });
    logger.info('webhook receiver stopping');
    await closeServer(server);
    return 0;
  } catch (err) {
    console.error(`ekiden webhook: cannot listen on ${settings.host}:${settings.port}: ${errorMessage(err).split('\n')[0]}`);
    return 1;
  } finally {
    await connection.close();
  }
}
