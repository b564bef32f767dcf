/**
 * The operator CLI's connection to Temporal: which server and namespace (flags, else the
 * config file's `temporal` section, else TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, else the
 * local default), reached with a short timeout so an unreachable server is one clear line;
 * and the calls the verbs make through it: listing open workflows of a type, a deadline on a
 * query or update, and the one line that explains a failed call.
 */
import { Client, type Connection, type WorkflowExecutionInfo } from '@temporalio/client';
import { connect as tcpConnect } from 'node:net';
import { DEFAULT_TEMPORAL_PORT, nameTextProblem, splitAddress, type TemporalSettings } from '../config/fleet.js';
import { CliError, firstLine, UsageError } from './errors.js';
import { ConfigError } from '../config/fields.js';
import { connectClient, credentialsFromSettings, profileFromEnv, type TemporalCredentials } from '../temporal/connect.js';
import { grpcCode } from '../temporal/namespace-setup.js';

export const DEFAULT_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_NAMESPACE = 'default';
export const CONNECT_TIMEOUT_MS = 5_000;
/** How long a query may take before its row shows an error instead (a workflow nobody serves). */
export const QUERY_TIMEOUT_MS = 5_000;

export interface TemporalTarget {
  address: string;
  namespace: string;
  /** TLS and API key, from the config file's temporal section or a client-config profile; read when connecting. */
  credentials?: TemporalCredentials;
}

export function resolveTarget(
  flags: { address?: string; namespace?: string },
  file: TemporalSettings | undefined,
  env: Record<string, string | undefined>,
): TemporalTarget {
  // The file's credentials when it has any, else a client-config profile's (TEMPORAL_PROFILE, TEMPORAL_TLS_*, …).
  const fileCredentials = file && (file.tls || file.apiKeyEnv) ? credentialsFromSettings(file) : undefined;
  const profile = fileCredentials ? undefined : profileFromEnv(env);
  const [address, source] = flags.address
    ? [flags.address, '--address']
    : file?.address
      ? // A file's own address was checked when it was parsed; one it took from the environment was not.
        [file.address, 'TEMPORAL_ADDRESS']
      : profile?.address
        ? [profile.address, env.TEMPORAL_ADDRESS ? 'TEMPORAL_ADDRESS' : 'the Temporal client config']
        : env.TEMPORAL_ADDRESS
          ? [env.TEMPORAL_ADDRESS, 'TEMPORAL_ADDRESS']
          : [DEFAULT_ADDRESS, 'default'];
  if (!splitAddress(address)) throw new UsageError(`${source}: "${address}" is not HOST:PORT; write e.g. ${DEFAULT_ADDRESS}`);
  // A file's namespace was checked when it was parsed (one it took from the environment too).
  const [namespace, nsSource] = flags.namespace
    ? [flags.namespace, '--namespace']
    : file?.namespace
      ? [file.namespace, undefined]
      : profile?.namespace
        ? [profile.namespace, env.TEMPORAL_NAMESPACE ? 'TEMPORAL_NAMESPACE' : 'the Temporal client config']
        : [env.TEMPORAL_NAMESPACE || DEFAULT_NAMESPACE, 'TEMPORAL_NAMESPACE'];
  const problem = nsSource === undefined ? undefined : nameTextProblem(nsSource, namespace, 'a namespace name');
  if (problem) throw new UsageError(problem);
  const credentials = fileCredentials ?? profile?.credentials;
  // An API key named by variable is looked up now: an empty one is a mistake found before anything is contacted.
  if (credentials?.apiKey && 'env' in credentials.apiKey) {
    const value = env[credentials.apiKey.env];
    if (!value) throw new UsageError(`${credentials.apiKey.setting}: environment variable ${credentials.apiKey.env} is empty; export the Temporal API key there`);
    credentials.apiKey = { value, setting: `${credentials.apiKey.setting} (${credentials.apiKey.env})` };
  }
  return { address, namespace, ...(credentials && (credentials.tls || credentials.apiKey || credentials.metadata) ? { credentials } : {}) };
}

export interface TemporalSession {
  target: TemporalTarget;
  connection: Connection;
  client: Client;
  close(): Promise<void>;
}

/** A plain TCP connect first: a refused port or an unknown host fails at once, with its reason. */
function probe(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs / 1000}s`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      const reasons: Record<string, string> = {
        ECONNREFUSED: 'connection refused (is the server running?)',
        ENOTFOUND: `unknown host ${host}`,
        EAI_AGAIN: `cannot resolve ${host} right now`,
        EHOSTUNREACH: 'host unreachable',
        ENETUNREACH: 'network unreachable',
        ETIMEDOUT: 'timed out',
      };
      reject(new Error(reasons[err.code ?? ''] ?? err.message));
    });
  });
}

export async function connectTemporal(target: TemporalTarget, timeoutMs = CONNECT_TIMEOUT_MS): Promise<TemporalSession> {
  const { host, port } = splitAddress(target.address) ?? { host: target.address, port: DEFAULT_TEMPORAL_PORT };
  let connection: Connection;
  try {
    await probe(host, port, timeoutMs);
  } catch (err) {
    throw new CliError(`cannot reach Temporal at ${target.address}: ${firstLine(err)}`);
  }
  try {
    connection = await connectClient(target.address, target.credentials ?? {}, {}, { timeoutMs });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new CliError(firstLine(err));
  }
  const client = new Client({ connection, namespace: target.namespace });
  return { target, connection, client, close: () => connection.close() };
}

/** The running workflows of `type` (and the `extra` visibility condition), sorted by workflow id. */
export async function listOpen(session: TemporalSession, type: string, extra = ''): Promise<WorkflowExecutionInfo[]> {
  const found: WorkflowExecutionInfo[] = [];
  for await (const info of session.client.workflow.list({ query: `WorkflowType = '${type}' AND ExecutionStatus = 'Running'${extra}` })) found.push(info);
  return found.sort((a, b) => a.workflowId.localeCompare(b.workflowId));
}

/** The one line for a failed query or update that had `timeoutMs` to answer. */
export function explain(err: unknown, timeoutMs: number): string {
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

/**
 * `fn`'s calls on the session's connection, with a deadline `ms` from now. A call still open at the
 * deadline fails as DEADLINE_EXCEEDED (4) — or as CANCELLED (1) when several calls share the
 * connection and another's deadline cancelled it; both mean "no answer in time" and are reported as
 * one error with code 4, so `explain` says so whichever the server sent.
 */
export async function withTimeout<T>(session: TemporalSession, ms: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ms;
  try {
    return await session.connection.withDeadline(deadline, fn);
  } catch (err) {
    const code = grpcCode(err);
    if ((code === 1 || code === 4) && Date.now() >= deadline - 50) {
      throw Object.assign(new Error(`no answer within ${ms / 1000}s`, { cause: err }), { code: 4 });
    }
    throw err;
  }
}
