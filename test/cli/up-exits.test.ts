/**
 * `ekiden up` as a hostile user runs it, always as the real process (node bin/ekiden.js,
 * --driver fake): every way out exits, in bounded time, with one line saying why.
 * - usage problems (flags, environment, the data dir) exit 2 before anything starts;
 * - an unreachable Temporal exits 1 with one line;
 * - one owner per data dir: a second `up` exits 1 naming the owner's pid;
 * - SIGKILL leaves no dev server behind; a stale lock is taken over;
 * - SIGINT / SIGTERM during --jobs clean up, print the summary and exit 130 / 143;
 * - a pool that ends under `up` ends `up` with its reason (exit 1).
 */
import { Client, Connection } from '@temporalio/client';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkUpOptions, type UpOptions } from '../../cli/up.js';
import { temporalSkipReason } from '../support/harness.js';
import { waitUntil } from '../support/wait.js';
import { BIN, cleanEnv, devServersUnder, finished, killAll, lines, outputMatches, processesUnder, runEkiden, startEkiden, tempDir } from './ekiden-process.js';

afterEach(killAll);

/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** The single line on stderr (the test fails when there are more). */
function oneLine(stderr: string): string {
  const all = lines(stderr);
  expect(all, stderr).toHaveLength(1);
  return all[0]!;
}

describe('ekiden up: refused before anything starts (exit 2, one line)', () => {
  it.each([
    [['--jobs', '1e9'], /^ekiden: --jobs: "1e9" is not .*1000.*; write/],
    [['--jobs', '0x10'], /^ekiden: --jobs: "0x10" is not .*decimal/],
    [['--jobs', '1001'], /^ekiden: --jobs: "1001" is not .* to 1000\b/],
    [['--pool-size', '100000'], /^ekiden: --pool-size: "100000" is not .* to \d+\b/],
    [['--idle-timeout', '99999999999'], /^ekiden: --idle-timeout: "99999999999" is not .* to 2592000\b/],
    [['--host-id', 'Bad_Host'], /^ekiden: --host-id: "Bad_Host" is not a valid name; use 1-31 lower-case letters/],
    [['--host-id', '../etc'], /^ekiden: --host-id: "\.\.\/etc" is not a valid name/],
    [['--driver', 'tart'], /^ekiden: --driver tart: `ekiden up` has no macOS demo image yet; .* use --driver fake$/],
  ])('up %j', async (flags, message) => {
    const dataDir = join(tempDir('ekiden-up-args-'), 'data');
    const r = await runEkiden(['up', '--driver', 'fake', '--data-dir', dataDir, ...flags], 20_000);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toMatch(message);
    expect(r.seconds).toBeLessThan(10);
    expect(existsSync(dataDir), 'the data dir was created').toBe(false);
  });

  it.each([
    [{ GITHUB_TOKEN: 'ghp_x' }, /^ekiden: GITHUB_TOKEN is set but EKIDEN_GITHUB_SCOPE is not; set it to repo:OWNER\/REPO or org:ORG$/],
    [{ GITHUB_TOKEN: 'ghp_x', EKIDEN_GITHUB_SCOPE: 'nonsense' }, /^ekiden: EKIDEN_GITHUB_SCOPE: "nonsense" is not a scope; write /],
    [{ GITHUB_TOKEN: 'ghp_x', EKIDEN_GITHUB_SCOPE: 'repo:acme/app' }, /^ekiden: --jobs needs the GitHub emulator; unset GITHUB_TOKEN/],
  ])('up --jobs 1 with %j in the environment', async (env, message) => {
    const dataDir = join(tempDir('ekiden-up-env-'), 'data');
    const r = await runEkiden(['up', '--driver', 'fake', '--jobs', '1', '--data-dir', dataDir], 20_000, { env });
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toMatch(message);
    expect(r.stdout).toBe('');
    expect(r.seconds).toBeLessThan(10);
    expect(existsSync(dataDir), 'the data dir was created').toBe(false);
  });

  it("--data-dir '' is refused and writes nothing into the current directory", async () => {
    const cwd = tempDir('ekiden-up-cwd-');
    const r = await runEkiden(['up', '--driver', 'fake', '--jobs', '1', '--data-dir', ''], 20_000, { cwd });
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/^ekiden: (up: )?--data-dir/);
    expect(r.seconds).toBeLessThan(10);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it('a data dir that is a file, or lies below one', async () => {
    const file = join(tempDir('ekiden-up-file-'), 'a-file');
    writeFileSync(file, 'not a directory\n');
    const r = await runEkiden(['up', '--driver', 'fake', '--jobs', '1', '--data-dir', file], 20_000);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toBe(`ekiden: data dir ${file} is a file, not a directory; give a directory (or move the file away)`);
    const below = await runEkiden(['up', '--driver', 'fake', '--jobs', '1', '--data-dir', join(file, 'x', 'y')], 20_000);
    expect(below.code, below.stdout + below.stderr).toBe(2);
    expect(oneLine(below.stderr)).toBe(`ekiden: data dir ${join(file, 'x', 'y')}: ${file} is a file, not a directory; give another directory (or move the file away)`);
    expect(r.seconds).toBeLessThan(10);
  });

  // A read-only mount in a private user + mount namespace: gone with the process, no root needed.
  const canUnshare = spawnSync('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o ro none /tmp && true'], { timeout: 5_000 }).status === 0;
  it.skipIf(!canUnshare)('a data dir on a read-only file system (not a misleading ENOENT)', async () => {
    const mountPoint = tempDir('ekiden-up-ro-');
    for (const dataDir of [mountPoint, join(mountPoint, 'sub', 'dir')]) {
      const started = Date.now();
      const r = spawnSync(
        'unshare',
        ['-rm', 'sh', '-c', 'mount -t tmpfs -o ro none "$1" && shift && exec "$@"', 'sh', mountPoint, process.execPath, BIN, 'up', '--driver', 'fake', '--jobs', '1', '--data-dir', dataDir],
        { encoding: 'utf8', timeout: 20_000, env: cleanEnv() },
      );
      expect(r.status, r.stdout + r.stderr).toBe(2);
      expect(oneLine(r.stderr)).toMatch(new RegExp(`^ekiden: data dir ${dataDir}: cannot create (it|\\S+): the file system is read-only; give a directory on a writable file system with --data-dir$`));
      expect(r.stderr).not.toMatch(/ENOENT/);
      expect((Date.now() - started) / 1000).toBeLessThan(10);
    }
  });

  it('a data dir this user cannot write', async () => {
    const dataDir = tempDir('ekiden-up-noperm-');
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) chmodSync(dataDir, 0o555);
    // As root, run it as nobody: mkdtemp made the directory root's, mode 0700.
    const r = await runEkiden(['up', '--driver', 'fake', '--jobs', '1', '--data-dir', dataDir], 20_000, asRoot ? { uid: 65534, gid: 65534 } : {});
    if (!asRoot) chmodSync(dataDir, 0o755);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toMatch(new RegExp(`^ekiden: data dir ${dataDir}: cannot create ${dataDir}/ekiden.lock: permission denied \\(uid \\d+\\); give a directory this user can write, or fix its permissions$`));
    expect(r.seconds).toBeLessThan(10);
  });
});

describe('checkUpOptions: up() repeats the flag rules for callers other than the CLI parser', () => {
  const base: UpOptions = { driver: 'fake', dataDir: '.ekiden', labels: ['self-hosted'], hostId: 'local' };
  it.each([
    [{ dataDir: '' }, '--data-dir: empty; give a directory'],
    [{ dataDir: '   ' }, '--data-dir: empty; give a directory'],
    [{ hostId: 'Bad_Host' }, /^--host-id: "Bad_Host" is not a valid name/],
    [{ jobs: 1e9 }, /^--jobs: 1000000000 is not a whole number from 1 to 1000/],
    [{ jobs: 0 }, /^--jobs: 0 is not a whole number from 1 to 1000/],
    [{ poolSize: 2.5 }, /^--pool-size: 2\.5 is not a whole number from 1 to/],
    [{ idleTimeoutSeconds: 1e12 }, /^--idle-timeout: 1000000000000 is not a whole number from 1 to 2592000/],
    [{ labels: [] }, '--labels: give at least one label'],
    [{ labels: ['a\u0007b'] }, /^--labels: "a\\u0007b" is not a label \(control characters/],
    [{ driver: 'tart' as const }, /^--driver tart: /],
  ])('%j', (change, message) => {
    expect(() => checkUpOptions({ ...base, ...change })).toThrow(message);
  });

  it('accepts the defaults and the bounds themselves', () => {
    expect(() => checkUpOptions(base)).not.toThrow();
    expect(() => checkUpOptions({ ...base, jobs: 1000, poolSize: 1000, idleTimeoutSeconds: 2_592_000 })).not.toThrow();
  });
});

describe('ekiden up: an unreachable Temporal (exit 1, one line)', () => {
  it('TEMPORAL_ADDRESS on a closed port', async () => {
    const port = await closedPort();
    const dataDir = tempDir('ekiden-up-unreach-');
    const r = await runEkiden(['up', '--driver', 'fake', '--jobs', '1', '--data-dir', dataDir], 30_000, { env: { TEMPORAL_ADDRESS: `127.0.0.1:${port}` } });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(oneLine(r.stderr)).toBe(`ekiden: cannot reach Temporal at 127.0.0.1:${port}: connection refused (is the server running, and is the port right?)`);
    expect(r.stderr).not.toMatch(/tonic/);
    expect(r.seconds).toBeLessThan(15);
    // Nothing was started and the lock is gone.
    expect(existsSync(join(dataDir, 'ekiden.lock'))).toBe(false);
    expect(processesUnder(dataDir)).toEqual([]);
  });

  it('TEMPORAL_ADDRESS naming a host that does not resolve', async () => {
    const dataDir = tempDir('ekiden-up-unreach-');
    const r = await runEkiden(['up', '--driver', 'fake', '--jobs', '1', '--data-dir', dataDir], 30_000, { env: { TEMPORAL_ADDRESS: 'no-such-host.invalid:7233' } });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/^ekiden: cannot reach Temporal at no-such-host\.invalid:7233: dns error/);
    expect(r.seconds).toBeLessThan(15);
  });
});

const skip = temporalSkipReason();

/** The dev server's address from `up`'s output. */
function devServerAddress(out: string): string {
  const m = /temporal: dev server at (\S+),/.exec(out);
  if (!m) throw new Error(`no dev server address in:\n${out}`);
  return m[1]!;
}

describe.skipIf(skip)('ekiden up: one owner per data dir, and nothing outlives it', () => {
  it('a second up on the same data dir exits 1 naming the owner; SIGKILL leaves no dev server; the stale lock is taken over', { timeout: 240_000 }, async () => {
    const dataDir = tempDir('ekiden-up-lock-');
    const first = startEkiden(['up', '--driver', 'fake', '--pool-size', '1', '--data-dir', dataDir]);
    await outputMatches(first, /press Ctrl-C/, 120_000);
    expect(devServersUnder(dataDir)).toHaveLength(1);

    const second = await runEkiden(['up', '--driver', 'fake', '--jobs', '1', '--data-dir', dataDir], 30_000);
    expect(second.code, second.stdout + second.stderr).toBe(1);
    expect(oneLine(second.stderr)).toBe(`ekiden: data dir ${dataDir} is in use by pid ${first.pid}`);
    expect(second.stdout).toBe('');
    expect(second.seconds).toBeLessThan(15);
    // It started nothing: still the first one's server only, and the first one still runs.
    expect(devServersUnder(dataDir)).toHaveLength(1);
    expect(first.proc.exitCode).toBeNull();

    // SIGKILL: no cleanup code runs, yet the dev server goes within seconds.
    first.proc.kill('SIGKILL');
    await first.exited;
    const killedAt = Date.now();
    await waitUntil(() => devServersUnder(dataDir), (left) => left.length === 0, 15_000, 'no dev server left after SIGKILL');
    expect((Date.now() - killedAt) / 1000).toBeLessThan(15);
    // (Its fake guests are the driver's business; the next start reconciles them.)

    // The lock it left names a dead pid: the next up takes it over and runs.
    expect(existsSync(join(dataDir, 'ekiden.lock'))).toBe(true);
    const third = await runEkiden(['up', '--driver', 'fake', '--jobs', '1', '--data-dir', dataDir], 180_000);
    expect(third.code, third.stdout + third.stderr).toBe(0);
    expect(third.stdout).toMatch(/summary: 1\/1 job\(s\) succeeded/);
    expect(existsSync(join(dataDir, 'ekiden.lock')), 'the lock is released at exit').toBe(false);
    expect(devServersUnder(dataDir)).toEqual([]);
  });

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s during --jobs cleans up, prints the summary and exits %i', { timeout: 240_000 }, async (signal, code) => {
    const dataDir = tempDir('ekiden-up-sig-');
    const child = startEkiden(['up', '--driver', 'fake', '--jobs', '200', '--pool-size', '1', '--data-dir', dataDir]);
    await outputMatches(child, /jobs: queued 200 demo job\(s\)/, 120_000);
    const signalledAt = Date.now();
    child.proc.kill(signal);
    const r = await finished(child, 90_000, signalledAt);
    expect(r.timedOut, `still running 90 s after ${signal}:\n${r.stdout}`).toBe(false);
    expect(r.code, r.stdout + r.stderr).toBe(code);
    expect(r.stdout).toMatch(/stopping: cancelling runners/);
    expect(r.stdout).toMatch(new RegExp(`summary: \\d+/200 job\\(s\\) succeeded in [\\d.]+ s \\(interrupted by ${signal}\\)`));
    expect(r.stdout).toMatch(/leftovers: 0 VM\(s\), 0 runner registration\(s\)/);
    expect(r.seconds).toBeLessThan(60);
    expect(processesUnder(dataDir)).toEqual([]);
    expect(existsSync(join(dataDir, 'ekiden.lock'))).toBe(false);
  });

  it.each([
    ['keeping runners warm', [] as string[], /press Ctrl-C/],
    ['running --jobs', ['--jobs', '200', '--pool-size', '1'], /jobs: queued 200/],
  ])('a pool terminated under up %s ends up: exit 1 with the reason, runners cleaned up', { timeout: 240_000 }, async (_what, flags, ready) => {
    const dataDir = tempDir('ekiden-up-pool-');
    const child = startEkiden(['up', '--driver', 'fake', '--data-dir', dataDir, ...flags]);
    await outputMatches(child, ready, 120_000);
    // Let the runners start, so there is something to clean up.
    await waitUntil(() => (existsSync(join(dataDir, 'vms', 'vms')) ? readdirSync(join(dataDir, 'vms', 'vms')).length : 0), (n) => n > 0, 60_000, 'a runner VM');
    const connection = await Connection.connect({ address: devServerAddress(child.out()) });
    try {
      await new Client({ connection }).workflow.getHandle('pool/demo').terminate('by the test');
    } finally {
      await connection.close();
    }
    const terminatedAt = Date.now();
    const r = await finished(child, 90_000, terminatedAt);
    expect(r.timedOut, `still running 90 s after the pool was terminated:\n${r.stdout}`).toBe(false);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(lines(r.stderr).at(-1)).toBe('ekiden: pool pool/demo was terminated: by the test');
    expect(r.stdout).toMatch(/stopping: pool pool\/demo was terminated: by the test; cancelling its runners/);
    expect(r.stdout).not.toMatch(/stopped: every runner cleaned up/);
    expect(r.seconds).toBeLessThan(60);
    expect(readdirSync(join(dataDir, 'vms', 'vms')), 'VMs left').toEqual([]);
    expect(processesUnder(dataDir)).toEqual([]);
  });
});
