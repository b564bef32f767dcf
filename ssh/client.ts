/**
 * SSH into guests (every driver, real VMs): connect with a pinned host key, wait for a
 * booting guest's SSH server, run commands. Built on ssh2; every call opens its own
 * connection and closes it, so nothing outlives the call but the remote processes.
 * An endpoint without `hostKeySha256` accepts any host key: callers pin the key the first
 * connection saw (waitForSsh returns it; see host/host-keys.ts) and pass it from then on.
 * Depends on no Temporal package: the fake driver's tests run it outside the SDK.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import type { SshEndpoint } from '../drivers/types.js';

export type SshErrorCode = 'timeout' | 'auth' | 'host-key-mismatch' | 'connect' | 'aborted' | 'failed';

export class SshError extends Error {
  override readonly name = 'SshError';
  readonly code: SshErrorCode;
  constructor(code: SshErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** OpenSSH-style fingerprint of a public key blob: `SHA256:<unpadded base64>`. */
export function hostKeyFingerprint(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** Compares fingerprints written with or without the `SHA256:` prefix and `=` padding. */
export function sameFingerprint(a: string, b: string): boolean {
  const norm = (s: string) => s.trim().replace(/^SHA256:/i, '').replace(/=+$/, '');
  return norm(a) === norm(b);
}

/** Connect+handshake+auth budget when the caller gives no deadline. */
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;

function where(endpoint: SshEndpoint): string {
  return `${endpoint.username}@${endpoint.host}:${endpoint.port}`;
}

function abortError(endpoint: SshEndpoint, signal: AbortSignal): SshError {
  return new SshError('aborted', `ssh ${where(endpoint)}: aborted`, { cause: signal.reason });
}

interface Connection {
  client: ssh2.Client;
  hostKeySha256: string;
}

/**
 * Opens one authenticated connection. Rejects with an SshError; on a host key that does not
 * match `endpoint.hostKeySha256` the handshake stops before any credential is sent.
 */
function connect(endpoint: SshEndpoint, timeoutMs: number, signal?: AbortSignal): Promise<Connection> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(endpoint, signal));
      return;
    }
    const client = new ssh2.Client();
    let seenKey: string | undefined;
    let mismatch = false;
    let settled = false;
    const finish = (err: SshError | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        client.removeAllListeners('ready');
        client.on('error', () => {});
        client.destroy();
        reject(err);
      } else {
        resolve({ client, hostKeySha256: seenKey ?? '' });
      }
    };
    const onAbort = () => finish(abortError(endpoint, signal!));
    const timer = setTimeout(
      () => finish(new SshError('timeout', `ssh ${where(endpoint)}: no session within ${timeoutMs} ms`)),
      timeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });

    client.on('ready', () => finish(undefined));
    client.on('error', (err: Error & { level?: string; code?: string }) => {
      if (mismatch) {
        finish(
          new SshError(
            'host-key-mismatch',
            `ssh ${where(endpoint)}: host key ${seenKey} is not the one pinned for this VM (${endpoint.hostKeySha256}); refusing to connect`,
            { cause: err },
          ),
        );
      } else if (err.level === 'client-authentication') {
        finish(new SshError('auth', `ssh ${where(endpoint)}: authentication failed`, { cause: err }));
      } else if (err.level === 'client-timeout') {
        finish(new SshError('timeout', `ssh ${where(endpoint)}: handshake timed out`, { cause: err }));
      } else {
        finish(new SshError('connect', `ssh ${where(endpoint)}: ${err.code ?? err.message}`, { cause: err }));
      }
    });
    client.on('close', () => finish(new SshError('connect', `ssh ${where(endpoint)}: connection closed before ready`)));

    const config: ConnectConfig = {
      host: endpoint.host,
      port: endpoint.port,
      username: endpoint.username,
      readyTimeout: Math.max(1, timeoutMs),
      tryKeyboard: false,
      // Detect a guest that vanished (VM killed) during a long command.
      keepaliveInterval: 10_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer): boolean => {
        seenKey = hostKeyFingerprint(key);
        if (endpoint.hostKeySha256 && !sameFingerprint(seenKey, endpoint.hostKeySha256)) {
          mismatch = true;
          return false;
        }
        return true;
      },
    };
    if (endpoint.privateKey) config.privateKey = endpoint.privateKey;
    if (endpoint.password !== undefined) config.password = endpoint.password;
    try {
      client.connect(config);
      // The handshake is many small round trips: Nagle + delayed ACKs would add ~40 ms to each.
      client.setNoDelay(true);
    } catch (err) {
      // ssh2 throws synchronously on unusable config, e.g. an unparsable private key.
      finish(new SshError('auth', `ssh ${where(endpoint)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
    }
  });
}

/**
 * Retries connect+auth until the guest's SSH server lets us in or `timeoutMs` passes. A host
 * key mismatch fails at once (never retried); abort ends the wait promptly.
 * Returns the host key seen, for pinning when the endpoint carried none.
 */
export async function waitForSsh(args: {
  endpoint: SshEndpoint;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Pause between attempts (default 500 ms). */
  intervalMs?: number;
}): Promise<{ hostKeySha256: string }> {
  const { endpoint, timeoutMs, signal, intervalMs = 500 } = args;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    try {
      // Each attempt gets at most 10 s, so one stuck handshake cannot eat the whole budget.
      const { client, hostKeySha256 } = await connect(endpoint, Math.min(remaining, 10_000), signal);
      client.end();
      return { hostKeySha256 };
    } catch (err) {
      if (err instanceof SshError && (err.code === 'host-key-mismatch' || err.code === 'aborted')) throw err;
      // An attempt cut short by the deadline says less than the failure before it.
      if (!(lastError && err instanceof SshError && err.code === 'timeout')) lastError = err;
    }
    const pause = Math.min(intervalMs, deadline - Date.now());
    if (pause > 0) {
      try {
        await sleep(pause, undefined, { signal });
      } catch {
        throw abortError(endpoint, signal!);
      }
    }
  }
  throw new SshError('timeout', `ssh ${where(endpoint)}: not reachable within ${timeoutMs} ms`, { cause: lastError });
}

export interface SshExecResult {
  /** Remote exit status; null when the command was ended by a signal (or reported none). */
  exitCode: number | null;
  /** Signal that ended the command, e.g. `SIGTERM`. */
  signal?: string;
  stdout: string;
  stderr: string;
}

export interface SshExecArgs {
  endpoint: SshEndpoint;
  /** Command line, run by the guest user's shell. Never put secrets here: send them on stdin. */
  command: string;
  stdin?: string | Buffer;
  /** Sent as SSH `env` requests (OpenSSH only honours names in its AcceptEnv). */
  env?: Record<string, string>;
  /** Deadline for connect plus command. On expiry the command gets SIGKILL (where the server
   * supports signal requests) and the connection is closed. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Runs one command and streams its output to the callbacks (for large or binary output).
 * A non-zero exit status is a result, not an error.
 */
export async function sshExecStream(
  args: SshExecArgs & { onStdout: (chunk: Buffer) => void; onStderr?: (chunk: Buffer) => void },
): Promise<{ exitCode: number | null; signal?: string }> {
  const { endpoint, command, stdin, env, timeoutMs, signal } = args;
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  const connectBudget = Math.min(DEFAULT_CONNECT_TIMEOUT_MS, timeoutMs ?? Infinity);
  const { client } = await connect(endpoint, connectBudget, signal);
  let channel: ClientChannel | undefined;
  let execPending = false;
  let abandoned = false;
  const hangUp = () => {
    client.end();
    // A peer that never answers our disconnect must not keep the socket open.
    setTimeout(() => client.destroy(), 1000).unref();
  };
  try {
    return await new Promise((resolve, reject) => {
      let settled = false;
      let exit: { exitCode: number | null; signal?: string } | undefined;
      const finish = (err: SshError | undefined) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          abandoned = true;
          killRemote(channel);
          reject(err);
        } else resolve(exit ?? { exitCode: null });
      };
      const onAbort = () => finish(abortError(endpoint, signal!));
      const remaining = deadline === undefined ? undefined : deadline - Date.now();
      const timer =
        remaining === undefined
          ? undefined
          : setTimeout(
              () => finish(new SshError('timeout', `ssh ${where(endpoint)}: command did not finish within ${timeoutMs} ms`)),
              Math.max(0, remaining),
            );
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      client.on('error', (err: Error) =>
        finish(new SshError('connect', `ssh ${where(endpoint)}: connection lost`, { cause: err })),
      );
      client.on('close', () => finish(new SshError('connect', `ssh ${where(endpoint)}: connection closed during command`)));

      execPending = true;
      client.exec(command, env ? { env } : {}, (err, stream) => {
        execPending = false;
        if (abandoned) {
          // We gave up while the exec request was in flight: kill what it started, then hang up.
          if (!err) killRemote(stream);
          hangUp();
          return;
        }
        if (err) {
          finish(new SshError('failed', `ssh ${where(endpoint)}: exec refused`, { cause: err }));
          return;
        }
        channel = stream;
        stream.on('data', (chunk: Buffer) => args.onStdout(chunk));
        stream.stderr.on('data', (chunk: Buffer) => args.onStderr?.(chunk));
        stream.on('exit', (code: number | null, sig?: string) => {
          exit = code === null || code === undefined ? { exitCode: null, ...(sig ? { signal: sig } : {}) } : { exitCode: code };
        });
        stream.on('close', () => finish(undefined));
        stream.on('error', (e: Error) =>
          finish(new SshError('failed', `ssh ${where(endpoint)}: channel error`, { cause: e })),
        );
        if (stdin !== undefined) stream.end(stdin);
        else stream.end();
      });
    });
  } finally {
    if (!execPending) hangUp();
    else setTimeout(hangUp, 2_000).unref(); // the exec callback hangs up sooner
  }
}

/**
 * Best effort: ask the server to SIGKILL the command (a "signal" request; servers may ignore
 * it). ssh2's public `signal()` refuses once our side sent EOF (always, here: stdin is ended at
 * once), though the protocol allows requests after EOF; so the request goes out through
 * ssh2's protocol object when it is there.
 */
function killRemote(channel: ClientChannel | undefined): void {
  if (!channel) return;
  const internals = channel as unknown as {
    outgoing?: { id?: number; state?: string };
    _client?: { _protocol?: { signal?: (id: number, name: string) => void } };
  };
  try {
    const proto = internals._client?._protocol;
    const id = internals.outgoing?.id;
    const state = internals.outgoing?.state;
    if ((state === 'open' || state === 'eof') && id !== undefined && typeof proto?.signal === 'function') {
      proto.signal(id, 'KILL');
    } else {
      channel.signal('KILL');
    }
  } catch {
    // channel already closed
  }
}

/** Runs one command and collects its output (UTF-8). */
export async function sshExec(args: SshExecArgs): Promise<SshExecResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const result = await sshExecStream({ ...args, onStdout: (c) => out.push(c), onStderr: (c) => err.push(c) });
  return { ...result, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}
