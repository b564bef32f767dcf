/**
 * VmDriver for Linux hosts: one QEMU process per VM, guests from images built by
 * images/build-debian.sh (see drivers/qemu-image.ts for image refs).
 *
 * Layout under `root`:
 *   accel.json              cached verdict of the KVM probe (accel 'auto')
 *   vms/<name>/vm.json      state: image, resolved kernel/initrd/disk, host key fingerprint,
 *                           machine id, MAC; while it runs: pid, SSH port, QMP socket, accel
 *   vms/<name>/disk.qcow2   copy-on-write overlay over the image's disk.qcow2
 *   vms/<name>/keys/        host_ed25519(.pub): the guest's SSH host key, handed to the guest
 *                           at boot as a fw_cfg file (never on any argv); client_ed25519(.pub):
 *                           the key Ekiden logs in with (its .pub is the guest's authorized key)
 *   vms/<name>/hostname     the guest's hostname (the VM name), also via fw_cfg
 *   vms/<name>/console.log  serial console of the current boot (console.prev.log: the one before)
 *   vms/<name>/qemu.pid, qmp.sock, qemu.err
 * QEMU runs daemonized (-daemonize, own session), so VMs outlive the worker; everything is on
 * disk, so a new QemuDriver over the same root (a restarted worker) finds, stops and deletes
 * them. A VM runs when its recorded pid is alive and that process's argv carries the VM's
 * `-name` and `-uuid`.
 */
import { errCode, ownVmDirNames, rand, removeVmDir } from './vm-dirs.js';
import { KeyedLock } from '../core/keyed-lock.js';
import { spawn, execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { parseVmName } from '../core/names.js';
import { hostKeyFingerprint } from '../ssh/client.js';
import { resolveAutoAccel, type Accel } from './qemu-accel.js';
import { imageDigest, loadQemuImage } from './qemu-image.js';
import { qmpCommand } from './qemu-qmp.js';
import { DriverError, type ImageInfo, type SshEndpoint, type VmDriver, type VmInfo, type VmState } from './types.js';

export type QemuNetwork =
  | { kind: 'user' }
  /**
   * An existing tap interface per VM (created beforehand, e.g. `ip tuntap add ekiden0 mode tap
   * user <worker user>`, bridged to a network with DHCP). A `%d` in `ifname` is replaced by
   * the lowest index no running VM of this root uses, so `ekiden%d` serves several VMs. The
   * guest's address is what it reports on its serial console once DHCP gave it one.
   */
  | { kind: 'tap'; ifname: string };

export interface QemuDriverOptions {
  /** State directory on this host. */
  root: string;
  /** Image cache (images/build-debian.sh --out); usually defaultQemuImagesDir(). */
  imagesDir: string;
  /** 'auto' (default): KVM when a probe boot under KVM reaches userspace, else TCG. */
  accel?: 'auto' | 'kvm' | 'tcg';
  /** vCPUs of new VMs (clone may override). Default 2. */
  cpu?: number;
  /** Memory of new VMs in MiB (clone may override). Default 2048. */
  memoryMb?: number;
  /** Default 'qemu-system-x86_64' (looked up on PATH). */
  qemuBinary?: string;
  /** Default 'qemu-img'. */
  qemuImgBinary?: string;
  /** Default { kind: 'user' }: NAT, the guest's sshd forwarded to a free 127.0.0.1 port. */
  network?: QemuNetwork;
  /** -cpu model. Default 'host' under KVM, 'max' under TCG. */
  cpuModel?: string;
  /** Virtual size of each VM's disk in GiB (the guest grows its filesystem at boot); default: the image's. */
  diskGb?: number;
  /** At most this many running VMs under root; start beyond it fails with 'capacity'. */
  maxRunning?: number;
  /** stop() grace (ACPI power-down) before SIGKILL when no timeoutMs is given. Default 30000. */
  stopTimeoutMs?: number;
  /** Deadline of the KVM probe boot (accel 'auto'). Default 20000. */
  kvmProbeTimeoutMs?: number;
  /** Appended to the image's kernel command line. */
  extraAppend?: string;
}

interface VmRecord {
  format: 1;
  name: string;
  image: string;
  imageDir: string;
  digest: string;
  kernel: string;
  initrd: string;
  append: string;
  username: string;
  hostKeySha256: string;
  /** 32 hex digits: systemd.machine_id= and (as a UUID) -uuid. */
  machineId: string;
  mac: string;
  cpu: number;
  memoryMb: number;
  /** The overlay is larger than the image's disk: the guest grows its filesystem at boot. */
  growfs?: boolean;
  createdAt: string;
  // while running (or until the next start/stop notices it is gone)
  pid?: number;
  sshPort?: number;
  qmpSocket?: string;
  tapIfname?: string;
  accel?: Accel;
  cpuModel?: string;
  startedAt?: string;
}

const RUNTIME_FIELDS = ['pid', 'sshPort', 'qmpSocket', 'tapIfname', 'accel', 'cpuModel', 'startedAt'] as const;
const KEYS = 'keys';
const HOST_KEY = 'host_ed25519';
const CLIENT_KEY = 'client_ed25519';
/** Longest unix socket path we hand QEMU (sun_path is 108 bytes with the NUL). */
const MAX_SOCKET_PATH = 100;



function checkName(name: string): void {
  if (!parseVmName(name)) throw new DriverError('invalid', `"${name}" is not an Ekiden VM name`);
}

/** QEMU option values: a comma is written as two. */
function optValue(value: string): string {
  return value.replace(/,/g, ',,');
}

function uuidOf(machineId: string): string {
  const h = machineId;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

async function writeFileAtomic(file: string, data: string, mode = 0o644): Promise<void> {
  const tmp = `${file}.${process.pid}.${rand()}.tmp`;
  await fs.writeFile(tmp, data, { mode });
  await fs.rename(tmp, file);
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function run(file: string, args: string[], signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { signal, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const detail = (stderr || err.message).trim().split('\n').slice(-3).join(' | ');
        reject(new DriverError(errCode(err) === 'ENOENT' ? 'not-found' : 'failed', `${path.basename(file)}: ${detail}`, { cause: err }));
      } else resolve(stdout);
    });
  });
}

/** A loopback TCP port nobody listens on right now (QEMU binds it moments later; start retries on a race). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** The argv of a live (non-zombie) process, or undefined. */
async function processArgv(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await fs.readFile(`/proc/${pid}/cmdline`);
    if (raw.length === 0) return undefined; // zombie or kernel thread
    return raw.toString('utf8').replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

function argAfter(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

const GUEST_IPV4 = /ekiden-guest: ipv4=(\d{1,3}(?:\.\d{1,3}){3})/g;

export class QemuDriver implements VmDriver {
  readonly kind = 'qemu' as const;
  private readonly root: string;
  private readonly imagesDir: string;
  private readonly accelOpt: 'auto' | 'kvm' | 'tcg';
  private readonly cpu: number;
  private readonly memoryMb: number;
  private readonly qemuBinary: string;
  private readonly qemuImgBinary: string;
  private readonly network: QemuNetwork;
  private readonly cpuModel: string | undefined;
  private readonly diskGb: number | undefined;
  private readonly maxRunning: number | undefined;
  private readonly stopTimeoutMs: number;
  private readonly kvmProbeTimeoutMs: number;
  private readonly extraAppend: string;
  private readonly locks = new KeyedLock();
  private accelMemo: Promise<Accel> | undefined;

  constructor(opts: QemuDriverOptions) {
    this.root = path.resolve(opts.root);
    this.imagesDir = path.resolve(opts.imagesDir);
    this.accelOpt = opts.accel ?? 'auto';
    this.cpu = opts.cpu ?? 2;
    this.memoryMb = opts.memoryMb ?? 2048;
    this.qemuBinary = opts.qemuBinary ?? 'qemu-system-x86_64';
    this.qemuImgBinary = opts.qemuImgBinary ?? 'qemu-img';
    this.network = opts.network ?? { kind: 'user' };
    this.cpuModel = opts.cpuModel;
    this.diskGb = opts.diskGb;
    this.maxRunning = opts.maxRunning;
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
    this.kvmProbeTimeoutMs = opts.kvmProbeTimeoutMs ?? 20_000;
    this.extraAppend = opts.extraAppend ?? '';
    if (!['auto', 'kvm', 'tcg'].includes(this.accelOpt)) throw new DriverError('invalid', `accel must be auto, kvm or tcg`);
    checkResources(this.cpu, this.memoryMb);
    if (this.diskGb !== undefined && !(Number.isInteger(this.diskGb) && this.diskGb > 0)) {
      throw new DriverError('invalid', 'diskGb must be a positive integer');
    }
    if (this.network.kind === 'tap' && !/^[A-Za-z0-9_.%-]{1,15}$/.test(this.network.ifname)) {
      throw new DriverError('invalid', `tap ifname "${this.network.ifname}" is not a valid interface name`);
    }
  }

  /** The VM's directory on this host. */
  vmDir(name: string): string {
    checkName(name);
    return path.join(this.root, 'vms', name);
  }

  // ---- images ----

  async localImage(args: { image: string }): Promise<ImageInfo | undefined> {
    const image = await loadQemuImage(this.imagesDir, args.image);
    if (!image) return undefined;
    return { image: args.image, digest: await imageDigest(image) };
  }

  /**
   * Images are built on the host (images/ensure-image.sh), not fetched: this verifies that the
   * image is there and returns its digest.
   */
  async pullImage(args: { image: string; signal?: AbortSignal }): Promise<ImageInfo> {
    const image = await loadQemuImage(this.imagesDir, args.image);
    if (!image) {
      throw new DriverError(
        'not-found',
        `image ${args.image} is not in ${this.imagesDir}; build it on this host with images/ensure-image.sh (as root)`,
      );
    }
    return { image: args.image, digest: await imageDigest(image, args.signal) };
  }

  // ---- VMs ----

  async clone(args: { image: string; name: string; cpu?: number; memoryMb?: number; signal?: AbortSignal }): Promise<void> {
    checkName(args.name);
    checkResources(args.cpu ?? this.cpu, args.memoryMb ?? this.memoryMb);
    await this.locks.run(args.name, async () => {
      const dir = this.vmDir(args.name);
      if (existsSync(dir)) return;
      const image = await loadQemuImage(this.imagesDir, args.image);
      if (!image) throw new DriverError('not-found', `image ${args.image} is not cached on this host; build it with images/ensure-image.sh`);
      const digest = await imageDigest(image, args.signal);
      const base = await fs.realpath(image.disk);
      args.signal?.throwIfAborted();
      const vmsDir = path.join(this.root, 'vms');
      await fs.mkdir(vmsDir, { recursive: true, mode: 0o700 });
      const tmp = path.join(vmsDir, `.tmp-${args.name}-${rand()}`);
      try {
        await fs.mkdir(path.join(tmp, KEYS), { recursive: true, mode: 0o700 });
        const createArgs = ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, path.join(tmp, 'disk.qcow2')];
        let growfs = false;
        if (this.diskGb !== undefined) {
          const info = JSON.parse(await run(this.qemuImgBinary, ['info', '--output=json', '-U', base], args.signal)) as { 'virtual-size': number };
          const size = this.diskGb * 1024 ** 3;
          if (size > info['virtual-size']) {
            createArgs.push(String(size));
            growfs = true;
          }
        }
        await run(this.qemuImgBinary, createArgs, args.signal);
        const hostKey = ssh2.utils.generateKeyPairSync('ed25519', { comment: `${args.name} host key` });
        const clientKey = ssh2.utils.generateKeyPairSync('ed25519', { comment: `ekiden@${os.hostname()} for ${args.name}` });
        await fs.writeFile(path.join(tmp, KEYS, HOST_KEY), hostKey.private, { mode: 0o600 });
        await fs.writeFile(path.join(tmp, KEYS, `${HOST_KEY}.pub`), `${hostKey.public}\n`, { mode: 0o644 });
        await fs.writeFile(path.join(tmp, KEYS, CLIENT_KEY), clientKey.private, { mode: 0o600 });
        await fs.writeFile(path.join(tmp, KEYS, `${CLIENT_KEY}.pub`), `${clientKey.public}\n`, { mode: 0o644 });
        await fs.writeFile(path.join(tmp, 'hostname'), args.name, { mode: 0o644 });
        const parsed = ssh2.utils.parseKey(hostKey.public);
        if (parsed instanceof Error) throw parsed;
        const mac = randomBytes(3);
        const rec: VmRecord = {
          format: 1,
          name: args.name,
          image: args.image,
          imageDir: image.dir,
          digest,
          kernel: await fs.realpath(image.kernel),
          initrd: await fs.realpath(image.initrd),
          append: image.append,
          username: image.username,
          hostKeySha256: hostKeyFingerprint(parsed.getPublicSSH()),
          machineId: randomBytes(16).toString('hex'),
          mac: `52:54:00:${[...mac].map((b) => b.toString(16).padStart(2, '0')).join(':')}`,
          cpu: args.cpu ?? this.cpu,
          memoryMb: args.memoryMb ?? this.memoryMb,
          createdAt: new Date().toISOString(),
        };
        if (growfs) rec.growfs = true;
        await fs.writeFile(path.join(tmp, 'vm.json'), `${JSON.stringify(rec, null, 2)}\n`);
        args.signal?.throwIfAborted();
        await fs.rename(tmp, dir);
      } finally {
        await fs.rm(tmp, { recursive: true, force: true });
      }
    });
  }

  async start(args: { name: string; signal?: AbortSignal }): Promise<void> {
    checkName(args.name);
    await this.locks.run(args.name, () => this.startLocked(args.name, args.signal));
  }

  private async startLocked(name: string, signal?: AbortSignal): Promise<void> {
    const dir = this.vmDir(name);
    let rec = await this.readRecord(name);
    if (!rec) throw new DriverError('not-found', `VM ${name} does not exist`);
    if (await this.alive(rec)) return;
    rec = await this.clearRuntime(rec);
    if (this.maxRunning !== undefined) {
      const running = (await this.list()).filter((vm) => vm.state === 'running').length;
      if (running >= this.maxRunning) {
        throw new DriverError('capacity', `${running} VMs already run under ${this.root} (maxRunning ${this.maxRunning})`);
      }
    }
    signal?.throwIfAborted();
    for (const f of [rec.kernel, rec.initrd]) {
      if (!existsSync(f)) throw new DriverError('not-found', `VM ${name}: ${f} of image ${rec.image} is gone`);
    }
    const accel = await this.accel(rec);
    const cpuModel = this.cpuModel ?? (accel === 'kvm' ? 'host' : 'max');
    const consoleLog = path.join(dir, 'console.log');
    await fs.rename(consoleLog, path.join(dir, 'console.prev.log')).catch(() => {});
    let qmpSocket = path.join(dir, 'qmp.sock');
    if (Buffer.byteLength(qmpSocket) > MAX_SOCKET_PATH) {
      qmpSocket = path.join(os.tmpdir(), `ekiden-qmp-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}.sock`);
    }
    const pidFile = path.join(dir, 'qemu.pid');
    await fs.rm(pidFile, { force: true });
    await fs.rm(qmpSocket, { force: true });

    let append = `${rec.append} systemd.machine_id=${rec.machineId}`;
    if (rec.growfs) append += ' ekiden.growfs=1';
    // Under TCG the guest CPU does not speculate: its side-channel mitigations only cost time.
    if (accel === 'tcg') append += ' mitigations=off';
    if (this.extraAppend) append += ` ${this.extraAppend}`;
    const common = [
      '-name', name,
      '-uuid', uuidOf(rec.machineId),
      '-machine', 'q35',
      '-accel', accel === 'tcg' ? 'tcg,thread=multi' : 'kvm',
      '-cpu', cpuModel,
      '-smp', String(rec.cpu),
      '-m', String(rec.memoryMb),
      '-nodefaults', '-no-user-config',
      '-display', 'none',
      '-monitor', 'none',
      '-serial', `file:${optValue(consoleLog)}`,
      '-kernel', rec.kernel,
      '-initrd', rec.initrd,
      '-append', append,
      '-drive', `if=virtio,file=${optValue(path.join(dir, 'disk.qcow2'))},format=qcow2,cache=writeback,discard=unmap`,
      '-device', 'virtio-rng-pci',
      '-fw_cfg', `name=opt/ekiden/host_key,file=${optValue(path.join(dir, KEYS, HOST_KEY))}`,
      '-fw_cfg', `name=opt/ekiden/host_key_pub,file=${optValue(path.join(dir, KEYS, `${HOST_KEY}.pub`))}`,
      '-fw_cfg', `name=opt/ekiden/authorized_keys,file=${optValue(path.join(dir, KEYS, `${CLIENT_KEY}.pub`))}`,
      '-fw_cfg', `name=opt/ekiden/hostname,file=${optValue(path.join(dir, 'hostname'))}`,
      '-qmp', `unix:${optValue(qmpSocket)},server=on,wait=off`,
      '-pidfile', pidFile,
      '-daemonize',
    ];

    const attempts = this.network.kind === 'user' ? 3 : 1;
    for (let attempt = 1; ; attempt++) {
      let sshPort: number | undefined;
      let tapIfname: string | undefined;
      let netdev: string;
      if (this.network.kind === 'user') {
        sshPort = await freePort();
        netdev = `user,id=n0,hostfwd=tcp:127.0.0.1:${sshPort}-:22`;
      } else {
        tapIfname = await this.pickTap(this.network.ifname, name);
        netdev = `tap,id=n0,ifname=${optValue(tapIfname)},script=no,downscript=no`;
      }
      const argv = [...common, '-netdev', netdev, '-device', `virtio-net-pci,netdev=n0,mac=${rec.mac}`];
      const res = await this.launch(dir, argv);
      if (res.ok) {
        const pidText = await fs.readFile(pidFile, 'utf8').catch(() => '');
        const pid = Number(pidText.trim());
        if (!Number.isInteger(pid) || pid <= 0) throw new DriverError('failed', `VM ${name}: QEMU started but wrote no pid file`);
        rec = { ...rec, pid, qmpSocket, accel, cpuModel, startedAt: new Date().toISOString() };
        if (sshPort !== undefined) rec.sshPort = sshPort;
        if (tapIfname !== undefined) rec.tapIfname = tapIfname;
        await this.writeRecord(rec);
        if (!(await this.alive(rec))) {
          throw new DriverError('failed', `VM ${name}: QEMU exited right after starting: ${await this.consoleTail(name)}`);
        }
        return;
      }
      // A QEMU that got as far as daemonizing before failing (or timing out) must not linger.
      const stray = Number((await fs.readFile(pidFile, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(stray) && stray > 0 && (await this.alive({ ...rec, pid: stray }))) {
        try {
          process.kill(stray, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      const portRace = /host forwarding|hostfwd|Address already in use/i.test(res.error);
      if (!portRace || attempt >= attempts) throw new DriverError('failed', `VM ${name}: QEMU did not start: ${res.error}`);
    }
  }

  /** Runs QEMU with -daemonize: its first process exits once the VM is set up (0) or failed. */
  private async launch(dir: string, argv: string[]): Promise<{ ok: boolean; error: string }> {
    const errFile = path.join(dir, 'qemu.err');
    const fh = await fs.open(errFile, 'w', 0o644);
    try {
      const env: NodeJS.ProcessEnv = {};
      for (const key of ['PATH', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR']) if (process.env[key]) env[key] = process.env[key];
      const child = spawn(this.qemuBinary, argv, { detached: true, stdio: ['ignore', 'ignore', fh.fd], env, cwd: dir });
      const outcome = await new Promise<{ code: number | null; error?: string }>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve({ code: null, error: 'QEMU did not finish setting up the VM within 60 s' });
        }, 60_000);
        child.once('error', (err) => {
          clearTimeout(timer);
          resolve({ code: null, error: errCode(err) === 'ENOENT' ? `${this.qemuBinary} not found` : err.message });
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve({ code });
        });
      });
      if (outcome.code === 0) return { ok: true, error: '' };
      const stderr = (await fs.readFile(errFile, 'utf8').catch(() => '')).trim();
      return { ok: false, error: outcome.error ?? (stderr.split('\n').slice(-5).join(' | ') || `exit ${outcome.code}`) };
    } finally {
      await fh.close();
    }
  }

  async sshEndpoint(args: { name: string; timeoutMs: number; signal?: AbortSignal }): Promise<SshEndpoint> {
    checkName(args.name);
    const dir = this.vmDir(args.name);
    const deadline = Date.now() + args.timeoutMs;
    for (;;) {
      args.signal?.throwIfAborted();
      const rec = await this.readRecord(args.name);
      if (!rec) throw new DriverError('not-found', `VM ${args.name} does not exist`);
      if (!(await this.alive(rec))) {
        throw new DriverError('failed', `VM ${args.name} is not running${rec.pid ? `: ${await this.consoleTail(args.name)}` : ''}`);
      }
      let host: string | undefined;
      let port = 22;
      if (rec.sshPort !== undefined) {
        host = '127.0.0.1';
        port = rec.sshPort;
      } else {
        host = await this.guestAddress(args.name);
      }
      if (host !== undefined) {
        return {
          host,
          port,
          username: rec.username,
          privateKey: await fs.readFile(path.join(dir, KEYS, CLIENT_KEY), 'utf8'),
          hostKeySha256: rec.hostKeySha256,
        };
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new DriverError('timeout', `VM ${args.name} reported no IPv4 address within ${args.timeoutMs} ms`);
      await pause(Math.min(250, left), args.signal);
    }
  }

  async stop(args: { name: string; timeoutMs?: number; signal?: AbortSignal }): Promise<void> {
    checkName(args.name);
    await this.locks.run(args.name, () => this.stopLocked(args.name, { graceMs: args.timeoutMs ?? this.stopTimeoutMs, signal: args.signal }));
  }

  /**
   * Graceful: ACPI power button (QMP system_powerdown, repeated every 5 s in case the guest
   * was not listening yet), SIGKILL after graceMs. Hard (delete): QMP quit, SIGKILL after 5 s.
   */
  private async stopLocked(name: string, opts: { graceMs: number; hard?: boolean; signal?: AbortSignal }): Promise<void> {
    const rec = await this.readRecord(name);
    if (!rec) return;
    if (!(await this.alive(rec))) {
      await this.clearRuntime(rec);
      return;
    }
    const started = Date.now();
    const graceMs = opts.hard ? 5_000 : Math.max(0, opts.graceMs);
    const pid = rec.pid!;
    const ask = async (): Promise<boolean> => {
      if (!rec.qmpSocket) return false;
      try {
        await qmpCommand(rec.qmpSocket, opts.hard ? 'quit' : 'system_powerdown', undefined, 3_000);
        return true;
      } catch {
        return false;
      }
    };
    if (graceMs > 0) {
      let asked = await ask();
      if (!asked) {
        // No QMP (socket gone): QEMU still ends cleanly on SIGTERM, though the guest does not shut down.
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      let lastAsk = Date.now();
      while ((await this.alive(rec)) && Date.now() - started < graceMs) {
        await pause(100, opts.signal);
        if (asked && !opts.hard && Date.now() - lastAsk >= 5_000) {
          asked = await ask();
          lastAsk = Date.now();
        }
      }
    }
    if (await this.alive(rec)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (err) {
        if (errCode(err) !== 'ESRCH') throw new DriverError('failed', `VM ${name}: cannot kill QEMU (pid ${pid})`, { cause: err });
      }
      const killDeadline = Date.now() + 10_000;
      while (await this.alive(rec)) {
        if (Date.now() > killDeadline) throw new DriverError('failed', `VM ${name}: QEMU (pid ${pid}) survived SIGKILL`);
        await pause(50);
      }
    }
    await this.clearRuntime(rec);
  }

  async delete(args: { name: string; signal?: AbortSignal }): Promise<void> {
    checkName(args.name);
    await this.locks.run(args.name, async () => {
      const dir = this.vmDir(args.name);
      if (!existsSync(dir)) return;
      // The disk is thrown away: no point in a guest shutdown.
      await this.stopLocked(args.name, { graceMs: 0, hard: true, signal: args.signal });
      await removeVmDir(path.join(this.root, 'vms'), args.name);
    });
  }

  async list(_args?: { signal?: AbortSignal }): Promise<VmInfo[]> {
    const out: VmInfo[] = [];
    for (const name of await ownVmDirNames(path.join(this.root, 'vms'))) {
      const info = await this.info(name);
      if (info) out.push(info);
    }
    return out;
  }

  async get(args: { name: string; signal?: AbortSignal }): Promise<VmInfo | undefined> {
    checkName(args.name);
    return this.info(args.name);
  }

  // ---- extras (not part of VmDriver) ----

  /** Pid of the VM's QEMU process while it runs. */
  async pid(args: { name: string }): Promise<number | undefined> {
    const rec = await this.readRecord(args.name);
    return rec && (await this.alive(rec)) ? rec.pid : undefined;
  }

  /** The serial console of the VM's current (or last) boot. */
  async console(args: { name: string }): Promise<string> {
    return fs.readFile(path.join(this.vmDir(args.name), 'console.log'), 'utf8').catch(() => '');
  }

  /** The accelerator VMs get ('auto' probes once per root and host kernel, cached in accel.json). */
  async resolvedAccel(args: { kernel: string; initrd: string }): Promise<Accel> {
    return this.accel({ kernel: args.kernel, initrd: args.initrd });
  }

  // ---- internals ----

  private accel(rec: Pick<VmRecord, 'kernel' | 'initrd'>): Promise<Accel> {
    if (this.accelOpt !== 'auto') return Promise.resolve(this.accelOpt);
    this.accelMemo ??= resolveAutoAccel({
      qemuBinary: this.qemuBinary,
      kernel: rec.kernel,
      initrd: rec.initrd,
      cacheFile: path.join(this.root, 'accel.json'),
      timeoutMs: this.kvmProbeTimeoutMs,
    })
      .then((v) => v.accel)
      .catch((err: unknown) => {
        this.accelMemo = undefined;
        throw new DriverError('failed', 'KVM probe failed', { cause: err });
      });
    return this.accelMemo;
  }

  private async pickTap(template: string, name: string): Promise<string> {
    const used = new Set<string>();
    for (const vm of await this.list()) {
      if (vm.name === name || vm.state !== 'running') continue;
      const other = await this.readRecord(vm.name);
      if (other?.tapIfname) used.add(other.tapIfname);
    }
    if (!template.includes('%d')) {
      if (used.has(template)) throw new DriverError('capacity', `tap interface ${template} is in use by another VM`);
      return template;
    }
    for (let i = 0; i < 4096; i++) {
      const candidate = template.replace('%d', String(i));
      if (!used.has(candidate)) return candidate;
    }
    throw new DriverError('capacity', `no free tap interface for ${template}`);
  }

  /** The IPv4 address the guest announced on its serial console during this boot. */
  private async guestAddress(name: string): Promise<string | undefined> {
    const text = await this.console({ name });
    let last: string | undefined;
    for (const m of text.matchAll(GUEST_IPV4)) last = m[1];
    return last;
  }

  private async info(name: string): Promise<VmInfo | undefined> {
    if (!existsSync(this.vmDir(name))) return undefined;
    const rec = await this.readRecord(name).catch(() => undefined);
    const state: VmState = rec && (await this.alive(rec)) ? 'running' : 'stopped';
    return rec ? { name, state, image: rec.image } : { name, state };
  }

  private async alive(rec: VmRecord): Promise<boolean> {
    if (rec.pid === undefined) return false;
    const argv = await processArgv(rec.pid);
    if (!argv) return false;
    if (argAfter(argv, '-name') !== rec.name || argAfter(argv, '-uuid') !== uuidOf(rec.machineId)) return false;
    // A zombie has an empty cmdline, but check the state too for processes being reaped.
    const stat = await fs.readFile(`/proc/${rec.pid}/stat`, 'utf8').catch(() => '');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== '' && state !== 'Z' && state !== 'X';
  }

  private async clearRuntime(rec: VmRecord): Promise<VmRecord> {
    if (rec.qmpSocket && !rec.qmpSocket.startsWith(this.vmDir(rec.name))) await fs.rm(rec.qmpSocket, { force: true });
    if (!RUNTIME_FIELDS.some((f) => rec[f] !== undefined)) return rec;
    const copy = { ...rec };
    for (const f of RUNTIME_FIELDS) delete copy[f];
    await this.writeRecord(copy);
    const dir = this.vmDir(rec.name);
    await fs.rm(path.join(dir, 'qemu.pid'), { force: true });
    await fs.rm(path.join(dir, 'qmp.sock'), { force: true });
    return copy;
  }

  private async readRecord(name: string): Promise<VmRecord | undefined> {
    try {
      return JSON.parse(await fs.readFile(path.join(this.vmDir(name), 'vm.json'), 'utf8')) as VmRecord;
    } catch (err) {
      if (errCode(err) === 'ENOENT') return undefined;
      throw new DriverError('failed', `state of VM ${name} is unreadable`, { cause: err });
    }
  }

  private async writeRecord(rec: VmRecord): Promise<void> {
    await writeFileAtomic(path.join(this.vmDir(rec.name), 'vm.json'), `${JSON.stringify(rec, null, 2)}\n`);
  }

  private async consoleTail(name: string): Promise<string> {
    const dir = this.vmDir(name);
    const err = (await fs.readFile(path.join(dir, 'qemu.err'), 'utf8').catch(() => '')).trim();
    const text = await this.console({ name });
    const tail = text.trim().split('\n').slice(-15).join(' | ');
    return [err && `qemu: ${err.split('\n').slice(-3).join(' | ')}`, tail && `console: ${tail}`].filter(Boolean).join('; ').slice(-3000) || 'no output';
  }

  /** Serialises operations per key within this process. */
}

function checkResources(cpu: number, memoryMb: number): void {
  if (!Number.isInteger(cpu) || cpu < 1 || cpu > 64) throw new DriverError('invalid', `cpu must be an integer from 1 to 64, not ${cpu}`);
  if (!Number.isInteger(memoryMb) || memoryMb < 256) throw new DriverError('invalid', `memoryMb must be an integer ≥ 256, not ${memoryMb}`);
}
