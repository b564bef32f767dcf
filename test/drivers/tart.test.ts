/**
 * TartDriver against the tart TEST DOUBLE in test/doubles/tart (no macOS here): commands,
 * exit-code mapping, idempotency, Apple's VM limit, TART_HOME, secrets kept off argv, and one
 * real SSH session into the double's "guest". The double itself is checked to reject what
 * tart rejects.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runToken, vmName } from '../../core/names.js';
import { TartDriver, type TartDriverOptions } from '../../drivers/tart.js';
import { sshExec, waitForSsh } from '../../ssh/client.js';
import { isLivePid, waitFor } from './fake-fixture.js';
import { driverError, rejection } from '../support/rejections.js';

const DOUBLE = fileURLToPath(new URL('../doubles/tart/tart', import.meta.url));
const IMAGE = 'registry.test/ekiden/macos-runner:latest';
const PRIVATE_IMAGE = 'registry.test/ekiden/private:1';
const INSECURE_IMAGE = 'insecure.test/ekiden/macos:1';
const REGISTRY_USER = 'robot';
const REGISTRY_SECRET = `reg-SECRET-${randomBytes(6).toString('hex')}`;
const SSH_SECRET = `ssh-SECRET-${randomBytes(6).toString('hex')}`;

let dir: string;
let registry: string;
let argvLog: string;
const homes: string[] = [];
const drivers: TartDriver[] = [];

async function writeImage(at: string, guest: Record<string, unknown> = { username: 'admin', password: 'admin' }): Promise<void> {
  await mkdir(at, { recursive: true });
  const config = {
    version: 1,
    os: 'darwin',
    arch: 'arm64',
    cpuCountMin: 2,
    cpuCount: 4,
    memorySizeMin: 4 * 1024 ** 3,
    memorySize: 8 * 1024 ** 3,
    macAddress: '7a:12:34:56:78:9a',
    display: { width: 1024, height: 768 },
  };
  await writeFile(join(at, 'config.json'), JSON.stringify(config));
  await writeFile(join(at, 'disk.img'), JSON.stringify({ sizeGB: 50, guest }));
  await writeFile(join(at, 'nvram.bin'), randomBytes(64));
}

function name(): string {
  return vmName({ pool: 'tt', token: runToken(randomUUID()), attempt: 1 });
}

function doubleEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    TART_DOUBLE_REGISTRY_DIR: registry,
    TART_DOUBLE_BOOT_MS: '100',
    TART_DOUBLE_LIMIT_DELAY_MS: '150',
    TART_DOUBLE_ARGV_LOG: argvLog,
    ...extra,
  };
}

/** A driver on its own TART_HOME (or a given one). */
async function host(opts: Partial<TartDriverOptions> & { home?: string; doubleEnv?: Record<string, string> } = {}) {
  const home = opts.home ?? (await mkdtemp(join(dir, 'home-')));
  if (!homes.includes(home)) homes.push(home);
  const driver = new TartDriver({
    tartBinary: DOUBLE,
    tartHome: home,
    logDir: join(home, '..', `${home.split('/').pop()}-logs`),
    stateDir: join(home, '..', `${home.split('/').pop()}-state`),
    capacityWindowMs: 1_000,
    stopTimeoutMs: 5_000,
    // The double's guests serve SSH on a loopback port they record, not on 22.
    sshPortFor: async (vm) => (JSON.parse(await readFile(join(home, 'vms', vm, 'double-guest.json'), 'utf8')) as { sshPort: number }).sshPort,
    ...opts,
    env: { ...doubleEnv(opts.doubleEnv), ...opts.env },
  });
  drivers.push(driver);
  return { home, driver };
}

/** Runs the double directly, as an operator would run tart. */
function tart(home: string, args: string[], env: Record<string, string> = {}) {
  return execa(DOUBLE, args, { env: { TART_HOME: home, ...doubleEnv(), ...env }, reject: false });
}

function proc(pid: string, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`).toString('utf8');
  } catch {
    return undefined;
  }
}

/** Live processes of the double working on `home` (by their TART_HOME). */
function doublePids(home: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const cmd = proc(pid, 'cmdline');
    if (!cmd?.includes('ekiden-tart-double')) continue;
    if (proc(pid, 'environ')?.split('\0').includes(`TART_HOME=${home}`) && isLivePid(Number(pid))) out.push(Number(pid));
  }
  return out;
}

/** Live `tart run <vm>` processes of the double. */
function runPids(vm: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      const argv = proc(p, 'cmdline')?.split('\0') ?? [];
      const at = argv.indexOf('run');
      return argv.some((a) => a.includes('ekiden-tart-double')) && at >= 0 && argv[at + 1] === vm;
    })
    .map(Number)
    .filter(isLivePid);
}

async function tartGet(home: string, vm: string): Promise<{ CPU: number; Memory: number; State: string }> {
  const r = await tart(home, ['get', vm, '--format', 'json']);
  expect(r.exitCode).toBe(0);
  return JSON.parse(r.stdout) as { CPU: number; Memory: number; State: string };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ekiden-tart-'));
  registry = join(dir, 'registry');
  argvLog = join(dir, 'argv.log');
  await writeImage(join(registry, 'registry.test', 'ekiden', 'macos-runner', 'latest'));
  await writeImage(join(registry, 'registry.test', 'ekiden', 'private', '1'), { username: 'admin', password: SSH_SECRET });
  await writeFile(join(registry, 'registry.test', 'ekiden', 'private', '.auth'), `${REGISTRY_USER}:${REGISTRY_SECRET}\n`);
  await writeImage(join(registry, 'insecure.test', 'ekiden', 'macos', '1'));
  await writeFile(join(registry, 'insecure.test', '.http-only'), '');
  await chmod(DOUBLE, 0o755);
  // Warm the double's transpile cache once, outside any test's timing.
  expect((await tart(join(dir, 'warm-home'), ['--version'])).stdout).toMatch(/^\d+\.\d+\.\d+$/);
});

afterAll(async () => {
  for (const d of drivers) {
    for (const vm of await d.list().catch(() => [])) await d.delete({ name: vm.name }).catch(() => {});
  }
  const strays = homes.flatMap(doublePids);
  for (const pid of strays) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await rm(dir, { recursive: true, force: true });
  expect(strays).toEqual([]);
});

describe('the tart double rejects what tart rejects', () => {
  it('bad flags, missing and extra arguments, bad values: exit 64 with a usage line', async () => {
    const home = join(dir, 'double-home');
    const cases: Array<[string[], RegExp]> = [
      [['stop', 'vm', '--bogus'], /^Error: Unknown option '--bogus'/],
      [['run', 'vm', '--no-graphic'], /^Error: Unknown option '--no-graphic'. Did you mean '--no-graphics'\?/],
      [['clone', 'only-source'], /^Error: Missing expected argument '<new-name>'/],
      [['delete'], /^Error: Missing expected argument '<name> \.\.\.'/],
      [['get', 'a', 'b'], /^Error: Unexpected argument 'b'/],
      [['ip', 'vm', '--wait', 'soon'], /^Error: The value 'soon' is invalid for '--wait <wait>'/],
      [['ip', 'vm', '--wait', '70000'], /^Error: The value '70000' is invalid for '--wait <wait>'/],
      [['stop', 'vm', '--timeout'], /^Error: Missing value for '--timeout <timeout>'/],
      [['list', '--format', 'yaml'], /^Error: The value 'yaml' is invalid for '--format <format>'. Please provide one of 'text' or 'json'\./],
      [['list', '--source', 'cloud'], /^Error: 'cloud' is not a valid <source>/],
      [['run', 'vm', '--no-graphics=yes'], /^Error: The option '--no-graphics' does not take any value, but 'yes' was specified\./],
      [['run', 'vm', '--graphics', '--no-graphics'], /^Error: --graphics and --no-graphics are mutually exclusive/],
      [['clone', 'a', 'b/c'], /^Error: <new-name> should be a local name/],
      [['set', 'vm', '--cpu', 'four'], /^Error: The value 'four' is invalid for '--cpu <cpu>'/],
      [['frobnicate'], /^Error: Unexpected argument 'frobnicate'/],
    ];
    for (const [args, message] of cases) {
      const r = await tart(home, args);
      expect({ args, exitCode: r.exitCode }).toEqual({ args, exitCode: 64 });
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/\nUsage: tart /);
    }
  });

  it('missing VMs: exit 2 with tart messages; stop of a stopped VM succeeds; delete of a running one fails', async () => {
    const home = join(dir, 'double-home2');
    for (const args of [['get', 'nope'], ['stop', 'nope'], ['ip', 'nope'], ['run', 'nope', '--no-graphics'], ['set', 'nope', '--cpu', '2'], ['delete', 'nope']]) {
      const r = await tart(home, args);
      expect({ args, exitCode: r.exitCode, stderr: r.stderr }).toEqual({ args, exitCode: 2, stderr: 'the specified VM "nope" does not exist' });
    }
    expect((await tart(home, ['clone', IMAGE, 'plain'])).exitCode).toBe(0);
    expect(await tart(home, ['stop', 'plain'])).toMatchObject({ exitCode: 0 });
    const ip = await tart(home, ['ip', 'plain', '--wait', '1']);
    expect(ip).toMatchObject({ exitCode: 1, stderr: 'no IP address found, is your VM running?' });
    const run = execa(DOUBLE, ['run', 'plain', '--no-graphics'], { env: { TART_HOME: home, ...doubleEnv() }, reject: false });
    try {
      await waitFor('the double to report an address', async () => (await tart(home, ['ip', 'plain'])).exitCode === 0);
      expect(await tart(home, ['run', 'plain', '--no-graphics'])).toMatchObject({ exitCode: 2, stderr: 'VM "plain" is already running!' });
      expect(await tart(home, ['delete', 'plain'])).toMatchObject({ exitCode: 1, stderr: 'VM "plain" is running' });
      expect((await tartGet(home, 'plain')).State).toBe('running');
      expect(await tart(home, ['stop', 'plain', '--timeout', '5'])).toMatchObject({ exitCode: 0 });
      expect((await run).exitCode).toBe(0); // run stayed in the foreground until stopped
    } finally {
      run.kill('SIGKILL');
    }
    expect(await tart(home, ['delete', 'plain'])).toMatchObject({ exitCode: 0 });
    const pull = await tart(home, ['pull', 'registry.test/ekiden/none:1']);
    expect(pull.exitCode).toBe(1);
    expect(pull.stderr).toMatch(/^Error: UnexpectedHTTPStatusCode\(when: "pulling manifest", code: 404/);
  });

  it('lists in tart JSON shapes', async () => {
    const home = join(dir, 'double-home3');
    expect((await tart(home, ['clone', IMAGE, 'shape'])).exitCode).toBe(0);
    const list = JSON.parse((await tart(home, ['list', '--format', 'json'])).stdout) as Array<Record<string, unknown>>;
    expect(list.map((e) => Object.keys(e))).toEqual(Array(3).fill(['Source', 'Name', 'Disk', 'Size', 'Accessed', 'Running', 'State']));
    expect(list.map((e) => [e.Source, e.Name])).toEqual([
      ['local', 'shape'],
      ['OCI', IMAGE],
      ['OCI', expect.stringMatching(/^registry\.test\/ekiden\/macos-runner@sha256:[0-9a-f]{64}$/)],
    ]);
    const get = JSON.parse((await tart(home, ['get', 'shape', '--format', 'json'])).stdout) as Record<string, unknown>;
    expect(Object.keys(get)).toEqual(['OS', 'CPU', 'Memory', 'Disk', 'DiskFormat', 'Size', 'Display', 'Running', 'State']);
    expect(get).toMatchObject({ OS: 'darwin', CPU: 4, Memory: 8192, Running: false, State: 'stopped' });
  });
});

describe('TartDriver images', () => {
  it('is not cached before a pull, then reports the digest tart resolves (tag, implicit latest, digest)', async () => {
    const { driver } = await host();
    expect(await driver.localImage({ image: IMAGE })).toBeUndefined();
    const pulled = await driver.pullImage({ image: IMAGE });
    expect(pulled).toEqual({ image: IMAGE, digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect(await driver.localImage({ image: IMAGE })).toEqual(pulled);
    expect(await driver.localImage({ image: 'registry.test/ekiden/macos-runner' })).toEqual({ image: 'registry.test/ekiden/macos-runner', digest: pulled.digest });
    const byDigest = `registry.test/ekiden/macos-runner@${pulled.digest}`;
    expect(await driver.pullImage({ image: byDigest })).toEqual({ image: byDigest, digest: pulled.digest });
    expect(await driver.localImage({ image: byDigest })).toEqual({ image: byDigest, digest: pulled.digest });
  });

  it('maps a missing image to not-found and honours --insecure', async () => {
    const { driver } = await host();
    expect((await driverError(driver.pullImage({ image: 'registry.test/ekiden/none:1' }))).code).toBe('not-found');
    expect((await driverError(driver.pullImage({ image: 'nowhere.test/x/y:1' }))).code).toBe('failed');
    const tls = await driverError(driver.pullImage({ image: INSECURE_IMAGE }));
    expect(tls.code).toBe('failed');
    expect(tls.message).toMatch(/SSL error/);
    const { driver: insecure } = await host({ insecureRegistries: true });
    expect((await insecure.pullImage({ image: INSECURE_IMAGE })).digest).toMatch(/^sha256:/);
  });

  it('rejects with the signal reason when aborted', async () => {
    const { driver } = await host();
    const ac = new AbortController();
    ac.abort(new Error('shutting down'));
    expect(await rejection(driver.pullImage({ image: IMAGE, signal: ac.signal }))).toEqual(new Error('shutting down'));
  });
});

describe('TartDriver VM lifecycle', () => {
  it('clone, run, ip + real SSH, stop, delete', async () => {
    const { home, driver } = await host();
    const vm = name();
    await driver.pullImage({ image: IMAGE });
    await driver.clone({ image: IMAGE, name: vm, cpu: 3, memoryMb: 6144 });
    expect(await driver.get({ name: vm })).toEqual({ name: vm, state: 'stopped', image: IMAGE });
    expect(await tartGet(home, vm)).toMatchObject({ CPU: 3, Memory: 6144 });
    expect(existsSync(join(home, 'vms', vm, 'config.json'))).toBe(true); // TART_HOME respected

    await driver.start({ name: vm });
    expect(await driver.get({ name: vm })).toEqual({ name: vm, state: 'running', image: IMAGE });
    expect(runPids(vm)).toHaveLength(1);
    const endpoint = await driver.sshEndpoint({ name: vm, timeoutMs: 10_000 });
    expect(endpoint).toEqual({ host: '127.0.0.1', port: expect.any(Number), username: 'admin', password: 'admin' });
    expect(endpoint.hostKeySha256).toBeUndefined(); // nothing known up front: the caller pins the first key
    const { hostKeySha256 } = await waitForSsh({ endpoint, timeoutMs: 10_000, intervalMs: 100 });
    expect(hostKeySha256).toMatch(/^SHA256:/);
    const r = await sshExec({ endpoint: { ...endpoint, hostKeySha256 }, command: 'echo "hello from $USER"; pwd', timeoutMs: 10_000 });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`hello from admin\n${join(home, 'vms', vm, 'double-home')}\n`);

    await driver.stop({ name: vm, timeoutMs: 5_000 });
    expect(await driver.get({ name: vm })).toEqual({ name: vm, state: 'stopped', image: IMAGE });
    expect(runPids(vm)).toEqual([]);
    expect(readFileSync(driver.logFile(vm), 'utf8')).toMatch(new RegExp(`ekiden: tart run ${vm} --no-graphics`));

    await driver.delete({ name: vm });
    expect(await driver.get({ name: vm })).toBeUndefined();
    expect(existsSync(join(home, 'vms', vm))).toBe(false);
    expect(existsSync(driver.logFile(vm))).toBe(false);
    expect(doublePids(home)).toEqual([]);
  });

  it('is idempotent: clone of an existing VM, start of a running one, stop/delete of missing ones', async () => {
    const { home, driver } = await host();
    const vm = name();
    await driver.clone({ image: IMAGE, name: vm });
    await writeFile(join(home, 'vms', vm, 'marker'), 'kept');
    await driver.clone({ image: IMAGE, name: vm }); // tart itself would replace the VM
    expect(readFileSync(join(home, 'vms', vm, 'marker'), 'utf8')).toBe('kept');

    await driver.start({ name: vm });
    const [pid] = runPids(vm);
    await driver.start({ name: vm });
    expect(runPids(vm)).toEqual([pid]);

    await driver.stop({ name: vm });
    await driver.stop({ name: vm });
    await driver.delete({ name: vm });
    await driver.delete({ name: vm });
    await driver.stop({ name: vm });
    expect(await driver.get({ name: vm })).toBeUndefined();
  });

  it('completes a clone that was interrupted before its resources were set', async () => {
    const { home, driver } = await host();
    const vm = name();
    expect((await tart(home, ['clone', IMAGE, vm])).exitCode).toBe(0);
    await driver.clone({ image: IMAGE, name: vm, cpu: 2, memoryMb: 4096 });
    expect(await tartGet(home, vm)).toMatchObject({ CPU: 2, Memory: 4096 });
  });

  it('deletes a running VM (stops it first) and leaves no process', async () => {
    const { home, driver } = await host();
    const vm = name();
    await driver.clone({ image: IMAGE, name: vm });
    await driver.start({ name: vm });
    await driver.delete({ name: vm });
    expect(await driver.get({ name: vm })).toBeUndefined();
    expect(runPids(vm)).toEqual([]);
    expect(doublePids(home)).toEqual([]);
  });

  it('lists only Ekiden VMs, each TART_HOME its own', async () => {
    const { home, driver } = await host();
    const { driver: other } = await host();
    const vm = name();
    await driver.clone({ image: IMAGE, name: vm });
    expect((await tart(home, ['clone', IMAGE, 'scratch'])).exitCode).toBe(0);
    expect((await tart(home, ['clone', IMAGE, 'ekiden-not-ours'])).exitCode).toBe(0);
    expect(await driver.list()).toEqual([{ name: vm, state: 'stopped', image: IMAGE }]);
    expect(await other.list()).toEqual([]);
    expect(existsSync(join(homedir(), '.tart', 'vms', vm))).toBe(false);
  });
});

describe('TartDriver error mapping', () => {
  it('exit 2 → not-found', async () => {
    const { driver } = await host();
    const vm = name();
    expect((await driverError(driver.start({ name: vm }))).code).toBe('not-found');
    const ip = await driverError(driver.sshEndpoint({ name: vm, timeoutMs: 1_000 }));
    expect(ip.code).toBe('not-found');
    expect(ip.message).toMatch(`the specified VM "${vm}" does not exist`);
    expect((await driverError(driver.clone({ image: 'no-such-local-vm', name: vm }))).code).toBe('not-found');
    expect((await driverError(driver.clone({ image: 'registry.test/ekiden/none:1', name: vm }))).code).toBe('not-found');
    expect(await driver.get({ name: vm })).toBeUndefined();
  });

  it('exit 64 → invalid, carrying the argument error; exit 1 → failed', async () => {
    const { driver } = await host();
    const vm = name();
    const bad = await driverError(driver.clone({ image: IMAGE, name: vm, cpu: 70_000 }));
    expect(bad.code).toBe('invalid');
    expect(bad.message).toMatch(/Error: The value '70000' is invalid for '--cpu <cpu>'/);
    const low = await driverError(driver.clone({ image: IMAGE, name: vm, cpu: 1 }));
    expect(low.code).toBe('failed');
    expect(low.message).toMatch(/VM should have 2 CPU cores at minimum \(requested 1\)/);
    expect(low.message.length).toBeLessThan(400);
    expect(low.cause).toBeDefined();
    expect((await driverError(driver.get({ name: 'not-an-ekiden-vm' }))).code).toBe('invalid');
    expect((await driverError(driver.stop({ name: '--help' }))).code).toBe('invalid');
    expect((await driverError(driver.pullImage({ image: '--insecure' }))).code).toBe('invalid');
  });

  it('no address in time → timeout; abort ends the wait', async () => {
    const { driver } = await host();
    const vm = name();
    await driver.clone({ image: IMAGE, name: vm });
    const t0 = Date.now();
    const err = await driverError(driver.sshEndpoint({ name: vm, timeoutMs: 1_000 }));
    expect(err.code).toBe('timeout');
    expect(err.message).toMatch(/no IP address found/);
    expect(Date.now() - t0).toBeLessThan(5_000);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('cancelled')), 300);
    const t1 = Date.now();
    expect(await rejection(driver.sshEndpoint({ name: vm, timeoutMs: 60_000, signal: ac.signal }))).toEqual(new Error('cancelled'));
    expect(Date.now() - t1).toBeLessThan(5_000);
  });
});

describe('TartDriver capacity', () => {
  it("Apple's VM limit reported by tart run becomes capacity, with no process left behind", async () => {
    // The driver would allow 5; the (double's) system allows 1.
    const { home, driver } = await host({ maxRunning: 5, doubleEnv: { TART_DOUBLE_MAX_RUNNING: '1' } });
    const first = name();
    const second = name();
    await driver.clone({ image: IMAGE, name: first });
    await driver.clone({ image: IMAGE, name: second });
    await driver.start({ name: first });
    const err = await driverError(driver.start({ name: second }));
    expect(err.code).toBe('capacity');
    expect(err.message).toMatch(new RegExp(`The number of VMs exceeds the system limit \\(other running VMs: ${first}\\)`));
    expect(runPids(second)).toEqual([]);
    expect(await driver.get({ name: second })).toEqual({ name: second, state: 'stopped', image: IMAGE });
    expect(doublePids(home)).toEqual(runPids(first));

    await driver.stop({ name: first });
    await driver.start({ name: second }); // the limit was all that stood in the way
    expect(runPids(second)).toHaveLength(1);
  });

  it('refuses before spawning when maxRunning of our VMs already run', async () => {
    const { driver } = await host({ maxRunning: 1 });
    const first = name();
    const second = name();
    await driver.clone({ image: IMAGE, name: first });
    await driver.clone({ image: IMAGE, name: second });
    await driver.start({ name: first });
    const before = readFileSync(argvLog, 'utf8');
    expect((await driverError(driver.start({ name: second }))).code).toBe('capacity');
    const spawned = readFileSync(argvLog, 'utf8')
      .slice(before.length)
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { argv: string[] }).argv);
    expect(spawned.filter((a) => a[0] === 'run')).toEqual([]);
  });
});

describe('TartDriver start', () => {
  it('a cancelled start leaves no VM running', async () => {
    const { driver } = await host({ capacityWindowMs: 5_000 });
    const vm = name();
    await driver.clone({ image: IMAGE, name: vm });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('cancelled')), 1_000);
    expect(await rejection(driver.start({ name: vm, signal: ac.signal }))).toEqual(new Error('cancelled'));
    expect(runPids(vm)).toEqual([]);
    expect(await driver.get({ name: vm })).toEqual({ name: vm, state: 'stopped', image: IMAGE });
  });

  it('reports a run that fails at once with its exit and log line', async () => {
    const { home, driver } = await host();
    const vm = name();
    await driver.clone({ image: IMAGE, name: vm });
    const disk = join(home, 'vms', vm, 'disk.img');
    const boot = 'Error Domain=VZErrorDomain Code=2 "Failed to lock auxiliary storage."';
    await writeFile(disk, JSON.stringify({ ...JSON.parse(await readFile(disk, 'utf8')), bootError: boot }));
    const err = await driverError(driver.start({ name: vm }));
    expect(err.code).toBe('failed');
    expect(err.message).toBe(`tart run ${vm} exited with 1: ${boot}`);
    expect(runPids(vm)).toEqual([]);
    expect(readFileSync(driver.logFile(vm), 'utf8')).toContain(boot);
  });
});

describe('TartDriver secrets', () => {
  it('keeps registry and SSH secrets off every argv; registry credentials reach tart via env', async () => {
    const { driver: anonymous } = await host();
    const refused = await driverError(anonymous.pullImage({ image: PRIVATE_IMAGE }));
    expect(refused.message).toMatch(/AuthFailed/);
    // Refused credentials are final and name the settings to fix, never a password.
    expect(refused.code).toBe('auth');
    expect(refused.message).toContain('driver.registryPasswordEnv');
    const { driver: wrong } = await host({ registryUsername: REGISTRY_USER, registryPassword: `not-${REGISTRY_SECRET}` });
    const wrongPassword = await driverError(wrong.pullImage({ image: PRIVATE_IMAGE }));
    expect(wrongPassword.code).toBe('auth');
    expect(wrongPassword.message).not.toContain(REGISTRY_SECRET);

    const { driver } = await host({ registryUsername: REGISTRY_USER, registryPassword: REGISTRY_SECRET, password: SSH_SECRET });
    const vm = name();
    await driver.pullImage({ image: PRIVATE_IMAGE });
    await driver.clone({ image: PRIVATE_IMAGE, name: vm });
    await driver.start({ name: vm });
    const endpoint = await driver.sshEndpoint({ name: vm, timeoutMs: 10_000 });
    expect(endpoint).toMatchObject({ password: SSH_SECRET });
    await waitForSsh({ endpoint, timeoutMs: 10_000, intervalMs: 100 }); // the guest takes it
    // While tart run runs: no process on this host has a secret on its command line.
    expect(runPids(vm)).toHaveLength(1);
    const leaks = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        const cmd = proc(p, 'cmdline') ?? '';
        return cmd.includes(REGISTRY_SECRET) || cmd.includes(SSH_SECRET);
      });
    expect(leaks).toEqual([]);
    const log = readFileSync(argvLog, 'utf8');
    expect(log).not.toContain(REGISTRY_SECRET);
    expect(log).not.toContain(SSH_SECRET);
    const pulls = log
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { argv: string[]; registryCredentials: boolean })
      .filter((e) => e.argv[0] === 'pull' && e.argv.includes(PRIVATE_IMAGE));
    expect(pulls.map((e) => e.registryCredentials)).toContain(true);
    expect(readFileSync(driver.logFile(vm), 'utf8')).not.toContain(REGISTRY_SECRET);
    await driver.delete({ name: vm });
  });
});
