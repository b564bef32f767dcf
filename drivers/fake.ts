/**
 * TEST AND DEMO INFRASTRUCTURE — not a hypervisor, no isolation whatsoever. A VmDriver whose
 * "VMs" are directories on this host plus a detached Node process each (drivers/fake-guest.ts)
 * serving real SSH on 127.0.0.1. Commands run "in the guest" are plain host processes running
 * as the current user, with HOME = cwd = the VM's directory. Use it for tests and demos only.
 *
 * Layout under `root`:
 *   images/<key>/        cached copy of an image template     images/<key>.json  {image, digest}
 *   vms/<name>/          the VM: a copy of its image, its HOME
 *   vms/<name>/vm.json   state: image, keys' fingerprints, pid/port of the running guest
 *   vms/<name>/.fake/    host_key, client_key(.pub), password, guest.json, guest.log, faults/
 * Everything is on disk, so a new FakeDriver over the same root (a restarted worker) finds,
 * stops and deletes the VMs another instance created; guests outlive the process that
 * started them (detached, own session, stdio to a file).
 *
 * A stopped VM has no processes left: stop() signals the guest and every process carrying its
 * EKIDEN_FAKE_VM marker (see fake-procs.ts; on Linux this includes `setsid`/`nohup` escapees,
 * not processes that wipe their environment, e.g. `env -i`; elsewhere only the guest's
 * process groups). start() clears leftovers of a crashed guest first.
 *
 * Notes: names must pass parseVmName (else DriverError 'invalid'); aborted waits reject with
 * the signal's reason; the SSH port is known right after start, SSH answers bootDelayMs later
 * (call waitForSsh, as with real VMs).
 *
 * Fault hooks (files `vms/<name>/.fake/faults/<fault>`, read by the guest when it starts; set
 * them with `setFault` before `start`, or ship them in an image template under
 * `.fake/faults/`): see FakeFault.
 */
import { checkVmName, errCode, listOwnVms, rand, removeVmDir } from './vm-dirs.js';
import { VM_RECORD_FILE, hasAnyField, readVmRecord, vmRecordText, withoutFields, writeFileAtomic, writeVmRecord } from './vm-record.js';
import { KeyedLock } from '../core/keyed-lock.js';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSshKeyPair } from '../ssh/keys.js';
import { GUEST_FLAG, MARKER_ENV, isFakeGuest, killVmProcesses, vmProcesses } from './fake-procs.js';
import { minimalEnv, pause } from './procs.js';
import { DriverError, type ImageInfo, type SshEndpoint, type VmDriver, type VmInfo, type VmState } from './types.js';

/**
 * - `never-boot`: the SSH port is published but closes every connection (sshd never comes up):
 *   sshEndpoint succeeds, waitForSsh times out.
 * - `no-address`: no port is ever published: sshEndpoint times out.
 * - `reject-auth`: SSH rejects every credential (SshError 'auth').
 * - `crash-after-ms` (value: ms): that long after SSH is up, the guest kills every process of
 *   the VM and exits 1, like a VM that crashed; the VM then reads as stopped.
 * - `boot-delay-ms` (value: ms): overrides the driver's bootDelayMs for this VM.
 */
export type FakeFault = 'never-boot' | 'no-address' | 'reject-auth' | 'crash-after-ms' | 'boot-delay-ms';

export interface FakeDriverOptions {
  /** State directory on this host. */
  root: string;
  /** Image ref → template directory on this host. */
  images: Record<string, string>;
  /**
   * Simulated boot: the guest's port is published at once (a VM's address is known before its
   * sshd is up) but SSH answers only this long after start; waitForSsh bridges it. Default 0.
   */
  bootDelayMs?: number;
  /** SSH user of new VMs. Default 'admin'. */
  username?: string;
  /** Also accept this password (recorded at clone; sshEndpoint returns it). */
  password?: string;
  /** At most this many running VMs under root; start beyond it fails with 'capacity'. */
  maxRunning?: number;
  /** stop() grace before SIGKILL when no timeoutMs is given. Default 5000. */
  stopTimeoutMs?: number;
  /** How long start() waits for the guest process to come up. Default 20000. */
  startTimeoutMs?: number;
}

interface VmRecord {
  name: string;
  image: string;
  digest: string;
  /** Random per clone; carried as EKIDEN_FAKE_VM by every process of the VM. */
  instanceId: string;
  username: string;
  hostKeySha256: string;
  cpu?: number;
  memoryMb?: number;
  createdAt: string;
  /** Written by the guest while it runs. */
  pid?: number;
  port?: number;
  bootedAt?: string;
}

const RUNTIME_FIELDS = ['pid', 'port', 'bootedAt'] as const;

/** sha256 over the sorted relative paths and contents of every file (and symlink) of a tree. */
async function treeDigest(dir: string): Promise<string> {
  const entries: Array<{ rel: string; kind: 'file' | 'link' }> = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isSymbolicLink()) entries.push({ rel: r, kind: 'link' });
      else if (e.isFile()) entries.push({ rel: r, kind: 'file' });
    }
  };
  await walk('');
  entries.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  const hash = createHash('sha256');
  for (const e of entries) {
    const full = path.join(dir, e.rel);
    hash.update(`${e.kind} ${e.rel}\0`);
    hash.update(e.kind === 'link' ? await fs.readlink(full) : await fs.readFile(full));
    hash.update('\0');
  }
  return `sha256:${hash.digest('hex')}`;
}

function imageKey(image: string): string {
  const safe = image.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
  return `${safe}-${createHash('sha256').update(image).digest('hex').slice(0, 8)}`;
}

/** The guest's environment: minimal, so no secret of the worker leaks into "VMs". */
function guestEnv(instanceId: string): NodeJS.ProcessEnv {
  return { [MARKER_ENV]: instanceId, ...minimalEnv() };
}

let guestScriptPromise: Promise<string> | undefined;

/**
 * Path of the guest entry point: the compiled sibling (dist/drivers/fake-guest.js), or, when
 * this module runs from TypeScript sources (vitest), a transpiled copy of fake-guest.ts and the
 * modules it imports (GUEST_SOURCES) cached under node_modules/.cache (Node 20 cannot run .ts
 * files).
 */
function guestScript(): Promise<string> {
  guestScriptPromise ??= locateGuestScript().catch((err: unknown) => {
    guestScriptPromise = undefined;
    throw err;
  });
  return guestScriptPromise;
}

/** fake-guest.ts and every module it imports, all in this directory. */
const GUEST_SOURCES = ['fake-guest.ts', 'fake-procs.ts', 'procs.ts', 'guest-exec.ts'];

async function locateGuestScript(): Promise<string> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const compiled = path.join(here, 'fake-guest.js');
  if (existsSync(compiled)) return compiled;
  const sources = GUEST_SOURCES;
  const texts = await Promise.all(sources.map((f) => fs.readFile(path.join(here, f), 'utf8'))).catch((err: unknown) => {
    throw new DriverError('failed', 'fake-guest script not found next to the fake driver', { cause: err });
  });
  let base = here;
  while (!existsSync(path.join(base, 'node_modules', 'ssh2', 'package.json'))) {
    const up = path.dirname(base);
    if (up === base) throw new DriverError('failed', 'no node_modules with ssh2 above the fake driver');
    base = up;
  }
  const hash = createHash('sha256').update(texts.join('\0')).digest('hex').slice(0, 16);
  const outDir = path.join(base, 'node_modules', '.cache', 'ekiden-fake-guest', hash);
  const entry = path.join(outDir, 'fake-guest.js');
  if (existsSync(entry)) return entry;
  const ts = (await import('typescript')).default;
  const tmp = `${outDir}.tmp-${process.pid}-${rand()}`;
  await fs.mkdir(tmp, { recursive: true });
  await fs.writeFile(path.join(tmp, 'package.json'), '{ "type": "module" }\n');
  for (const [i, file] of sources.entries()) {
    const out = ts.transpileModule(texts[i]!, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    await fs.writeFile(path.join(tmp, file.replace(/\.ts$/, '.js')), out.outputText);
  }
  try {
    await fs.rename(tmp, outDir);
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    if (!existsSync(entry)) throw err; // otherwise a concurrent process got there first
  }
  return entry;
}

export class FakeDriver implements VmDriver {
  readonly kind = 'fake' as const;
  private readonly root: string;
  private readonly images: Record<string, string>;
  private readonly bootDelayMs: number;
  private readonly username: string;
  private readonly password: string | undefined;
  private readonly maxRunning: number | undefined;
  private readonly stopTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly locks = new KeyedLock();

  constructor(opts: FakeDriverOptions) {
    this.root = path.resolve(opts.root);
    this.images = { ...opts.images };
    this.bootDelayMs = opts.bootDelayMs ?? 0;
    this.username = opts.username ?? 'admin';
    this.password = opts.password;
    this.maxRunning = opts.maxRunning;
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 5_000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 20_000;
  }

  /** The VM's directory (its HOME) on this host. */
  vmDir(name: string): string {
    checkVmName(name);
    return path.join(this.root, 'vms', name);
  }

  // ---- images ----

  async localImage(args: { image: string }): Promise<ImageInfo | undefined> {
    const key = imageKey(args.image);
    try {
      const meta = JSON.parse(await fs.readFile(path.join(this.root, 'images', `${key}.json`), 'utf8')) as ImageInfo;
      if (!existsSync(path.join(this.root, 'images', key))) return undefined;
      return { image: args.image, digest: meta.digest };
    } catch (err) {
      if (errCode(err) === 'ENOENT') return undefined;
      throw new DriverError('failed', `image cache entry for ${args.image} is unreadable`, { cause: err });
    }
  }

  async pullImage(args: { image: string; signal?: AbortSignal }): Promise<ImageInfo> {
    const template = this.images[args.image];
    if (!template || !(await fs.stat(template).then((s) => s.isDirectory(), () => false))) {
      throw new DriverError('not-found', `image ${args.image} is not known to the fake driver`);
    }
    const key = imageKey(args.image);
    return this.locks.run(`image:${key}`, async () => {
      const digest = await treeDigest(template);
      const cached = await this.localImage({ image: args.image });
      if (cached?.digest === digest) return cached;
      args.signal?.throwIfAborted();
      const dir = path.join(this.root, 'images');
      const dest = path.join(dir, key);
      const tmp = path.join(dir, `.tmp-${key}-${rand()}`);
      const old = path.join(dir, `.old-${key}-${rand()}`);
      await fs.mkdir(dir, { recursive: true });
      try {
        await fs.cp(template, tmp, { recursive: true, verbatimSymlinks: true });
        args.signal?.throwIfAborted();
        await fs.rename(dest, old).catch((err: unknown) => {
          if (errCode(err) !== 'ENOENT') throw err;
        });
        await fs.rename(tmp, dest);
        await writeFileAtomic(path.join(dir, `${key}.json`), `${JSON.stringify({ image: args.image, digest }, null, 2)}\n`);
      } finally {
        await fs.rm(tmp, { recursive: true, force: true });
        await fs.rm(old, { recursive: true, force: true });
      }
      return { image: args.image, digest };
    });
  }

  // ---- VMs ----

  async clone(args: { image: string; name: string; cpu?: number; memoryMb?: number; signal?: AbortSignal }): Promise<void> {
    checkVmName(args.name);
    await this.locks.run(args.name, async () => {
      const dir = this.vmDir(args.name);
      if (existsSync(dir)) return;
      const cached = await this.localImage({ image: args.image });
      if (!cached) throw new DriverError('not-found', `image ${args.image} is not cached on this host; pull it first`);
      args.signal?.throwIfAborted();
      const tmp = path.join(this.root, 'vms', `.tmp-${args.name}-${rand()}`);
      try {
        await fs.mkdir(path.dirname(tmp), { recursive: true });
        await fs.cp(path.join(this.root, 'images', imageKey(args.image)), tmp, { recursive: true, verbatimSymlinks: true });
        const fake = path.join(tmp, '.fake');
        await fs.mkdir(fake, { recursive: true, mode: 0o700 });
        const hostKey = generateSshKeyPair();
        const clientKey = generateSshKeyPair();
        await fs.writeFile(path.join(fake, 'host_key'), hostKey.privateKey, { mode: 0o600 });
        await fs.writeFile(path.join(fake, 'client_key'), clientKey.privateKey, { mode: 0o600 });
        await fs.writeFile(path.join(fake, 'client_key.pub'), `${clientKey.publicKey}\n`, { mode: 0o644 });
        if (this.password !== undefined) await fs.writeFile(path.join(fake, 'password'), this.password, { mode: 0o600 });
        const record: VmRecord = {
          name: args.name,
          image: args.image,
          digest: cached.digest,
          instanceId: `${args.name}.${randomBytes(8).toString('hex')}`,
          username: this.username,
          hostKeySha256: hostKey.fingerprint,
          ...(args.cpu !== undefined ? { cpu: args.cpu } : {}),
          ...(args.memoryMb !== undefined ? { memoryMb: args.memoryMb } : {}),
          createdAt: new Date().toISOString(),
        };
        await fs.writeFile(path.join(tmp, VM_RECORD_FILE), vmRecordText(record));
        args.signal?.throwIfAborted();
        try {
          await fs.rename(tmp, dir);
        } catch (err) {
          // Another process cloned the same name meanwhile: that clone stands.
          if (!['EEXIST', 'ENOTEMPTY'].includes(errCode(err) ?? '')) throw err;
        }
      } catch (err) {
        // Say where: Node's ENOSPC from a copy or a write names no file.
        if (errCode(err) === 'ENOSPC') throw new DriverError('failed', `cannot clone ${args.name} into ${path.dirname(tmp)}: ${(err as Error).message}`, { cause: err });
        throw err;
      } finally {
        await fs.rm(tmp, { recursive: true, force: true });
      }
    });
  }

  async start(args: { name: string; signal?: AbortSignal }): Promise<void> {
    checkVmName(args.name);
    await this.locks.run(args.name, () =>
      this.maxRunning === undefined ? this.startLocked(args.name, args.signal) : this.locks.run('capacity', () => this.startLocked(args.name, args.signal)),
    );
  }

  private async startLocked(name: string, signal?: AbortSignal): Promise<void> {
    const dir = this.vmDir(name);
    const rec = await this.readRecord(name);
    if (!rec) throw new DriverError('not-found', `VM ${name} does not exist`);
    if (await this.guestAlive(rec)) return;
    if (this.maxRunning !== undefined) {
      const running = (await this.list()).filter((vm) => vm.state === 'running').length;
      if (running >= this.maxRunning) {
        throw new DriverError('capacity', `the number of running fake VMs would exceed ${this.maxRunning}`);
      }
    }
    signal?.throwIfAborted();
    const fake = path.join(dir, '.fake');
    // A fresh boot has no processes: clear what a crashed guest may have left behind.
    await killVmProcesses({ vmDir: dir, instanceId: rec.instanceId, pgidsFile: path.join(fake, 'pgids') }, { graceMs: 0 });
    await fs.rm(path.join(fake, 'pgids'), { force: true });
    await fs.mkdir(fake, { recursive: true, mode: 0o700 });
    await writeFileAtomic(
      path.join(fake, 'guest.json'),
      JSON.stringify({ username: rec.username, bootDelayMs: this.bootDelayMs, instanceId: rec.instanceId }),
      0o600,
    );
    await this.writeRecord(withoutFields(rec, RUNTIME_FIELDS));
    const script = await guestScript();
    const log = await fs.open(path.join(fake, 'guest.log'), 'a', 0o600);
    let child;
    try {
      child = spawn(process.execPath, [script, GUEST_FLAG, dir], {
        cwd: dir,
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
        env: guestEnv(rec.instanceId),
      });
    } finally {
      await log.close();
    }
    child.unref();
    let exited: string | undefined;
    const onExit = (code: number | null, sig: NodeJS.Signals | null) => (exited = sig ?? `exit ${code}`);
    const onError = (err: Error) => (exited = err.message);
    child.once('exit', onExit);
    child.once('error', onError);
    try {
      const deadline = Date.now() + this.startTimeoutMs;
      for (;;) {
        const now = await this.readRecord(name);
        if (child.pid !== undefined && now?.pid === child.pid) return;
        if (exited !== undefined) {
          throw new DriverError('failed', `fake guest of ${name} did not start (${exited}): ${await this.logTail(name)}`);
        }
        if (Date.now() >= deadline) {
          throw new DriverError('timeout', `fake guest of ${name} did not come up within ${this.startTimeoutMs} ms`);
        }
        await pause(25, signal);
      }
    } finally {
      child.off('exit', onExit);
      child.off('error', onError);
    }
  }

  async sshEndpoint(args: { name: string; timeoutMs: number; signal?: AbortSignal }): Promise<SshEndpoint> {
    checkVmName(args.name);
    const dir = this.vmDir(args.name);
    const deadline = Date.now() + args.timeoutMs;
    for (;;) {
      args.signal?.throwIfAborted();
      const rec = await this.readRecord(args.name);
      if (!rec) throw new DriverError('not-found', `VM ${args.name} does not exist`);
      if (rec.port !== undefined && (await this.guestAlive(rec))) {
        const endpoint: SshEndpoint = {
          host: '127.0.0.1',
          port: rec.port,
          username: rec.username,
          privateKey: await fs.readFile(path.join(dir, '.fake', 'client_key'), 'utf8'),
          hostKeySha256: rec.hostKeySha256,
        };
        const password = await fs.readFile(path.join(dir, '.fake', 'password'), 'utf8').catch(() => undefined);
        if (password !== undefined) endpoint.password = password;
        return endpoint;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new DriverError('timeout', `VM ${args.name} has no SSH address after ${args.timeoutMs} ms`);
      await pause(Math.min(50, left), args.signal);
    }
  }

  async stop(args: { name: string; timeoutMs?: number; signal?: AbortSignal }): Promise<void> {
    checkVmName(args.name);
    await this.locks.run(args.name, () => this.stopLocked(args.name, args.timeoutMs ?? this.stopTimeoutMs, args.signal));
  }

  private async stopLocked(name: string, graceMs: number, signal?: AbortSignal): Promise<void> {
    const dir = this.vmDir(name);
    if (!existsSync(dir)) return;
    const rec = await this.readRecord(name);
    await killVmProcesses(
      { vmDir: dir, instanceId: rec?.instanceId, guestPid: rec?.pid, pgidsFile: path.join(dir, '.fake', 'pgids') },
      { graceMs, signal },
    );
    if (rec && hasAnyField(rec, RUNTIME_FIELDS)) await this.writeRecord(withoutFields(rec, RUNTIME_FIELDS));
  }

  async delete(args: { name: string; signal?: AbortSignal }): Promise<void> {
    checkVmName(args.name);
    await this.locks.run(args.name, async () => {
      const dir = this.vmDir(args.name);
      if (!existsSync(dir)) return;
      await this.stopLocked(args.name, this.stopTimeoutMs, args.signal);
      await removeVmDir(path.join(this.root, 'vms'), args.name);
    });
  }

  async list(_args?: { signal?: AbortSignal }): Promise<VmInfo[]> {
    return listOwnVms(path.join(this.root, 'vms'), (name) => this.info(name));
  }

  async get(args: { name: string; signal?: AbortSignal }): Promise<VmInfo | undefined> {
    checkVmName(args.name);
    return this.info(args.name);
  }

  // ---- test helpers (not part of VmDriver) ----

  /** Arms a fault hook for the VM's next start (see FakeFault); `value` for the *-ms faults. */
  async setFault(args: { name: string; fault: FakeFault; value?: number }): Promise<void> {
    const faults = path.join(this.vmDir(args.name), '.fake', 'faults');
    if (!existsSync(this.vmDir(args.name))) throw new DriverError('not-found', `VM ${args.name} does not exist`);
    await fs.mkdir(faults, { recursive: true });
    await fs.writeFile(path.join(faults, args.fault), args.value === undefined ? '' : String(args.value));
  }

  async clearFault(args: { name: string; fault: FakeFault }): Promise<void> {
    await fs.rm(path.join(this.vmDir(args.name), '.fake', 'faults', args.fault), { force: true });
  }

  /** Live host processes of the VM: its guest and everything started in it. */
  async processes(args: { name: string }): Promise<number[]> {
    const dir = this.vmDir(args.name);
    const rec = await this.readRecord(args.name);
    if (!rec) return [];
    return vmProcesses({ vmDir: dir, instanceId: rec.instanceId, guestPid: rec.pid, pgidsFile: path.join(dir, '.fake', 'pgids') });
  }

  // ---- internals ----

  private async info(name: string): Promise<VmInfo | undefined> {
    if (!existsSync(this.vmDir(name))) return undefined;
    const rec = await this.readRecord(name);
    // A VM directory without state (should not happen: clones appear by rename) is still ours to delete.
    const state: VmState = rec && (await this.guestAlive(rec)) ? 'running' : 'stopped';
    return rec ? { name, state, image: rec.image } : { name, state };
  }

  private guestAlive(rec: VmRecord): Promise<boolean> {
    return rec.pid === undefined ? Promise.resolve(false) : isFakeGuest(rec.pid, this.vmDir(rec.name));
  }

  private async readRecord(name: string): Promise<VmRecord | undefined> {
    return readVmRecord<VmRecord>(this.vmDir(name));
  }

  private async writeRecord(rec: VmRecord): Promise<void> {
    await writeVmRecord(this.vmDir(rec.name), rec);
  }

  private async logTail(name: string): Promise<string> {
    const text = await fs.readFile(path.join(this.vmDir(name), '.fake', 'guest.log'), 'utf8').catch(() => '');
    return text.trim().split('\n').slice(-30).join(' | ').slice(-3000);
  }
}
