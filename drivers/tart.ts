/**
 * VmDriver for macOS hosts: Cirrus Labs' Tart (https://tart.run), driven through its CLI.
 * Built against tart 2.x (cirruslabs/tart Sources/tart/Commands/*.swift; see
 * /work/shared/REFERENCE.md "Tart"):
 *
 *   localImage  tart list --source oci|local --format json, then tart fqn IMAGE (tag → digest)
 *   pullImage   tart pull [--insecure] IMAGE
 *   clone       tart get NAME --format json (exists? then done), else
 *               tart clone [--insecure] IMAGE NAME; tart set NAME --cpu N --memory MB
 *   start       tart run NAME --no-graphics, detached, stdout+stderr to logDir/NAME.log; once
 *               tart reports the VM running, capacityWindowMs more of watching for Apple's VM
 *               limit ("The number of VMs exceeds the system limit", exit 1 shortly after the
 *               VM starts), which becomes DriverError 'capacity'
 *   sshEndpoint tart ip NAME --wait S [--resolver R] → { host: ip, port: 22, username, … }
 *   stop        tart stop NAME --timeout S (exit 2 = missing/not running = done)
 *   delete      tart stop (when running), tart delete NAME (exit 2 = done)
 *   list / get  tart list --source local --format json / tart get NAME --format json
 *
 * Exit codes: 2 → 'not-found' (or success where the contract says so), 64 → 'invalid' (our
 * arguments were wrong: the message carries tart's `Error:` line), 1 → 'failed' ('capacity' for
 * the VM limit). Every command runs through execa with the caller's AbortSignal (tart handles
 * SIGINT as cancellation: clone/pull clean up); aborts reject with the signal's reason.
 * Secrets never go on an argv: registry credentials travel as TART_REGISTRY_USERNAME/PASSWORD
 * in the environment of `pull`/`clone` only; the SSH password is never given to tart at all.
 *
 * Host files: stateDir/NAME.json {image, pid of `tart run`, startedAt, log}, logDir/NAME.log
 * (`tart run` output, one header line per boot). Both go with delete(). Tart itself keeps VMs
 * under TART_HOME (option tartHome), so a restarted worker finds everything again.
 *
 * Not covered by tart, so not here: a host key known up front (sshEndpoint leaves
 * hostKeySha256 undefined; the caller pins the first key seen), per-VM resource accounting
 * beyond maxRunning.
 */
import { errCode } from './vm-dirs.js';
import { KeyedLock } from '../core/keyed-lock.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa, type Result, type ResultPromise } from 'execa';
import { parseVmName } from '../core/names.js';
import { DriverError, type ImageInfo, type SshEndpoint, type VmDriver, type VmInfo, type VmState } from './types.js';

export interface TartDriverOptions {
  /** The tart executable (looked up on PATH). Default 'tart'. */
  tartBinary?: string;
  /** Passed to every tart command as TART_HOME (tart's default: ~/.tart). */
  tartHome?: string;
  /** Pull over plain HTTP (`--insecure` on pull and clone). */
  insecureRegistries?: boolean;
  /** Registry credentials: only ever in the environment of pull/clone. */
  registryUsername?: string;
  registryPassword?: string;
  /** SSH user of the guests. Default 'admin' (Cirrus Labs' images). */
  username?: string;
  /** SSH password. Default 'admin' unless a privateKey is given. */
  password?: string;
  /** OpenSSH/PEM private key for the guests. */
  privateKey?: string;
  /** At most this many of Ekiden's VMs run on this host (Apple allows 2 macOS VMs). Default 2. */
  maxRunning?: number;
  /** Per-VM `tart run` logs (NAME.log). */
  logDir: string;
  /** Per-VM driver state (NAME.json). */
  stateDir: string;
  /** Extra environment for every tart command (e.g. TART_NO_AUTO_PRUNE). */
  env?: Record<string, string>;
  /** `tart ip --resolver`; tart's default (dhcp) when unset. Use 'arp' or 'agent' for bridged networking. */
  ipResolver?: 'dhcp' | 'arp' | 'agent';
  /** stop() grace before tart kills the VM when no timeoutMs is given. Default 30000 (tart's default). */
  stopTimeoutMs?: number;
  /**
   * How long start() keeps watching `tart run` once tart reports the VM running, for an early
   * failure (Apple's VM limit is reported shortly after the VM starts). Default 5000.
   */
  capacityWindowMs?: number;
  /** How long start() waits for `tart run` to take the VM (tart get: running). Default 60000. */
  startTimeoutMs?: number;
  /** Deadline of short commands (list, get, set, stop's own overhead, …). Default 60000. */
  commandTimeoutMs?: number;
  /**
   * TESTS ONLY. The SSH port of a VM; default 22, which is what real Tart guests serve and
   * what `tart ip` implies (it prints a bare address). Test doubles that cannot bind port 22
   * on the host publish another port and hand it over through this hook.
   */
  sshPortFor?: (name: string) => Promise<number>;
}

/** `tart list --format json` element. */
interface TartListEntry {
  Source: string;
  Name: string;
  Running?: boolean;
  State?: string;
}

/** `tart get --format json`. */
interface TartGet {
  CPU?: number;
  Memory?: number;
  Running?: boolean;
  State?: string;
}

interface StateRecord {
  name: string;
  image?: string;
  pid?: number;
  startedAt?: string;
  log?: string;
}

type TartResult = Result<{ reject: false }>;

const RUN_OPTIONS = { extendEnv: true, detached: true, cleanup: false, stdin: 'ignore', reject: false } as const;
type RunOptions = typeof RUN_OPTIONS & { stdout: 3; stderr: 3 };
type RunResult = Result<RunOptions>;

/** Tart's wording (RuntimeError.VirtualMachineLimitExceeded) and Virtualization.framework's older one. */
const LIMIT_RE = /number of VMs exceeds the system limit|maximum supported number of active virtual machines/i;
const IPV4_RE = /^(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const MAX_MESSAGE = 300;


function checkName(name: string): void {
  if (!parseVmName(name)) throw new DriverError('invalid', `"${name}" is not an Ekiden VM name`);
}

function running(info: { Running?: boolean; State?: string }): boolean {
  return info.Running === true || info.State === 'running';
}

function clip(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > MAX_MESSAGE ? `${one.slice(0, MAX_MESSAGE - 1)}…` : one;
}

/** The one line of tart's output that says what went wrong. */
function reason(r: { stdout?: unknown; stderr?: unknown }): string {
  const lines = [r.stderr, r.stdout]
    .map((s) => (typeof s === 'string' ? s : ''))
    .join('\n')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const line = lines.find((l) => l.startsWith('Error:')) ?? lines.find((l) => LIMIT_RE.test(l)) ?? lines[0];
  return clip(line ?? 'no output');
}

interface ImageRef {
  /** As tart lists it: `host/ns:tag` or `host/ns@sha256:…`; a local VM's name otherwise. */
  name: string;
  remote: boolean;
  digest?: string;
}

/** Tart's RemoteName rules in short: `host/namespace[:tag|@sha256:…]`, tag defaulting to latest. */
function imageRef(image: string): ImageRef {
  // Never let an image reference read as one of tart's options.
  if (!image || image.startsWith('-') || /\s/.test(image)) throw new DriverError('invalid', `"${image}" is not an image reference`);
  const at = image.indexOf('@');
  const base = at >= 0 ? image.slice(0, at) : image;
  if (!base.includes('/') || base.startsWith('/')) return { name: image, remote: false };
  if (at >= 0) return { name: image, remote: true, digest: image.slice(at + 1) };
  const lastSlash = base.lastIndexOf('/');
  const hasTag = base.lastIndexOf(':') > lastSlash;
  return { name: hasTag ? base : `${base}:latest`, remote: true };
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DriverError('failed', 'aborted');
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class TartDriver implements VmDriver {
  readonly kind = 'tart' as const;
  private readonly tartBinary: string;
  private readonly tartHome: string | undefined;
  private readonly insecure: boolean;
  private readonly registryUsername: string | undefined;
  private readonly registryPassword: string | undefined;
  private readonly username: string;
  private readonly password: string | undefined;
  private readonly privateKey: string | undefined;
  private readonly maxRunning: number;
  private readonly logDir: string;
  private readonly stateDir: string;
  private readonly env: Record<string, string>;
  private readonly ipResolver: TartDriverOptions['ipResolver'];
  private readonly stopTimeoutMs: number;
  private readonly capacityWindowMs: number;
  private readonly startTimeoutMs: number;
  private readonly commandTimeoutMs: number;
  private readonly sshPortFor: TartDriverOptions['sshPortFor'];
  private readonly locks = new KeyedLock();

  constructor(opts: TartDriverOptions) {
    this.tartBinary = opts.tartBinary ?? 'tart';
    this.tartHome = opts.tartHome === undefined ? undefined : path.resolve(opts.tartHome);
    this.insecure = opts.insecureRegistries ?? false;
    this.registryUsername = opts.registryUsername;
    this.registryPassword = opts.registryPassword;
    this.username = opts.username ?? 'admin';
    this.privateKey = opts.privateKey;
    this.password = opts.password ?? (opts.privateKey === undefined ? 'admin' : undefined);
    this.maxRunning = opts.maxRunning ?? 2;
    this.logDir = path.resolve(opts.logDir);
    this.stateDir = path.resolve(opts.stateDir);
    this.env = { ...opts.env };
    this.ipResolver = opts.ipResolver;
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
    this.capacityWindowMs = opts.capacityWindowMs ?? 5_000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 60_000;
    this.sshPortFor = opts.sshPortFor;
  }

  /** Log file of the VM's `tart run` (one header line per boot). */
  logFile(name: string): string {
    checkName(name);
    return path.join(this.logDir, `${name}.log`);
  }

  // ---- images ----

  async localImage(args: { image: string }): Promise<ImageInfo | undefined> {
    const ref = imageRef(args.image);
    if (!ref.remote) {
      const local = await this.listRaw('local');
      return local.some((e) => e.Name === ref.name) ? { image: args.image, digest: localDigest(ref.name) } : undefined;
    }
    const cached = await this.listRaw('oci');
    if (!cached.some((e) => e.Name === ref.name)) return undefined;
    return { image: args.image, digest: await this.digestOf(ref, cached) };
  }

  async pullImage(args: { image: string; signal?: AbortSignal }): Promise<ImageInfo> {
    const ref = imageRef(args.image);
    if (!ref.remote) {
      // Tart pulls only OCI images; a local VM (e.g. built by Packer) is its own "image".
      const local = await this.localImage({ image: args.image });
      if (!local) throw new DriverError('not-found', `image ${args.image} is neither a registry image nor a local VM`);
      return local;
    }
    const r = await this.tart(['pull', ...(this.insecure ? ['--insecure'] : []), args.image], {
      signal: args.signal,
      registry: true,
      timeoutMs: 0,
    });
    if (r.exitCode !== 0) throw this.failure(`tart pull ${args.image}`, r);
    const cached = await this.listRaw('oci', args.signal);
    if (!cached.some((e) => e.Name === ref.name)) {
      throw new DriverError('failed', `tart pull ${args.image} succeeded but tart list does not show ${ref.name}`);
    }
    return { image: args.image, digest: await this.digestOf(ref, cached, args.signal) };
  }

  /** sha256 digest of a cached OCI image: from its name, else `tart fqn`, else the repository's only digest entry. */
  private async digestOf(ref: ImageRef, cached: TartListEntry[], signal?: AbortSignal): Promise<string> {
    if (ref.digest) return ref.digest;
    const r = await this.tart(['fqn', ref.name], { signal });
    const fromFqn = r.exitCode === 0 ? /@(sha256:[0-9a-f]{64})\s*$/.exec(String(r.stdout)) : null;
    if (fromFqn) return fromFqn[1]!;
    // Tart versions without `fqn` (exit 64): a repository with exactly one cached digest.
    const repo = ref.name.slice(0, ref.name.lastIndexOf(':'));
    const digests = cached.filter((e) => e.Name.startsWith(`${repo}@sha256:`));
    if (digests.length === 1) return digests[0]!.Name.slice(repo.length + 1);
    throw new DriverError('failed', `cannot tell the digest of cached image ${ref.name}: ${reason(r)}`, { cause: r });
  }

  // ---- VMs ----

  async clone(args: { image: string; name: string; cpu?: number; memoryMb?: number; signal?: AbortSignal }): Promise<void> {
    checkName(args.name);
    imageRef(args.image);
    await this.locks.run(args.name, async () => {
      const existing = await this.getRaw(args.name, args.signal);
      if (!existing) {
        const r = await this.tart(['clone', ...(this.insecure ? ['--insecure'] : []), args.image, args.name], {
          signal: args.signal,
          registry: true,
          timeoutMs: 0,
        });
        if (r.exitCode !== 0) throw this.failure(`tart clone ${args.image} ${args.name}`, r);
      }
      if (!existing || (await this.readState(args.name))?.image === undefined) {
        await this.writeState({ name: args.name, image: args.image });
      }
      // Also on an existing VM: a clone interrupted between `tart clone` and `tart set`
      // is completed by the retry. Tart reads the config at boot, so never touch a running VM.
      const set: string[] = [];
      if (args.cpu !== undefined && existing?.CPU !== args.cpu) set.push('--cpu', String(args.cpu));
      if (args.memoryMb !== undefined && existing?.Memory !== args.memoryMb) set.push('--memory', String(args.memoryMb));
      if (set.length === 0 || (existing && running(existing))) return;
      const r = await this.tart(['set', args.name, ...set], { signal: args.signal });
      if (r.exitCode !== 0) throw this.failure(`tart set ${args.name}`, r);
    });
  }

  async start(args: { name: string; signal?: AbortSignal }): Promise<void> {
    checkName(args.name);
    await this.locks.run(args.name, () => this.locks.run('capacity', () => this.startLocked(args.name, args.signal)));
  }

  private async startLocked(name: string, signal?: AbortSignal): Promise<void> {
    const info = await this.getRaw(name, signal);
    if (!info) throw new DriverError('not-found', `VM ${name} does not exist`);
    if (running(info)) return;
    const busy = (await this.list({ signal })).filter((vm) => vm.state === 'running');
    if (busy.length >= this.maxRunning) {
      throw new DriverError('capacity', `${busy.length} Ekiden VMs already run on this host (at most ${this.maxRunning})`);
    }
    signal?.throwIfAborted();

    const logFile = this.logFile(name);
    await fs.mkdir(this.logDir, { recursive: true });
    const log = await fs.open(logFile, 'a', 0o600);
    let offset: number;
    let child: ResultPromise<RunOptions>;
    try {
      await log.write(`--- ${new Date().toISOString()} ekiden: tart run ${name} --no-graphics\n`);
      offset = (await log.stat()).size;
      // Detached (own session), output straight into the log file (no pipe through us), so
      // the VM outlives this process; tart run stays in the foreground until the VM stops.
      // execa's types admit only fds 3-9 here; at run time any fd goes to spawn() as is.
      const fd = log.fd as 3;
      child = execa(this.tartBinary, ['run', name, '--no-graphics'], {
        ...RUN_OPTIONS,
        env: this.commandEnv(false),
        stdout: fd,
        stderr: fd,
      });
    } finally {
      await log.close();
    }
    child.unref();
    const pid = child.pid;
    if (pid !== undefined) await this.writeState({ name, pid, startedAt: new Date().toISOString(), log: logFile });

    let exit: RunResult | undefined;
    const exited = child.then((r) => (exit = r));
    const output = async () => (await fs.readFile(logFile).catch(() => Buffer.alloc(0))).subarray(offset).toString('utf8');
    // Phase 1: until tart holds the VM's lock (tart get says running), however slow the host.
    // Phase 2: capacityWindowMs more, the time Apple's limit takes to show once the VM starts.
    const lockDeadline = Date.now() + this.startTimeoutMs;
    let deadline: number | undefined;
    let nextGet = 0;
    try {
      for (;;) {
        await Promise.race([exited, pause(100, signal)]);
        if (exit) {
          await this.writeState({ name, pid: undefined, startedAt: undefined });
          const text = await output();
          if (LIMIT_RE.test(text)) {
            throw new DriverError('capacity', `tart run ${name}: ${reason({ stderr: text })}`, { cause: exit });
          }
          // Someone else started it between our check and our run: it runs, as asked.
          if (exit.exitCode === 2 && /already running/i.test(text)) return;
          const code = exit.exitCode === 2 ? 'not-found' : 'failed';
          throw new DriverError(code, `tart run ${name} exited with ${exit.exitCode ?? exit.signal ?? 'an error'}: ${reason({ stderr: text || exit.message })}`, {
            cause: exit,
          });
        }
        const text = await output();
        if (LIMIT_RE.test(text)) {
          await this.endRun(child, exited);
          await this.writeState({ name, pid: undefined, startedAt: undefined });
          throw new DriverError('capacity', `tart run ${name}: ${reason({ stderr: text })}`);
        }
        if (deadline === undefined && Date.now() >= nextGet) {
          nextGet = Date.now() + 250;
          const now = await this.getRaw(name, signal);
          if (now && running(now)) deadline = Date.now() + this.capacityWindowMs;
          else if (Date.now() >= lockDeadline && !exit) {
            await this.endRun(child, exited);
            await this.writeState({ name, pid: undefined, startedAt: undefined });
            throw new DriverError('timeout', `tart run ${name} did not start the VM within ${this.startTimeoutMs} ms`);
          }
        }
        if (deadline !== undefined && Date.now() >= deadline) return;
      }
    } catch (err) {
      if (signal?.aborted && !exit) {
        // Cancelled start: do not leave a VM running that nobody waits for.
        await this.endRun(child, exited);
        await this.writeState({ name, pid: undefined, startedAt: undefined });
      }
      throw err;
    }
  }

  /** SIGINT (tart stops the VM), SIGKILL after 10 s. */
  private async endRun(child: { kill(sig: NodeJS.Signals): boolean }, exited: Promise<unknown>): Promise<void> {
    child.kill('SIGINT');
    const done = await Promise.race([exited.then(() => true), pause(10_000).then(() => false)]);
    if (!done) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  async sshEndpoint(args: { name: string; timeoutMs: number; signal?: AbortSignal }): Promise<SshEndpoint> {
    checkName(args.name);
    const waitS = Math.min(65_535, Math.max(1, Math.ceil(args.timeoutMs / 1000)));
    const r = await this.tart(['ip', args.name, '--wait', String(waitS), ...(this.ipResolver ? ['--resolver', this.ipResolver] : [])], {
      signal: args.signal,
      timeoutMs: waitS * 1000 + 15_000,
    });
    if (r.exitCode === 1 && /no IP address found/i.test(`${r.stderr}\n${r.stdout}`)) {
      throw new DriverError('timeout', `VM ${args.name} has no IP address after ${args.timeoutMs} ms: ${reason(r)}`, { cause: r });
    }
    if (r.exitCode !== 0) throw this.failure(`tart ip ${args.name}`, r);
    const host = String(r.stdout)
      .split('\n')
      .map((l) => l.trim())
      .find((l) => IPV4_RE.test(l));
    if (!host) throw new DriverError('failed', `tart ip ${args.name} printed no IPv4 address: ${reason(r)}`, { cause: r });
    const endpoint: SshEndpoint = {
      host,
      port: this.sshPortFor ? await this.sshPortFor(args.name) : 22,
      username: this.username,
    };
    if (this.password !== undefined) endpoint.password = this.password;
    if (this.privateKey !== undefined) endpoint.privateKey = this.privateKey;
    return endpoint;
  }

  async stop(args: { name: string; timeoutMs?: number; signal?: AbortSignal }): Promise<void> {
    checkName(args.name);
    await this.locks.run(args.name, () => this.stopLocked(args.name, args.timeoutMs ?? this.stopTimeoutMs, args.signal));
  }

  private async stopLocked(name: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const timeoutS = Math.max(0, Math.ceil(timeoutMs / 1000));
    const r = await this.tart(['stop', name, '--timeout', String(timeoutS)], {
      signal,
      timeoutMs: timeoutS * 1000 + this.commandTimeoutMs,
    });
    // 2: the VM does not exist, or is not running (any more): stopped either way.
    if (r.exitCode !== 0 && r.exitCode !== 2) throw this.failure(`tart stop ${name}`, r);
    await this.writeState({ name, pid: undefined, startedAt: undefined }, { onlyIfExists: true });
  }

  async delete(args: { name: string; signal?: AbortSignal }): Promise<void> {
    checkName(args.name);
    await this.locks.run(args.name, async () => {
      for (let attempt = 0; ; attempt++) {
        const info = await this.getRaw(args.name, args.signal);
        if (!info) break;
        if (running(info)) await this.stopLocked(args.name, this.stopTimeoutMs, args.signal);
        const r = await this.tart(['delete', args.name], { signal: args.signal });
        if (r.exitCode === 0 || r.exitCode === 2) break;
        // "VM is running": started again meanwhile (not by us: we hold the lock); stop, retry once.
        if (attempt === 0 && /is running/i.test(`${r.stderr}`)) continue;
        throw this.failure(`tart delete ${args.name}`, r);
      }
      await fs.rm(this.statePath(args.name), { force: true });
      await fs.rm(this.logFile(args.name), { force: true });
    });
  }

  async list(args?: { signal?: AbortSignal }): Promise<VmInfo[]> {
    const out: VmInfo[] = [];
    for (const e of await this.listRaw('local', args?.signal)) {
      if (!parseVmName(e.Name)) continue;
      out.push(await this.info(e.Name, running(e) ? 'running' : 'stopped'));
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async get(args: { name: string; signal?: AbortSignal }): Promise<VmInfo | undefined> {
    checkName(args.name);
    const raw = await this.getRaw(args.name, args.signal);
    return raw ? this.info(args.name, running(raw) ? 'running' : 'stopped') : undefined;
  }

  // ---- internals ----

  private async info(name: string, state: VmState): Promise<VmInfo> {
    const image = (await this.readState(name))?.image;
    return image === undefined ? { name, state } : { name, state, image };
  }

  private async listRaw(source: 'local' | 'oci', signal?: AbortSignal): Promise<TartListEntry[]> {
    const r = await this.tart(['list', '--source', source, '--format', 'json'], { signal });
    if (r.exitCode !== 0) throw this.failure('tart list', r);
    return parseJson<TartListEntry[]>('tart list', r, (v) => Array.isArray(v));
  }

  /** `tart get NAME --format json`; undefined when the VM does not exist (exit 2). */
  private async getRaw(name: string, signal?: AbortSignal): Promise<TartGet | undefined> {
    const r = await this.tart(['get', name, '--format', 'json'], { signal });
    if (r.exitCode === 2) return undefined;
    if (r.exitCode !== 0) throw this.failure(`tart get ${name}`, r);
    return parseJson<TartGet>(`tart get ${name}`, r, (v) => typeof v === 'object' && v !== null);
  }

  private commandEnv(registry: boolean): Record<string, string> {
    const env: Record<string, string> = { ...this.env };
    if (this.tartHome !== undefined) env.TART_HOME = this.tartHome;
    if (registry && this.registryUsername !== undefined) env.TART_REGISTRY_USERNAME = this.registryUsername;
    if (registry && this.registryPassword !== undefined) env.TART_REGISTRY_PASSWORD = this.registryPassword;
    return env;
  }

  /**
   * Runs one tart command to completion. Never rejects on tart's own failures (the caller maps
   * the exit code); rejects with the signal's reason on abort. timeoutMs 0: no deadline.
   */
  private async tart(args: string[], o: { signal?: AbortSignal; timeoutMs?: number; registry?: boolean } = {}): Promise<TartResult> {
    o.signal?.throwIfAborted();
    const timeout = o.timeoutMs ?? this.commandTimeoutMs;
    const r = await execa(this.tartBinary, args, {
      env: this.commandEnv(o.registry ?? false),
      extendEnv: true,
      stdin: 'ignore',
      reject: false,
      ...(o.signal ? { cancelSignal: o.signal } : {}),
      ...(timeout > 0 ? { timeout } : {}),
      // tart treats SIGINT as cancellation (temporary clone/pull directories are removed).
      killSignal: 'SIGINT',
      forceKillAfterDelay: 10_000,
      maxBuffer: 8 * 1024 * 1024,
    });
    if (r.isCanceled && o.signal?.aborted) throw abortReason(o.signal);
    return r;
  }

  /** DriverError for a tart command that did not succeed. */
  private failure(what: string, r: TartResult): DriverError {
    if (r.timedOut) return new DriverError('timeout', `${what}: tart did not finish in time`, { cause: r });
    if (r.exitCode === undefined) {
      const code = (r as { code?: string }).code;
      return new DriverError('failed', `${what}: could not run ${this.tartBinary}${code ? ` (${code})` : r.signal ? ` (${r.signal})` : ''}`, { cause: r });
    }
    const why = reason(r);
    switch (r.exitCode) {
      case 2:
        return new DriverError('not-found', `${what}: ${why}`, { cause: r });
      case 64:
        return new DriverError('invalid', `${what}: tart rejected the arguments: ${why}`, { cause: r });
      case 1:
        if (LIMIT_RE.test(`${r.stderr}\n${r.stdout}`)) return new DriverError('capacity', `${what}: ${why}`, { cause: r });
        if (/code: 404\b|MANIFEST_UNKNOWN|manifest unknown/i.test(String(r.stderr))) {
          return new DriverError('not-found', `${what}: ${why}`, { cause: r });
        }
        // The registry refused the credentials (Tart's UnexpectedHTTPStatusCode 401/403, AuthFailed).
        if (/code: 40[13]\b|AuthFailed\(/.test(String(r.stderr))) {
          return new DriverError('auth', `${what}: ${why}; check the host's driver.registryUsername and the password its driver.registryPasswordEnv names`, { cause: r });
        }
        return new DriverError('failed', `${what}: ${why}`, { cause: r });
      default:
        return new DriverError('failed', `${what}: exit ${r.exitCode}: ${why}`, { cause: r });
    }
  }

  private statePath(name: string): string {
    return path.join(this.stateDir, `${name}.json`);
  }

  private async readState(name: string): Promise<StateRecord | undefined> {
    try {
      return JSON.parse(await fs.readFile(this.statePath(name), 'utf8')) as StateRecord;
    } catch (err) {
      if (errCode(err) === 'ENOENT' || err instanceof SyntaxError) return undefined;
      throw new DriverError('failed', `state of VM ${name} is unreadable`, { cause: err });
    }
  }

  /** Merges `patch` into the state file (undefined values delete fields); atomic. */
  private async writeState(patch: Partial<StateRecord> & { name: string }, o: { onlyIfExists?: boolean } = {}): Promise<void> {
    const current = await this.readState(patch.name);
    if (!current && o.onlyIfExists) return;
    const next: Record<string, unknown> = { ...current, ...patch };
    for (const [k, v] of Object.entries(patch)) if (v === undefined) delete next[k];
    await fs.mkdir(this.stateDir, { recursive: true });
    const file = this.statePath(patch.name);
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    await fs.writeFile(tmp, `${JSON.stringify(next, null, 2)}\n`);
    await fs.rename(tmp, file);
  }

  /** Serialises operations per key within this process. */
}

/** Stand-in digest of a local VM used as an image: it has no content digest in tart. */
function localDigest(name: string): string {
  return `local:${name}`;
}

function parseJson<T>(what: string, r: TartResult, ok: (v: unknown) => boolean): T {
  let value: unknown;
  try {
    value = JSON.parse(String(r.stdout));
  } catch (err) {
    throw new DriverError('failed', `${what}: output is not JSON: ${clip(String(r.stdout))}`, { cause: err });
  }
  if (!ok(value)) throw new DriverError('failed', `${what}: unexpected JSON: ${clip(String(r.stdout))}`);
  return value as T;
}

