import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeDriver } from '../../drivers/fake.js';
import { type SshError, sshExec, waitForSsh } from '../../ssh/client.js';
import { createFakeHost, IMAGE, isLivePid, pidsWhoseCmdline, waitFor, type FakeHost } from './fake-fixture.js';
import { driverError, rejection } from '../support/rejections.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

let h: FakeHost;
beforeAll(async () => {
  h = await createFakeHost();
});
afterAll(async () => {
  expect(await h.cleanup()).toEqual([]);
});

describe('FakeDriver images', () => {
  it('is not cached before a pull, then has a stable content digest', async () => {
    const driver = new FakeDriver({ root: join(h.dir, 'img-root'), images: { [IMAGE]: h.template } });
    expect(await driver.localImage({ image: IMAGE })).toBeUndefined();
    const pulled = await driver.pullImage({ image: IMAGE });
    expect(pulled.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await driver.localImage({ image: IMAGE })).toEqual(pulled);
    expect(await driver.pullImage({ image: IMAGE })).toEqual(pulled);
  });

  it('refreshes the cache when the template changes', async () => {
    const template = join(h.dir, 'tpl-changing');
    await mkdir(template, { recursive: true });
    await writeFile(join(template, 'a.txt'), 'one');
    const driver = new FakeDriver({ root: join(h.dir, 'img-root2'), images: { 'x/y:1': template } });
    const first = await driver.pullImage({ image: 'x/y:1' });
    await writeFile(join(template, 'a.txt'), 'two');
    const second = await driver.pullImage({ image: 'x/y:1' });
    expect(second.digest).not.toBe(first.digest);
    expect(await driver.localImage({ image: 'x/y:1' })).toEqual(second);
  });

  it('rejects unknown images and clones of uncached ones with not-found', async () => {
    const driver = new FakeDriver({ root: join(h.dir, 'img-root3'), images: { [IMAGE]: h.template } });
    expect((await driverError(driver.pullImage({ image: 'nope:1' }))).code).toBe('not-found');
    expect((await driverError(driver.clone({ image: IMAGE, name: h.name() }))).code).toBe('not-found');
    expect(await driver.localImage({ image: 'nope:1' })).toBeUndefined();
  });
});

describe('FakeDriver VM lifecycle', () => {
  it('clone copies the image and is idempotent', async () => {
    const name = h.name();
    await h.driver.pullImage({ image: IMAGE });
    await h.driver.clone({ image: IMAGE, name, cpu: 2, memoryMb: 2048 });
    const vmJson = await readFile(join(h.driver.vmDir(name), 'vm.json'), 'utf8');
    await h.driver.clone({ image: IMAGE, name });
    expect(await readFile(join(h.driver.vmDir(name), 'vm.json'), 'utf8')).toBe(vmJson);
    expect((await stat(join(h.driver.vmDir(name), 'actions-runner', 'run.sh'))).mode & 0o111).not.toBe(0);
    expect(await h.driver.get({ name })).toEqual({ name, state: 'stopped', image: IMAGE });
    expect(await h.driver.list()).toContainEqual({ name, state: 'stopped', image: IMAGE });
    await h.driver.delete({ name });
  });

  it('start, stop and delete are idempotent; missing VMs are fine where the contract says so', async () => {
    const missing = h.name();
    await h.driver.stop({ name: missing });
    await h.driver.delete({ name: missing });
    expect(await h.driver.get({ name: missing })).toBeUndefined();
    expect((await driverError(h.driver.start({ name: missing }))).code).toBe('not-found');
    expect((await driverError(h.driver.sshEndpoint({ name: missing, timeoutMs: 1_000 }))).code).toBe('not-found');

    const name = await h.startVm();
    const pid = JSON.parse(await readFile(join(h.driver.vmDir(name), 'vm.json'), 'utf8')).pid as number;
    await h.driver.start({ name });
    expect(JSON.parse(await readFile(join(h.driver.vmDir(name), 'vm.json'), 'utf8')).pid).toBe(pid);
    expect((await h.driver.get({ name }))?.state).toBe('running');

    await h.driver.stop({ name });
    await h.driver.stop({ name });
    expect((await h.driver.get({ name }))?.state).toBe('stopped');
    expect(isLivePid(pid)).toBe(false);
    // A stopped VM has no address; the wait ends at its deadline.
    expect((await driverError(h.driver.sshEndpoint({ name, timeoutMs: 300 }))).code).toBe('timeout');

    await h.driver.start({ name });
    expect((await h.driver.get({ name }))?.state).toBe('running');
    await h.driver.delete({ name });
    await h.driver.delete({ name });
    expect(await h.driver.get({ name })).toBeUndefined();
    expect(existsSync(h.driver.vmDir(name))).toBe(false);
  });

  it('refuses names that are not Ekiden VM names', async () => {
    for (const name of ['../etc', 'test-vm', 'ekiden-x']) {
      expect((await driverError(h.driver.clone({ image: IMAGE, name }))).code).toBe('invalid');
      expect((await driverError(h.driver.delete({ name }))).code).toBe('invalid');
    }
  });

  it('bootDelayMs: the address is known at once, SSH answers after the delay', async () => {
    const slow = new FakeDriver({ root: h.root, images: { [IMAGE]: h.template }, bootDelayMs: 1_000 });
    const name = h.name();
    await slow.pullImage({ image: IMAGE });
    await slow.clone({ image: IMAGE, name });
    const t0 = Date.now();
    await slow.start({ name });
    const endpoint = await slow.sshEndpoint({ name, timeoutMs: 10_000 });
    expect(endpoint).toMatchObject({ host: '127.0.0.1', username: 'admin', hostKeySha256: expect.stringMatching(/^SHA256:/) });
    expect(endpoint.privateKey).toContain('PRIVATE KEY');
    expect((await rejection(sshExec({ endpoint, command: 'true' })) as SshError).code).toBe('connect');
    await waitForSsh({ endpoint, timeoutMs: 10_000, intervalMs: 50 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    const res = await sshExec({ endpoint, command: 'pwd; echo "$HOME"' });
    expect(res.stdout).toBe(`${h.driver.vmDir(name)}\n${h.driver.vmDir(name)}\n`);
    await slow.delete({ name });
  });

  it('stop leaves no process of the VM alive, detached or not', async () => {
    const name = await h.startVm();
    const endpoint = await h.driver.sshEndpoint({ name, timeoutMs: 10_000 });
    const res = await sshExec({
      endpoint,
      command: [
        'setsid nohup sleep 1001 >/dev/null 2>&1 & echo $!',
        'nohup sleep 1002 >/dev/null 2>&1 & echo $!',
        "(trap '' TERM; exec sleep 1003) >/dev/null 2>&1 & echo $!",
      ].join('\n'),
    });
    const started = res.stdout.trim().split('\n').map(Number);
    expect(started).toHaveLength(3);
    const before = await h.driver.processes({ name });
    for (const pid of started) expect(before).toContain(pid);
    const t0 = Date.now();
    await h.driver.stop({ name, timeoutMs: 500 });
    expect(Date.now() - t0).toBeLessThan(5_000);
    for (const pid of [...started, ...before]) expect(isLivePid(pid), `pid ${pid}`).toBe(false);
    expect(await h.driver.processes({ name })).toEqual([]);
    await h.driver.delete({ name });
  });

  it('a new driver instance over the same root lists, stops and deletes the VMs of another', async () => {
    const name = await h.startVm();
    const restarted = new FakeDriver({ root: h.root, images: {} });
    expect(await restarted.list()).toContainEqual({ name, state: 'running', image: IMAGE });
    const endpoint = await restarted.sshEndpoint({ name, timeoutMs: 5_000 });
    expect((await sshExec({ endpoint, command: 'echo ok' })).stdout).toBe('ok\n');
    await restarted.stop({ name });
    expect((await h.driver.get({ name }))?.state).toBe('stopped');
    await restarted.delete({ name });
    expect(await h.driver.list()).not.toContainEqual(expect.objectContaining({ name }));
  });

  it('list ignores directories that are not Ekiden VM names', async () => {
    await mkdir(join(h.root, 'vms', 'not-ours'), { recursive: true });
    expect((await h.driver.list()).map((vm) => vm.name)).not.toContain('not-ours');
  });

  it('enforces maxRunning with a capacity error', async () => {
    const capped = new FakeDriver({ root: join(h.dir, 'capped'), images: { [IMAGE]: h.template }, maxRunning: 1 });
    const a = await h.startVm(capped);
    const b = h.name();
    await capped.clone({ image: IMAGE, name: b });
    expect((await driverError(capped.start({ name: b }))).code).toBe('capacity');
    await capped.stop({ name: a });
    await capped.start({ name: b });
    await capped.delete({ name: a });
    await capped.delete({ name: b });
  });
});

describe('FakeDriver faults and aborts', () => {
  it('no-address: sshEndpoint times out; an abort ends the wait promptly', async () => {
    const name = h.name();
    await h.driver.clone({ image: IMAGE, name });
    await h.driver.setFault({ name, fault: 'no-address' });
    await h.driver.start({ name });
    expect((await h.driver.get({ name }))?.state).toBe('running');
    expect((await driverError(h.driver.sshEndpoint({ name, timeoutMs: 400 }))).code).toBe('timeout');
    const ac = new AbortController();
    const reason = new Error('cancelled by test');
    setTimeout(() => ac.abort(reason), 150);
    const t0 = Date.now();
    expect(await rejection(h.driver.sshEndpoint({ name, timeoutMs: 60_000, signal: ac.signal }))).toBe(reason);
    expect(Date.now() - t0).toBeLessThan(1_000);
    await h.driver.delete({ name });
  });

  it('crash-after-ms: the VM dies with all its processes and reads as stopped', async () => {
    const name = h.name();
    await h.driver.clone({ image: IMAGE, name });
    await h.driver.setFault({ name, fault: 'crash-after-ms', value: 1_000 });
    await h.driver.start({ name });
    const endpoint = await h.driver.sshEndpoint({ name, timeoutMs: 5_000 });
    const pid = Number((await sshExec({ endpoint, command: 'setsid nohup sleep 1004 >/dev/null 2>&1 & echo $!' })).stdout);
    expect(isLivePid(pid)).toBe(true);
    await waitFor('crash', async () => (await h.driver.get({ name }))?.state === 'stopped');
    await waitFor('processes gone', async () => (await h.driver.processes({ name })).length === 0);
    expect(isLivePid(pid)).toBe(false);
    // After a crash the VM boots again like a fresh one.
    await h.driver.clearFault({ name, fault: 'crash-after-ms' });
    await h.driver.start({ name });
    expect((await sshExec({ endpoint: await h.driver.sshEndpoint({ name, timeoutMs: 5_000 }), command: 'echo up' })).stdout).toBe('up\n');
    await h.driver.delete({ name });
  });
});

/**
 * Transpiles the driver and what it imports into a directory under node_modules/.cache, so a
 * plain `node` child (standing in for a worker) can run it.
 */
async function transpileDriver(): Promise<string> {
  const out = join(REPO, 'node_modules', '.cache', `ekiden-test-driver-${randomBytes(4).toString('hex')}`);
  const files = ['drivers/fake.ts', 'drivers/fake-guest.ts', 'drivers/fake-procs.ts', 'drivers/types.ts', 'core/names.ts', 'core/keyed-lock.ts', 'drivers/vm-dirs.ts', 'drivers/vm-record.ts', 'drivers/procs.ts', 'drivers/guest-exec.ts', 'ssh/client.ts', 'ssh/keys.ts'];
  for (const file of files) {
    const js = ts.transpileModule(await readFile(join(REPO, file), 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    }).outputText;
    await mkdir(dirname(join(out, file)), { recursive: true });
    await writeFile(join(out, file.replace(/\.ts$/, '.js')), js);
  }
  await writeFile(join(out, 'package.json'), '{ "type": "module" }\n');
  await writeFile(
    join(out, 'worker.js'),
    `import { FakeDriver } from './drivers/fake.js';
const [root, image, template, name] = process.argv.slice(2);
const driver = new FakeDriver({ root, images: { [image]: template } });
await driver.pullImage({ image });
await driver.clone({ image, name });
await driver.start({ name });
process.stdout.write('started\\n');
setInterval(() => {}, 1 << 30);
`,
  );
  return out;
}

describe('FakeDriver guests outlive their worker', () => {
  let out: string | undefined;
  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('a VM started by a worker that is then SIGKILLed keeps running and serving SSH', async () => {
    out = await transpileDriver();
    const name = h.name();
    const worker = spawn(process.execPath, [join(out, 'worker.js'), h.root, IMAGE, h.template, name], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      worker.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('started')) resolve();
      });
      worker.once('exit', (code) => reject(new Error(`worker exited early (${code})`)));
    });
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.kill('SIGKILL');
    await exited;
    // The guest is the compiled sibling of the driver the worker ran.
    const guestScript = join(out, 'drivers', 'fake-guest.js');
    expect(pidsWhoseCmdline((cmd) => cmd.includes(guestScript) && cmd.includes(h.driver.vmDir(name)))).toHaveLength(1);
    expect((await h.driver.get({ name }))?.state).toBe('running');
    const endpoint = await h.driver.sshEndpoint({ name, timeoutMs: 5_000 });
    expect((await sshExec({ endpoint, command: 'echo alive' })).stdout).toBe('alive\n');
    await h.driver.delete({ name });
  });
});
