/**
 * VmDriver for Linux hosts: one QEMU process per VM, guests from images built by
 * images/build-debian.sh (see drivers/qemu-image.ts for `qemu:` image refs) or pulled from an
 * OCI registry by digest into the host's image cache (`HOST[:PORT]/REPO@sha256:…`, see
 * drivers/qemu-oci.ts; needs the `oci` option).
 *
 * Layout under `root`:
 *   accel.json              cached verdict of the KVM probe (accel 'auto')
 *   vms/<name>/vm.json      state: image, resolved kernel/initrd/disk, host key fingerprint,
 *                           machine id, MAC; while it runs: pid, SSH port, QMP socket, accel
 *   vms/<name>/disk.qcow2   copy-on-write overlay over the image's disk.qcow2 (for a registry
 *                           image: `<cache>/sha256/<hex>/disk.qcow2`, which the cache must not
 *                           delete while the VM exists: see imageDigestsInUse)
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
 *
 * Split by concern: qemu-args.ts builds QEMU's command line (pure), qemu-record.ts holds the
 * VM record and file layout, qemu-process.ts launches, recognises and stops QEMU processes,
 * qemu-net.ts picks ports and tap interfaces; this class sequences them under per-VM locks.
 */
import { checkVmName, listOwnVms, rand, removeVmDir } from './vm-dirs.js';
import { KeyedLock } from '../core/keyed-lock.js';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { hostKeyFingerprint } from '../ssh/client.js';
import { generateSshKeyPair } from '../ssh/keys.js';
import { resolveAutoAccel, type Accel } from './qemu-accel.js';
import { defaultCpuModel, qemuArgs, uuidOf, type QemuNetArgs } from './qemu-args.js';
import { imageDigest, loadQemuImage, QEMU_IMAGE_PREFIX, type QemuImage } from './qemu-image.js';
import { endpointFor, isOciImageRef, ociPullError, parseOciImageRef, pullOciImageIntoCache, type OciImageRef, type OciPullProgress } from './qemu-oci.js';
import type { ImageCache } from '../host/image-cache.js';
import { RegistryClient, type RegistryEndpoint } from '../registry/client.js';
import { freeLoopbackPort, isHostfwdRace, lastGuestIpv4, pickTapIfname } from './qemu-net.js';
import { isQemuOf, killQuietly, launchDaemonized, readPidFile, runTool, stopQemu } from './qemu-process.js';
import { clearRuntime, qemuVmFiles, qmpSocketPath, readQemuRecord, writeQemuRecord, type QemuVmRecord } from './qemu-record.js';
import { pause } from './procs.js';
import { VM_RECORD_FILE, vmRecordText } from './vm-record.js';
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

/** Registry images (`HOST[:PORT]/REPO@sha256:…`) served from the host's content-addressed cache. */
export interface QemuOciOptions {
  /** Where pulled images live (`<root>/sha256/<hex>/`); the host's one ImageCache. */
  cache: ImageCache;
  /** The registry images are pulled from (credentials in memory); a ref must name its host. */
  registry?: RegistryEndpoint;
  /**
   * Digests in use besides this driver's VMs' (which it adds itself), e.g. fills elsewhere;
   * never evicted to make room for a pull.
   */
  inUse?: () => Set<string> | Promise<Set<string>>;
  /** Digests the pools reference (evicted only after everything else). */
  referenced?: () => Set<string> | Promise<Set<string>>;
  /** Progress of a pull (for logs or heartbeats). */
  onProgress?: (p: OciPullProgress & { image: string; digest: string }) => void;
  /** Names the host in messages ("host h1"); default "this host". */
  where?: string;
}

export interface QemuDriverOptions {
  /** State directory on this host. */
  root: string;
  /** Built images (images/build-debian.sh --out), for `qemu:` refs; usually defaultQemuImagesDir(). */
  imagesDir: string;
  /** Registry images pinned by digest, from the host's image cache. Without it such refs are refused. */
  oci?: QemuOciOptions;
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
  private readonly oci: QemuOciOptions | undefined;
  /** Registry image digests clones in progress are using (their VM is not listed yet). */
  private readonly cloning = new Map<string, number>();
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
    this.oci = opts.oci;
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
    checkVmName(name);
    return path.join(this.root, 'vms', name);
  }

  // ---- images ----

  async localImage(args: { image: string }): Promise<ImageInfo | undefined> {
    if (isOciImageRef(args.image)) {
      const ref = this.ociRef(args.image);
      return (await this.cachedOciImage(ref)) ? { image: args.image, digest: ref.digest } : undefined;
    }
    const image = await loadQemuImage(this.imagesDir, args.image);
    if (!image) return undefined;
    return { image: args.image, digest: await imageDigest(image) };
  }

  /**
   * `qemu:` images are built on the host (images/ensure-image.sh), not fetched: this verifies
   * that the image is there and returns its digest. Registry images are pulled into the image
   * cache (nothing is fetched when it holds them already); their digest is the manifest's.
   */
  async pullImage(args: { image: string; signal?: AbortSignal }): Promise<ImageInfo> {
    if (isOciImageRef(args.image)) return this.pullOciImage(args.image, args.signal);
    const image = await loadQemuImage(this.imagesDir, args.image);
    if (!image) {
      throw new DriverError(
        'not-found',
        `image ${args.image} is not in ${this.imagesDir}; build it on this host with images/ensure-image.sh (as root)`,
      );
    }
    return { image: args.image, digest: await imageDigest(image, args.signal) };
  }

  /**
   * Digests of the cached registry images this root's VMs were cloned from (their overlays
   * sit on the cached disks): the cache must neither evict nor collect them.
   */
  async imageDigestsInUse(): Promise<Set<string>> {
    const used = new Set<string>([...this.cloning.keys()]);
    for (const vm of await this.list()) {
      const rec = await this.readRecord(vm.name).catch(() => undefined);
      const digest = rec && this.ociDigestOf(rec);
      if (digest) used.add(digest);
    }
    return used;
  }

  private async pullOciImage(image: string, signal?: AbortSignal): Promise<ImageInfo> {
    const ref = this.ociRef(image);
    const oci = this.oci!;
    if (await this.cachedOciImage(ref)) {
      await oci.cache.touch(ref.digest);
      return { image, digest: ref.digest };
    }
    const where = oci.where ?? 'this host';
    const client = new RegistryClient(endpointFor(ref, oci.registry, where));
    try {
      const [own, extra, referenced] = await Promise.all([this.imageDigestsInUse(), oci.inUse?.(), oci.referenced?.()]);
      const r = await pullOciImageIntoCache({
        client,
        cache: oci.cache,
        repository: ref.repository,
        digest: ref.digest,
        referenced: new Set(referenced ?? []),
        inUse: new Set([...own, ...(extra ?? [])]),
        signal,
        onProgress: oci.onProgress && ((p) => oci.onProgress!({ ...p, image, digest: ref.digest })),
      });
      if (!(await loadQemuImage(this.imagesDir, `${QEMU_IMAGE_PREFIX}${r.dir}`))) {
        throw new DriverError('failed', `image ${image}: the cache entry ${r.dir} is not a complete QEMU image`);
      }
      return { image, digest: ref.digest };
    } catch (err) {
      throw ociPullError(image, err);
    } finally {
      client.close();
    }
  }

  /** The parsed registry ref; 'invalid' when it is malformed, unpinned, or this driver has no cache. */
  private ociRef(image: string): OciImageRef {
    const ref = parseOciImageRef(image);
    if (!this.oci) {
      throw new DriverError('invalid', `image ${image} is a registry image, but this QEMU driver has no image cache configured; use a qemu:NAME image or give the driver its oci options`);
    }
    return ref;
  }

  /** The cached image of a registry ref, or undefined when the cache does not hold it (completely). */
  private async cachedOciImage(ref: OciImageRef): Promise<QemuImage | undefined> {
    const cache = this.oci!.cache;
    if (!(await cache.has(ref.digest))) return undefined;
    const image = await loadQemuImage(this.imagesDir, `${QEMU_IMAGE_PREFIX}${cache.dir(ref.digest)}`);
    return image && { ...image, ref: ref.ref };
  }

  /** The image a ref names as loaded for a clone (undefined: not there). */
  private async imageFor(image: string): Promise<{ image: QemuImage; digest: (signal?: AbortSignal) => Promise<string> } | undefined> {
    if (isOciImageRef(image)) {
      const ref = this.ociRef(image);
      const cached = await this.cachedOciImage(ref);
      if (!cached) return undefined;
      await this.oci!.cache.touch(ref.digest);
      return { image: cached, digest: () => Promise.resolve(ref.digest) };
    }
    const local = await loadQemuImage(this.imagesDir, image);
    return local && { image: local, digest: (signal) => imageDigest(local, signal) };
  }

  /** The cache digest a VM's record points at, when it was cloned from a registry image. */
  private ociDigestOf(rec: QemuVmRecord): string | undefined {
    if (!isOciImageRef(rec.image)) return undefined;
    try {
      return parseOciImageRef(rec.image).digest;
    } catch {
      return undefined;
    }
  }

  // ---- VMs ----

  async clone(args: { image: string; name: string; cpu?: number; memoryMb?: number; signal?: AbortSignal }): Promise<void> {
    checkVmName(args.name);
    checkResources(args.cpu ?? this.cpu, args.memoryMb ?? this.memoryMb);
    await this.locks.run(args.name, async () => {
      if (existsSync(this.vmDir(args.name))) return;
      // A registry image counts as in use from here on: a GC now must not take it away.
      const release = isOciImageRef(args.image) ? this.holdDigest(this.ociRef(args.image).digest) : () => {};
      try {
        const found = await this.imageFor(args.image);
        if (!found) {
          const how = isOciImageRef(args.image) ? 'pull it first (pullImage)' : 'build it with images/ensure-image.sh';
          throw new DriverError('not-found', `image ${args.image} is not cached on this host; ${how}`);
        }
        await this.cloneFrom(args, found.image, await found.digest(args.signal));
      } finally {
        release();
      }
    });
  }

  private holdDigest(digest: string): () => void {
    this.cloning.set(digest, (this.cloning.get(digest) ?? 0) + 1);
    return () => {
      const n = (this.cloning.get(digest) ?? 1) - 1;
      if (n > 0) this.cloning.set(digest, n);
      else this.cloning.delete(digest);
    };
  }

  /** Builds the VM's directory (overlay, keys, record) beside it and renames it into place. */
  private async cloneFrom(args: { image: string; name: string; cpu?: number; memoryMb?: number; signal?: AbortSignal }, image: QemuImage, digest: string): Promise<void> {
    const dir = this.vmDir(args.name);
    const base = await fs.realpath(image.disk);
    args.signal?.throwIfAborted();
    const vmsDir = path.join(this.root, 'vms');
    await fs.mkdir(vmsDir, { recursive: true, mode: 0o700 });
    const tmp = path.join(vmsDir, `.tmp-${args.name}-${rand()}`);
    try {
      const files = qemuVmFiles(tmp);
      await fs.mkdir(files.keysDir, { recursive: true, mode: 0o700 });
      const createArgs = ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, files.disk];
      let growfs = false;
      if (this.diskGb !== undefined) {
        const info = JSON.parse(await runTool(this.qemuImgBinary, ['info', '--output=json', '-U', base], args.signal)) as { 'virtual-size': number };
        const size = this.diskGb * 1024 ** 3;
        if (size > info['virtual-size']) {
          createArgs.push(String(size));
          growfs = true;
        }
      }
      await runTool(this.qemuImgBinary, createArgs, args.signal);
      // Not ssh2's generator directly: about one key in 256 it makes cannot be parsed (ssh/keys.ts).
      const hostKeyPair = generateSshKeyPair({ comment: `${args.name} host key` });
      const clientKeyPair = generateSshKeyPair({ comment: `ekiden@${os.hostname()} for ${args.name}` });
      const hostKey = { private: hostKeyPair.privateKey, public: hostKeyPair.publicKey };
      const clientKey = { private: clientKeyPair.privateKey, public: clientKeyPair.publicKey };
      await fs.writeFile(files.hostKey, hostKey.private, { mode: 0o600 });
      await fs.writeFile(files.hostKeyPub, `${hostKey.public}\n`, { mode: 0o644 });
      await fs.writeFile(files.clientKey, clientKey.private, { mode: 0o600 });
      await fs.writeFile(files.clientKeyPub, `${clientKey.public}\n`, { mode: 0o644 });
      await fs.writeFile(files.hostname, args.name, { mode: 0o644 });
      const parsed = ssh2.utils.parseKey(hostKey.public);
      if (parsed instanceof Error) throw parsed;
      const mac = randomBytes(3);
      const rec: QemuVmRecord = {
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
      await fs.writeFile(path.join(tmp, VM_RECORD_FILE), vmRecordText(rec));
      args.signal?.throwIfAborted();
      await fs.rename(tmp, dir);
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  }

  async start(args: { name: string; signal?: AbortSignal }): Promise<void> {
    checkVmName(args.name);
    await this.locks.run(args.name, () => this.startLocked(args.name, args.signal));
  }

  private async startLocked(name: string, signal?: AbortSignal): Promise<void> {
    const dir = this.vmDir(name);
    let rec = await this.readRecord(name);
    if (!rec) throw new DriverError('not-found', `VM ${name} does not exist`);
    if (await this.alive(rec)) return;
    rec = await clearRuntime(dir, rec);
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
    const cpuModel = this.cpuModel ?? defaultCpuModel(accel);
    const files = qemuVmFiles(dir);
    await fs.rename(files.console, files.prevConsole).catch(() => {});
    const qmpSocket = qmpSocketPath(dir);
    await fs.rm(files.pidFile, { force: true });
    await fs.rm(qmpSocket, { force: true });

    const attempts = this.network.kind === 'user' ? 3 : 1;
    for (let attempt = 1; ; attempt++) {
      const network: QemuNetArgs =
        this.network.kind === 'user'
          ? { kind: 'user', sshPort: await freeLoopbackPort() }
          : { kind: 'tap', ifname: await this.pickTap(this.network.ifname, name) };
      const { argv } = qemuArgs({
        name,
        machineId: rec.machineId,
        accel,
        cpuModel,
        cpu: rec.cpu,
        memoryMb: rec.memoryMb,
        kernel: rec.kernel,
        initrd: rec.initrd,
        append: rec.append,
        growfs: rec.growfs,
        extraAppend: this.extraAppend,
        dir,
        qmpSocket,
        mac: rec.mac,
        network,
      });
      const res = await launchDaemonized({ qemuBinary: this.qemuBinary, argv, cwd: dir, errFile: files.errFile });
      if (res.ok) {
        const pid = await readPidFile(files.pidFile);
        if (pid === undefined) throw new DriverError('failed', `VM ${name}: QEMU started but wrote no pid file`);
        rec = { ...rec, pid, qmpSocket, accel, cpuModel, startedAt: new Date().toISOString() };
        if (network.kind === 'user') rec.sshPort = network.sshPort;
        else rec.tapIfname = network.ifname;
        await this.writeRecord(rec);
        if (!(await this.alive(rec))) {
          throw new DriverError('failed', `VM ${name}: QEMU exited right after starting: ${await this.consoleTail(name)}`);
        }
        return;
      }
      // A QEMU that got as far as daemonizing before failing (or timing out) must not linger.
      const stray = await readPidFile(files.pidFile);
      if (stray !== undefined && (await this.alive({ ...rec, pid: stray }))) killQuietly(stray, 'SIGKILL');
      if (!isHostfwdRace(res.error) || attempt >= attempts) throw new DriverError('failed', `VM ${name}: QEMU did not start: ${res.error}`);
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
          privateKey: await fs.readFile(qemuVmFiles(dir).clientKey, 'utf8'),
          hostKeySha256: rec.hostKeySha256,
        };
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new DriverError('timeout', `VM ${args.name} reported no IPv4 address within ${args.timeoutMs} ms`);
      await pause(Math.min(250, left), args.signal);
    }
  }

  async stop(args: { name: string; timeoutMs?: number; signal?: AbortSignal }): Promise<void> {
    checkVmName(args.name);
    await this.locks.run(args.name, () => this.stopLocked(args.name, { graceMs: args.timeoutMs ?? this.stopTimeoutMs, signal: args.signal }));
  }

  /** See stopQemu (qemu-process.ts); hard: delete's, QMP quit. */
  private async stopLocked(name: string, opts: { graceMs: number; hard?: boolean; signal?: AbortSignal }): Promise<void> {
    const dir = this.vmDir(name);
    const rec = await this.readRecord(name);
    if (!rec) return;
    if (await this.alive(rec)) {
      await stopQemu({ name, pid: rec.pid!, qmpSocket: rec.qmpSocket, graceMs: opts.graceMs, hard: opts.hard, signal: opts.signal, alive: () => this.alive(rec) });
    }
    await clearRuntime(dir, rec);
  }

  async delete(args: { name: string; signal?: AbortSignal }): Promise<void> {
    checkVmName(args.name);
    await this.locks.run(args.name, async () => {
      const dir = this.vmDir(args.name);
      if (!existsSync(dir)) return;
      // The disk is thrown away: no point in a guest shutdown.
      await this.stopLocked(args.name, { graceMs: 0, hard: true, signal: args.signal });
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

  // ---- extras (not part of VmDriver) ----

  /** Pid of the VM's QEMU process while it runs. */
  async pid(args: { name: string }): Promise<number | undefined> {
    const rec = await this.readRecord(args.name);
    return rec && (await this.alive(rec)) ? rec.pid : undefined;
  }

  /** The serial console of the VM's current (or last) boot. */
  async console(args: { name: string }): Promise<string> {
    return fs.readFile(qemuVmFiles(this.vmDir(args.name)).console, 'utf8').catch(() => '');
  }

  /** The accelerator VMs get ('auto' probes once per root and host kernel, cached in accel.json). */
  async resolvedAccel(args: { kernel: string; initrd: string }): Promise<Accel> {
    return this.accel({ kernel: args.kernel, initrd: args.initrd });
  }

  // ---- internals ----

  private accel(rec: Pick<QemuVmRecord, 'kernel' | 'initrd'>): Promise<Accel> {
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
    const used = new Set<string>([...this.cloning.keys()]);
    for (const vm of await this.list()) {
      if (vm.name === name || vm.state !== 'running') continue;
      const other = await this.readRecord(vm.name);
      if (other?.tapIfname) used.add(other.tapIfname);
    }
    return pickTapIfname(template, used);
  }

  /** The IPv4 address the guest announced on its serial console during this boot. */
  private async guestAddress(name: string): Promise<string | undefined> {
    return lastGuestIpv4(await this.console({ name }));
  }

  private async info(name: string): Promise<VmInfo | undefined> {
    if (!existsSync(this.vmDir(name))) return undefined;
    const rec = await this.readRecord(name).catch(() => undefined);
    const state: VmState = rec && (await this.alive(rec)) ? 'running' : 'stopped';
    return rec ? { name, state, image: rec.image } : { name, state };
  }

  private async alive(rec: QemuVmRecord): Promise<boolean> {
    return rec.pid !== undefined && isQemuOf(rec.pid, { name: rec.name, uuid: uuidOf(rec.machineId) });
  }

  private async readRecord(name: string): Promise<QemuVmRecord | undefined> {
    return readQemuRecord(this.vmDir(name));
  }

  private async writeRecord(rec: QemuVmRecord): Promise<void> {
    await writeQemuRecord(this.vmDir(rec.name), rec);
  }

  private async consoleTail(name: string): Promise<string> {
    const err = (await fs.readFile(qemuVmFiles(this.vmDir(name)).errFile, 'utf8').catch(() => '')).trim();
    const text = await this.console({ name });
    const tail = text.trim().split('\n').slice(-15).join(' | ');
    return [err && `qemu: ${err.split('\n').slice(-3).join(' | ')}`, tail && `console: ${tail}`].filter(Boolean).join('; ').slice(-3000) || 'no output';
  }
}

function checkResources(cpu: number, memoryMb: number): void {
  if (!Number.isInteger(cpu) || cpu < 1 || cpu > 64) throw new DriverError('invalid', `cpu must be an integer from 1 to 64, not ${cpu}`);
  if (!Number.isInteger(memoryMb) || memoryMb < 256) throw new DriverError('invalid', `memoryMb must be an integer ≥ 256, not ${memoryMb}`);
}
