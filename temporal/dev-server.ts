/**
 * Finds the Temporal CLI and runs its dev server (`temporal server start-dev`): the embedded
 * default for `ekiden up` and the real server every integration test runs against.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTES } from '../core/search-attributes.js';

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
}

export interface DevServer {
  address: string;
  port: number;
  uiUrl?: string;
  namespace: string;
  pid: number;
  /** Stops the server (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL (for durability tests). */
  kill(): void;
  /** Starts it again on the same ports and database file. */
  restart(): Promise<void>;
}

export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const namespace = opts.namespace ?? 'default';
  const port = opts.port ?? (await freePort());
  const ui = opts.ui ?? true;
  const uiPort = ui ? (opts.uiPort ?? (await freePort())) : undefined;
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--namespace', namespace, '--log-level', 'warn'];
  if (uiPort) args.push('--ui-port', String(uiPort), '--ui-ip', '127.0.0.1');
  else args.push('--headless');
  if (opts.dbFile) args.push('--db-filename', opts.dbFile);
  for (const sa of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${sa.name}=${sa.type}`);

  let child: ChildProcess;
  const address = `127.0.0.1:${port}`;
  const launch = async () => {
    if (opts.logFile) mkdirSync(join(opts.logFile, '..'), { recursive: true });
    const out = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
    // Own process group: a terminal's Ctrl-C goes to the caller, which still needs the server
    // while its runners clean up; the caller stops the server last.
    child = spawn(opts.cliPath, args, { stdio: ['ignore', out ? 'pipe' : 'ignore', out ? 'pipe' : 'ignore'], detached: true });
    if (out) {
      child.stdout?.pipe(out);
      child.stderr?.pipe(out);
    }
    const exited = new Promise<never>((_, reject) => {
      child.once('exit', (code, sig) => reject(new Error(`temporal dev server exited early (code ${code}, signal ${sig}); see ${opts.logFile ?? 'its output'}`)));
    });
    exited.catch(() => {});
    await Promise.race([waitForServer(address, namespace, opts.startTimeoutMs ?? 60_000), exited]);
  };
  const stopChild = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await done;
    clearTimeout(timer);
  };
  await launch();
  return {
    address,
    port,
    uiUrl: uiPort ? `http://127.0.0.1:${uiPort}` : undefined,
    namespace,
    get pid() {
      return child.pid ?? -1;
    },
    stop: stopChild,
    kill: () => child.kill('SIGKILL'),
    restart: async () => {
      await stopChild();
      await launch();
    },
  };
}

/** Waits until the frontend answers and the namespace exists. */
export async function waitForServer(address: string, namespace: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
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

