/**
 * `ekiden webhook`: runs the GitHub webhook receiver (demand scaling) until SIGINT/SIGTERM.
 *
 *   ekiden webhook [--config FILE] [--port N] [--host H] [--secret-env NAME]
 *                  [--temporal ADDRESS] [--namespace NS]
 *
 * The secret is read from the environment variable named by --secret-env (default
 * EKIDEN_WEBHOOK_SECRET), never from an argument or a file. --config is the fleet file, read
 * and checked whole by the config module (config/load.ts, config/fleet.ts) as every other verb
 * reads it — unknown fields, invalid pools and the rest exit 2 with the config module's reason;
 * the receiver uses its `temporal` section (`address`, `namespace`) and its optional `webhook`
 * section (`port`, `host`, `secretEnv`, `maxBodyBytes`); flags win over the file. The port
 * defaults to the config module's DEFAULT_WEBHOOK_PORT (8088). Without an address from a flag or
 * the file, Temporal comes from TEMPORAL_ADDRESS / TEMPORAL_PROFILE / TEMPORAL_CONFIG_FILE, else
 * 127.0.0.1:7233. Invalid arguments exit 2 with a one-line reason.
 */
import { WEBHOOK_OPTIONS } from './options.js';
import { Client, type Connection } from '@temporalio/client';
import { connectClient, credentialsFor, loadCredentials, profileFromEnv, type TemporalCredentials } from '../temporal/connect.js';
import { parseArgs } from 'node:util';
import { ConfigError, DEFAULT_WEBHOOK_PORT, DEFAULT_WEBHOOK_SECRET_ENV, parseFleetConfig, splitAddress, type FleetConfig } from '../config/fleet.js';
import { loadConfigFile } from '../config/load.js';
import { jsonLineLogger, type WebhookLogger } from './log.js';
import { closeServer, createWebhookServer, listenOn, WEBHOOK_PATH } from './server.js';
import { TemporalCalls } from './temporal.js';
import { errorMessage } from '../core/failures.js';

export const DEFAULT_SECRET_ENV = DEFAULT_WEBHOOK_SECRET_ENV;
export const DEFAULT_PORT = DEFAULT_WEBHOOK_PORT;
export const DEFAULT_HOST = '0.0.0.0';
/** A call given up on settles within its deadline plus the SDK's longest retry backoff (5 s). */
const DRAIN_TIMEOUT_MS = 15_000;

class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface WebhookSettings {
  port: number;
  host: string;
  secretEnv: string;
  secret: string;
  temporal: { address: string; namespace: string; credentials: TemporalCredentials };
  maxBodyBytes?: number;
}

type Env = Record<string, string | undefined>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parsePort(value: string, field: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${field}: "${value}" is not a port number (0-65535)`);
  return n;
}

/** What the receiver takes from the fleet file, checked whole by the config module. */
interface FileSettings {
  fleet: FleetConfig;
  /** The address and namespace the file itself names (parseFleetConfig fills the rest from the environment). */
  address?: string;
  namespace?: string;
}

function readConfig(file: string, env: Env): FileSettings {
  const raw = loadConfigFile(file);
  const fleet = parseFleetConfig(raw, env, { configFile: file });
  const section = isRecord(raw) && isRecord(raw['temporal']) ? raw['temporal'] : {};
  return {
    fleet,
    ...(section['address'] !== undefined ? { address: fleet.temporal.address } : {}),
    ...(section['namespace'] !== undefined ? { namespace: fleet.temporal.namespace } : {}),
  };
}


/** Parses argv and the environment; throws a UsageError with a one-line reason. */
export function parseWebhookArgs(argv: string[], env: Env): WebhookSettings {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: WEBHOOK_OPTIONS,
  });
  const file = values.config === undefined ? undefined : readConfig(values.config, env);
  const webhook = file?.fleet.webhook;
  const port = values.port !== undefined ? parsePort(values.port, '--port') : (webhook?.port ?? DEFAULT_PORT);
  const host = values.host ?? webhook?.host ?? DEFAULT_HOST;
  if (host.length === 0) throw new UsageError('--host: must not be empty');
  const secretEnv = values['secret-env'] ?? webhook?.secretEnv ?? DEFAULT_SECRET_ENV;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(secretEnv)) throw new UsageError(`--secret-env: "${secretEnv}" is not an environment variable name`);
  const secret = env[secretEnv];
  if (!secret) throw new UsageError(`environment variable ${secretEnv} is empty; export the webhook secret there (or name another with --secret-env)`);
  const maxBody = webhook?.maxBodyBytes;
  if (values.temporal !== undefined && !splitAddress(values.temporal)) {
    throw new UsageError(`--temporal: "${values.temporal}" is not HOST:PORT`);
  }
  // The file's credentials when its temporal section has any, else a client-config profile's (TEMPORAL_PROFILE, TEMPORAL_TLS_* …).
  const fileTemporal = file?.fleet.temporal;
  const fromFile = fileTemporal && (fileTemporal.tls || fileTemporal.apiKeyEnv) ? credentialsFor(fileTemporal, env) : undefined;
  const profile = fromFile ? undefined : profileFromEnv(env);
  const credentials = fromFile ?? profile?.credentials ?? {};
  loadCredentials(credentials, env);
  const address = values.temporal ?? file?.address ?? profile?.address ?? env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const namespace = values.namespace ?? file?.namespace ?? profile?.namespace ?? env.TEMPORAL_NAMESPACE ?? 'default';
  return {
    port,
    host,
    secretEnv,
    secret,
    temporal: { address, namespace, credentials },
    ...(maxBody !== undefined ? { maxBodyBytes: maxBody } : {}),
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
    if (err instanceof UsageError || err instanceof ConfigError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      console.error(`ekiden webhook: ${errorMessage(err).split('\n')[0]}`);
      return 2;
    }
    throw err;
  }
  const logger = hooks.logger ?? jsonLineLogger();
  let connection: Connection;
  try {
    connection = await connectClient(settings.temporal.address, settings.temporal.credentials, env);
  } catch (err) {
    console.error(`ekiden webhook: ${errorMessage(err).split('\n')[0]}`);
    return 1;
  }
  const client = new Client({ connection, namespace: settings.temporal.namespace });
  const calls = new TemporalCalls();
  const server = createWebhookServer({ secret: settings.secret, client, logger, maxBodyBytes: settings.maxBodyBytes, calls });
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
    if (!(await calls.drain(DRAIN_TIMEOUT_MS))) logger.warn('Temporal calls still pending at exit', { pending: calls.inFlight });
    return 0;
  } catch (err) {
    console.error(`ekiden webhook: cannot listen on ${settings.host}:${settings.port}: ${errorMessage(err).split('\n')[0]}`);
    return 1;
  } finally {
    await connection.close();
  }
}
