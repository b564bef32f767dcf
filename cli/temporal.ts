/**
 * The operator CLI's connection to Temporal: which server and namespace (flags, else the
 * config file's `temporal` section, else TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, else the
 * local default), reached with a short timeout so an unreachable server is one clear line.
 */
import { Client, Connection } from '@temporalio/client';
import { connect as tcpConnect } from 'node:net';
import { DEFAULT_TEMPORAL_PORT, splitAddress, type TemporalSettings } from '../config/fleet.js';
import { CliError, firstLine, UsageError } from './errors.js';

export const DEFAULT_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_NAMESPACE = 'default';
export const CONNECT_TIMEOUT_MS = 5_000;

export interface TemporalTarget {
  address: string;
  namespace: string;
}

export function resolveTarget(
  flags: { address?: string; namespace?: string },
  file: TemporalSettings | undefined,
  env: Record<string, string | undefined>,
): TemporalTarget {
  const [address, source] = flags.address
    ? [flags.address, '--address']
    : file?.address
      ? // A file's own address was checked when it was parsed; one it took from the environment was not.
        [file.address, 'TEMPORAL_ADDRESS']
      : env.TEMPORAL_ADDRESS
        ? [env.TEMPORAL_ADDRESS, 'TEMPORAL_ADDRESS']
        : [DEFAULT_ADDRESS, 'default'];
  if (!splitAddress(address)) throw new UsageError(`${source}: "${address}" is not HOST:PORT; write e.g. ${DEFAULT_ADDRESS}`);
  return { address, namespace: flags.namespace || file?.namespace || env.TEMPORAL_NAMESPACE || DEFAULT_NAMESPACE };
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
    connection = await Connection.connect({ address: target.address, connectTimeout: timeoutMs });
  } catch (err) {
    throw new CliError(`cannot reach Temporal at ${target.address}: ${firstLine(err)}`);
  }
  const client = new Client({ connection, namespace: target.namespace });
  return { target, connection, client, close: () => connection.close() };
}
