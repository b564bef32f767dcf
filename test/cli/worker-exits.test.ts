/**
 * `ekiden worker` as the real process: problems found before anything is contacted exit 2
 * with one line (a data dir that is a file, a tart driver on Linux), an unreachable Temporal
 * exits 1 with one line, and one host's data dir has one worker: a second exits 1 naming the
 * first's pid, and the first still drains and exits on SIGTERM, releasing the lock.
 */
import { execa } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { ROOT, temporalSkipReason } from '../support/harness.js';
import { finished, killAll, lines, runEkiden, startEkiden, tempDir } from './ekiden-process.js';

afterEach(killAll);

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** A single-host worker config; GitHub points at a closed port (reconciliation only warns). */
function workerConfig(dir: string, opts: { address: string; dataDir: string; hostId?: string; driver?: string }): string {
  const file = join(dir, `worker-${Math.random().toString(36).slice(2)}.yaml`);
  const driver = opts.driver ?? `{ kind: fake, root: "${join(opts.dataDir, 'vms')}", images: {} }`;
  writeFileSync(
    file,
    `temporal: { address: "${opts.address}", taskQueue: "ekiden-worker-exits-${Math.random().toString(36).slice(2, 8)}" }
github: { scope: "repo:acme/app", apiUrl: "http://127.0.0.1:9", auth: { tokenEnv: GITHUB_TOKEN } }
host: { id: ${opts.hostId ?? 'w1'}, dataDir: "${opts.dataDir}" }
driver: ${driver}
`,
  );
  return file;
}

function oneLine(stderr: string): string {
  const all = lines(stderr);
  expect(all, stderr).toHaveLength(1);
  return all[0]!;
}

const TOKEN_ENV = { GITHUB_TOKEN: 'ghp_worker_exits' };

describe('ekiden worker: refused or failing at once, one line', () => {
  it('an unreachable Temporal exits 1', async () => {
    const dir = tempDir('ekiden-worker-unreach-');
    const port = await closedPort();
    const config = workerConfig(dir, { address: `127.0.0.1:${port}`, dataDir: join(dir, 'host') });
    const r = await runEkiden(['worker', '--config', config], 30_000, { env: TOKEN_ENV });
    expect(r.code, r.stderr).toBe(1);
    expect(oneLine(r.stderr)).toBe(`ekiden: cannot reach Temporal at 127.0.0.1:${port}: connection refused (is the server running, and is the port right?)`);
    expect(r.seconds).toBeLessThan(15);
    expect(existsSync(join(dir, 'host', 'ekiden.lock')), 'the lock is released').toBe(false);
  });

  it('a data dir that is a file exits 2', async () => {
    const dir = tempDir('ekiden-worker-file-');
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const config = workerConfig(dir, { address: '127.0.0.1:7233', dataDir: file });
    const r = await runEkiden(['worker', '--config', config], 30_000, { env: TOKEN_ENV });
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toBe(`ekiden worker: data dir ${file} is a file, not a directory; give a directory (or move the file away)`);
    expect(r.seconds).toBeLessThan(10);
  });

  it.skipIf(process.platform === 'darwin')('a tart driver on Linux exits 2 before connecting', async () => {
    const dir = tempDir('ekiden-worker-tart-');
    const port = await closedPort();
    const config = workerConfig(dir, { address: `127.0.0.1:${port}`, dataDir: join(dir, 'host'), driver: `{ kind: tart, root: "${join(dir, 'vms')}" }` });
    const r = await runEkiden(['worker', '--config', config], 30_000, { env: TOKEN_ENV });
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toBe(`ekiden worker: driver: tart runs on macOS only (this host is ${process.platform}); use the qemu or fake driver here`);
    expect(r.seconds).toBeLessThan(10);
  });

  it('a registry password variable that is not set exits 2 before connecting, naming the setting', async () => {
    const dir = tempDir('ekiden-worker-registry-');
    const port = await closedPort();
    const config = workerConfig(dir, { address: `127.0.0.1:${port}`, dataDir: join(dir, 'host') });
    writeFileSync(config, `${readFileSync(config, 'utf8')}registry: { url: "https://registry.test:5000", username: ci, passwordEnv: EKIDEN_TEST_REGISTRY_PASSWORD }\n`);
    const r = await runEkiden(['worker', '--config', config], 30_000, { env: TOKEN_ENV });
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toBe('ekiden worker: registry.passwordEnv: environment variable EKIDEN_TEST_REGISTRY_PASSWORD is empty; export the registry password there');
    expect(r.seconds).toBeLessThan(10);
    expect(existsSync(join(dir, 'host', 'ekiden.lock')), 'nothing claimed').toBe(false);
  });
});

const skip = temporalSkipReason();

describe.skipIf(skip)('ekiden worker: one worker per host data dir', () => {
  it('a second worker for the same host exits 1 naming the first; the first drains on SIGTERM and releases the lock', { timeout: 120_000 }, async () => {
    const dir = tempDir('ekiden-worker-lock-');
    const dataDir = join(dir, 'host');
    const config = workerConfig(dir, { address: inject('temporalAddress'), dataDir, hostId: 'lock-test' });
    const first = startEkiden(['worker', '--config', config], { env: TOKEN_ENV });
    const deadline = Date.now() + 60_000;
    while (!first.err().includes('"host worker running"') && first.proc.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(first.err(), 'the first worker is running').toContain('"host worker running"');

    const second = await runEkiden(['worker', '--config', config], 30_000, { env: TOKEN_ENV });
    expect(second.code, second.stderr).toBe(1);
    expect(oneLine(second.stderr)).toBe(`ekiden: data dir ${dataDir} is in use by pid ${first.pid}`);
    expect(second.seconds).toBeLessThan(10);
    expect(first.proc.exitCode).toBeNull();

    const stoppedAt = Date.now();
    first.proc.kill('SIGTERM');
    const r = await finished(first, 60_000, stoppedAt);
    expect(r.timedOut).toBe(false);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(existsSync(join(dataDir, 'ekiden.lock')), 'the lock is released').toBe(false);
  });
});

describe.skipIf(skip)('a host worker that cannot be made', () => {
  it('releases the Temporal worker it had already made, so the process exits', { timeout: 60_000 }, async () => {
    // The host queue's worker is created first; the shared one then fails (no workflow bundle).
    // A created Worker that is never run keeps the native runtime, and the process, alive.
    const dir = tempDir('ekiden-worker-half-');
    const script = join(dir, 'half.mjs');
    const dist = (p: string) => JSON.stringify(join(ROOT, 'dist', p));
    writeFileSync(
      script,
      `import { NativeConnection } from ${JSON.stringify(createRequire(import.meta.url).resolve('@temporalio/worker'))};
import { createHostWorker } from ${dist('workers/host-worker.js')};
import { createDriver } from ${dist('drivers/index.js')};
const connection = await NativeConnection.connect({ address: process.env.ADDRESS });
try {
  await createHostWorker({
    connection, namespace: 'default', hostId: 'half-made', sharedTaskQueue: 'ekiden-half-made',
    driver: createDriver({ kind: 'fake', root: ${JSON.stringify(join(dir, 'vms'))}, images: {} }),
    github: {}, githubRunnerUrl: 'http://127.0.0.1:9', dataDir: ${JSON.stringify(join(dir, 'host'))},
    workflowBundlePath: ${JSON.stringify(join(dir, 'no-such-bundle.js'))},
  });
  console.log('created');
} catch (err) {
  console.log('refused: ' + (err instanceof Error ? err.message.split('\\n')[0] : String(err)));
  process.exitCode = 3;
} finally {
  await connection.close();
}
`,
    );
    const r = await execa(process.execPath, [script], { cwd: ROOT, env: { ADDRESS: inject('temporalAddress') }, reject: false, timeout: 40_000 });
    expect(r.timedOut, 'the process exits on its own').toBe(false);
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stdout).toMatch(/^refused: /);
  });
});
