/**
 * Finds the Temporal CLI and runs its dev server (`temporal server start-dev`): the embedded
 * default for `ekiden up` and the real server every integration test runs against.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../core/search-attributes.js';
import { errorMessage } from '../core/failures.js';

export const TEMPORAL_CLI_VERSION = 'v1.5.1';
const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

export interface LocateOptions {
  /** `$TEMPORAL_CLI_PATH`, passed in by the caller. */
  explicitPath?: string;
  /** `$PATH`, passed in by the caller. */
  searchPath?: string;
  /** Cache root for the `go install` build, e.g. `~/.cache/ekiden`. */
  cacheDir: string;
  /** Build with `go install` when nothing else is found. */
  allowGoInstall?: boolean;
  log?: (line: string) => void;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function cachedCliPath(cacheDir: string): string {
  return join(cacheDir, `temporal-${TEMPORAL_CLI_VERSION}`, 'temporal');
}

/**
 * The Temporal CLI, looked for in order: explicit path, PATH, the cache, a `go install`
 * into the cache. Returns undefined when none is available (the caller may then fall back
 * to the SDK's download, which needs the internet).
 */
export async function locateTemporalCli(opts: LocateOptions): Promise<string | undefined> {
  const log = opts.log ?? (() => {});
  if (opts.explicitPath) {
    if (await isExecutable(opts.explicitPath)) return opts.explicitPath;
    throw new Error(`TEMPORAL_CLI_PATH: "${opts.explicitPath}" is not an executable file; point it at the temporal binary or unset it`);
  }
  for (const dir of (opts.searchPath ?? '').split(delimiter).filter(Boolean)) {
    const candidate = join(dir, 'temporal');
    if (await isExecutable(candidate)) return candidate;
  }
  const cached = cachedCliPath(opts.cacheDir);
  if (await isExecutable(cached)) return cached;
  if (!opts.allowGoInstall) return undefined;
  try {
    await execa('go', ['version']);
  } catch {
    log('temporal CLI not found and Go is not installed; cannot build it');
    return undefined;
  }
  log(`building the Temporal CLI ${TEMPORAL_CLI_VERSION} with go install (once; cached in ${cached}) …`);
  mkdirSync(join(opts.cacheDir, `temporal-${TEMPORAL_CLI_VERSION}`), { recursive: true });
  await execa('go', ['install', `${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`], {
    env: { GOBIN: join(opts.cacheDir, `temporal-${TEMPORAL_CLI_VERSION}`), GOFLAGS: '-mod=mod' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return (await isExecutable(cached)) ? cached : undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface DevServerOptions {
  cliPath: string;
  port?: number;
  uiPort?: number;
  /** SQLite file; omitted means in-memory (state lost on exit). */
  dbFile?: string;
  namespace?: string;
  logFile?: string;
  /** How long to wait for the server to answer. */
  startTimeoutMs?: number;
  /** Start with the Web UI (default true). */
  ui?: boolean;
  /** Register Ekiden's search attributes at start (default true); false stands for a cluster nobody set up. */
  searchAttributes?: boolean;
}

export interface DevServer {
  address: string;
  port: number;
  uiUrl?: string;
  namespace: string;
  /** The server's own pid (it runs under a supervisor that stops it when this process dies). */
  pid: number;
  /** Stops the server (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL (for durability tests). */
  kill(): void;
  /** Starts it again on the same ports and database file. */
  restart(): Promise<void>;
}

/** How long the server has to exit after SIGTERM before it is killed. */
const STOP_GRACE_MS = 10_000;

/**
 * The dev server's supervisor, run as `node -e SUPERVISOR CLI ARGS…`: it starts the server as
 * its child, reports the server's pid on fd 3, forwards SIGTERM/SIGINT/SIGHUP, and stops the
 * server when its stdin — a pipe from the process that started it — reaches end of file:
 * that happens however that process ends, SIGKILL included, so the server never outlives its
 * owner (Node has no PR_SET_PDEATHSIG). It exits as the server did.
 */
const SUPERVISOR = `
const { spawn } = require('node:child_process');
const { writeSync, closeSync } = require('node:fs');
const [cmd, ...args] = process.argv.slice(1);
const server = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
let killTimer;
const stop = () => {
  if (server.exitCode !== null || server.signalCode !== null) return;
  server.kill('SIGTERM');
  if (!killTimer) killTimer = setTimeout(() => server.kill('SIGKILL'), ${STOP_GRACE_MS});
};
server.once('spawn', () => {
  try { writeSync(3, server.pid + '\\n'); closeSync(3); } catch {}
});
server.once('error', (err) => {
  process.stderr.write('temporal dev server: cannot start ' + cmd + ': ' + err.message + '\\n');
  process.exit(127);
});
server.once('exit', (code, signal) => {
  clearTimeout(killTimer);
  if (signal) {
    process.removeAllListeners(signal);
    try { process.kill(process.pid, signal); } catch {}
    setTimeout(() => process.exit(128), 1000).unref();
  } else process.exit(code ?? 1);
});
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, stop);
process.stdin.on('data', () => {});
process.stdin.on('end', stop);
process.stdin.on('error', stop);
`;

export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const namespace = opts.namespace ?? 'default';
  const port = opts.port ?? (await freePort());
  const ui = opts.ui ?? true;
  const uiPort = ui ? (opts.uiPort ?? (await freePort())) : undefined;
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--namespace', namespace, '--log-level', 'warn'];
  if (uiPort) args.push('--ui-port', String(uiPort), '--ui-ip', '127.0.0.1');
  else args.push('--headless');
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);
  if (opts.searchAttributes !== false) for (const sa of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${sa.name}=${sa.type}`);

  /** The supervisor (see SUPERVISOR); the server is its child, in its process group. */
  let child: ChildProcess | undefined;
  let serverPid = -1;
  const address = `127.0.0.1:${port}`;
  const launch = async () => {
    if (opts.logFile) mkdirSync(dirname(opts.logFile), { recursive: true });
    // The server writes its log straight into the file: it needs nothing of this process.
    const out = opts.logFile ? openSync(opts.logFile, 'a') : 'ignore';
    let proc: ChildProcess;
    try {
      // Own process group: a terminal's Ctrl-C goes to the caller, which still needs the server
      // while its runners clean up; the caller stops the server last. stdin is the lifeline.
      proc = spawn(process.execPath, ['-e', SUPERVISOR, opts.cliPath, ...args], { stdio: ['pipe', out, out, 'pipe'], detached: true });
    } finally {
      if (typeof out === 'number') closeSync(out);
    }
    child = proc;
    // Nothing is written to the lifeline; an EPIPE once the supervisor is gone is expected.
    proc.stdin?.on('error', () => {});
    const exited = new Promise<never>((_, reject) => {
      proc.once('exit', (code, sig) => reject(new Error(`temporal dev server exited early (code ${code}, signal ${sig}); see ${opts.logFile ?? 'its output'}`)));
    });
    exited.catch(() => {});
    const gaveUp = new AbortController();
    exited.catch(() => gaveUp.abort());
    const pidLine = new Promise<number>((resolvePid) => {
      let text = '';
      const pipe = proc.stdio[3] as Readable | null;
      pipe?.setEncoding('utf8');
      pipe?.on('data', (d: string) => {
        text += d;
        if (text.includes('\n')) {
          pipe.destroy();
          resolvePid(Number(text.trim()));
        }
      });
      pipe?.on('error', () => {});
    });
    serverPid = await Promise.race([pidLine, exited]);
    await Promise.race([waitForServer(address, namespace, opts.startTimeoutMs ?? 60_000, gaveUp.signal), exited]).catch(async (err: unknown) => {
      gaveUp.abort();
      await stopChild();
      throw err;
    });
  };
  const killGroup = (proc: ChildProcess) => {
    try {
      if (proc.pid) process.kill(-proc.pid, 'SIGKILL');
    } catch {
      proc.kill('SIGKILL');
    }
  };
  const stopChild = async () => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const done = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    // The supervisor kills the server after its own grace; this is for a supervisor that hangs.
    const timer = setTimeout(() => killGroup(proc), STOP_GRACE_MS + 5_000);
    await done;
    clearTimeout(timer);
    proc.stdin?.destroy();
  };
  await launch();
  return {
    address,
    port,
    uiUrl: uiPort ? `http://127.0.0.1:${uiPort}` : undefined,
    namespace,
    get pid() {
      return serverPid;
    },
    stop: stopChild,
    kill: () => {
      if (child) killGroup(child);
    },
    restart: async () => {
      await stopChild();
      await launch();
    },
  };
}

/**
 * Why `address` could not be reached, in a few words, from the SDK's error: e.g.
 * "connection refused", "dns error: failed to lookup address information: …" instead of a
 * raw `tonic::transport::Error(…)`.
 */
export function unreachableReason(err: unknown): string {
  const msg = errorMessage(err).replace(/\s+/g, ' ').trim();
  const kind = /ConnectError\("([^"]+)"/.exec(msg)?.[1];
  const os = /Os \{[^}]*message: "([^"]+)"/.exec(msg)?.[1];
  const custom = /error: "([^"]+)"/.exec(msg)?.[1];
  if (os && /connection refused/i.test(os)) return 'connection refused (is the server running, and is the port right?)';
  if (kind) return [kind, os ?? custom].filter(Boolean).join(': ');
  return msg.replace(/^fn \S+: /, '').replace(/^tonic::transport::Error\(/, '').slice(0, 300);
}

/** The one line for a Temporal server that cannot be reached. */
export function cannotReachTemporal(address: string, err: unknown): Error {
  return new Error(`cannot reach Temporal at ${address}: ${unreachableReason(err)}`, { cause: err });
}

/** Waits until the frontend answers and the namespace exists (or `signal` gives up). */
export async function waitForServer(address: string, namespace: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (signal?.aborted) throw new Error(`stopped waiting for the Temporal server at ${address}`);
    try {
      const conn = await Connection.connect({ address, connectTimeout: 2_000 });
      try {
        await conn.workflowService.describeNamespace({ namespace });
        return;
      } finally {
        await conn.close();
      }
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`Temporal server at ${address} did not become ready within ${timeoutMs} ms`, { cause: lastError });
}

export function defaultCacheDir(env: { XDG_CACHE_HOME?: string; HOME?: string }): string {
  const base = env.XDG_CACHE_HOME ?? (env.HOME ? join(env.HOME, '.cache') : '/tmp');
  return join(base, 'ekiden');
}

