/**
 * TEST INFRASTRUCTURE — NOT TART. A stand-in for Cirrus Labs' `tart` CLI (2.x) so the Tart
 * driver can be exercised on Linux hosts without a Mac. No virtualisation at all: a "VM" is a
 * directory, a running VM is a `tart run` process of this script that serves SSH on 127.0.0.1,
 * and commands run "in the guest" are plain host processes of the current user.
 *
 * Run it through the `tart` shell wrapper next to this file (Node 20 cannot run .ts itself; the
 * wrapper transpiles this file and the repository modules it imports, which use Node built-ins
 * only: drivers/procs.ts, drivers/guest-exec.ts).
 *
 * Faithful to tart where the driver depends on it (checked against cirruslabs/tart
 * Sources/tart/Commands/*.swift, VMStorageHelper.swift, VMStorageLocal.swift, VMStorageOCI.swift,
 * VMDirectory.swift, VMConfig.swift, Root.swift and swift-argument-parser's error messages):
 * - commands clone, run, ip, stop, delete, list, get, pull, push, set, fqn with tart's flags;
 *   anything else (unknown option, missing or extra argument, bad value) is rejected the way
 *   Swift ArgumentParser does: `Error: …`, a `Usage: …` line, exit 64;
 * - exit 2 with tart's messages for `the specified VM "X" does not exist` and
 *   `VM "X" is already running!`; 1 for other failures (`VM "X" is running` on delete,
 *   `no IP address found, is your VM running?`, registry errors, …);
 * - `stop` of a stopped VM succeeds (exit 0) as in tart ≥ 2.x; SIGINT, then SIGKILL after --timeout;
 * - JSON of `list --format json` (`[{Source, Name, Disk, Size, Accessed, Running, State}]`,
 *   OCI names `host/ns:tag` for tags and `host/ns@sha256:…` for digests) and
 *   `get --format json` (`{OS, CPU, Memory, Disk, DiskFormat, Size, Display, Running, State}`),
 *   pretty-printed like Swift's JSONEncoder;
 * - state under `TART_HOME` (default ~/.tart): `vms/<name>/{config.json,disk.img,nvram.bin}`,
 *   `cache/OCIs/<host>/<namespace>/{sha256:<hex>/, <tag> -> sha256:<hex>}`, `tmp/`;
 * - `clone` replaces an existing target VM (tart does: FileManager.replaceItemAt), pulls a
 *   remote source that is not cached, regenerates the MAC when another local VM has it;
 * - `run` stays in the foreground until `stop` (SIGINT) or SIGTERM ends it; when
 *   TART_DOUBLE_MAX_RUNNING (default 2) VMs of this TART_HOME already run, it fails shortly
 *   after starting (TART_DOUBLE_LIMIT_DELAY_MS, default 300) with
 *   `The number of VMs exceeds the system limit (other running VMs: a, b)` on stderr, exit 1;
 * - registry credentials only from TART_REGISTRY_USERNAME / TART_REGISTRY_PASSWORD;
 * - `push` / `pull` / `clone` of a remote image talk HTTP to a real OCI registry in Tart's
 *   image format and protocol (oci.ts, apple-lz4.ts; checked against Sources/tart/OCI/*.swift,
 *   OCI/Layerizer/DiskV2.swift, VMDirectory+OCI.swift, VMStorageOCI.swift, Commands/Push.swift,
 *   Pull.swift, Clone.swift) — unless the host is a directory of TART_DOUBLE_REGISTRY_DIR;
 *   the cache keeps the manifest as `manifest.json`, the host's `:` percent-encoded
 *   (`cache/OCIs/127.0.0.1%3A5000/…`), pulls go through the deterministic `tmp/<md5(name)>`.
 *
 * Double-only conventions (none of them exist in tart):
 * - Real registries: TLS trust = Node's roots + TART_DOUBLE_CA_FILE or SSL_CERT_FILE (tart uses
 *   the macOS trust store); TART_DOUBLE_CHUNK_BYTES replaces the 512 MiB disk-layer size.
 * - Registry directory: TART_DOUBLE_REGISTRY_DIR/<host>/<namespace>/<tag>/{config.json,disk.img,nvram.bin}
 *   plays the OCI registry for the hosts it has a directory for (`push` copies files there). The digest is sha256 over the files' hashes. Optional
 *   `<host>/<namespace>/.auth` ("user:password") demands those registry credentials;
 *   `<host>/.http-only` makes pulls without --insecure fail like a TLS error.
 * - disk.img is JSON: `{ "sizeGB": 50, "guest": { "username", "password", "authorizedKeys": [],
 *   "hostKey" }, "bootError"? }` (default admin/admin like Cirrus Labs' images). The SSH host key
 *   is made at first boot and kept on the "disk", so clones of one booted image share it, as
 *   real clones do. `bootError` (fault hook): `run` prints it and exits 1 right after start.
 * - While running: `vms/<name>/double-run.json` {pid} (tart's PID lock on config.json) and,
 *   TART_DOUBLE_BOOT_MS (default 300) after start, `vms/<name>/double-guest.json`
 *   {ip: "127.0.0.1", sshPort}. `ip` prints the bare address; the SSH port is not 22, so tests
 *   read it from that file (TartDriver's test-only `sshPortFor`).
 * - TART_DOUBLE_ARGV_LOG: append one JSON line per invocation ({pid, argv, registryCredentials}).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AuthContext, Connection, ParsedKey, ServerChannel } from 'ssh2';
import { bridgeExec } from '../../../drivers/guest-exec.js';
import { isLivePid, pause, waitUntil } from '../../../drivers/procs.js';
import { Registry, TartRuntimeError, pushVm, pullVm } from './oci.js';

export const VERSION = '2.32.0';
/** Carried on the argv of every process of the double (see the `tart` wrapper). */
export const MARKER = 'ekiden-tart-double';

const VM_FILES = ['config.json', 'disk.img', 'nvram.bin'] as const;
const RUN_FILE = 'double-run.json';
const GUEST_FILE = 'double-guest.json';

// ---------------------------------------------------------------- exits

/** Ends the command: `text` goes to stderr, `code` is the exit status. */
class TartExit extends Error {
  constructor(
    readonly code: number,
    readonly text: string,
  ) {
    super(text);
  }
}

/** A RuntimeError of tart (HasExitCode): printed as is, exit 2 for the "VM state" ones. */
function runtimeError(message: string, code = 1): TartExit {
  return new TartExit(code, message);
}

/** Any other error reaches ArgumentParser's exit(withError:): `Error: …`, exit 1. */
function otherError(message: string): TartExit {
  return new TartExit(1, `Error: ${message}`);
}

const doesNotExist = (name: string) => runtimeError(`the specified VM "${name}" does not exist`, 2);

// ---------------------------------------------------------------- argument parsing

type ValueKind = 'string' | 'uint16' | 'uint64' | 'uint' | { oneOf: string[] };

interface OptSpec {
  long: string;
  short?: string;
  /** flag: no value; option: one value (last wins); array: repeatable. */
  kind: 'flag' | 'option' | 'array';
  value?: ValueKind;
  valueName?: string;
}

interface CommandSpec {
  name: string;
  /** Positional arguments; a trailing `variadic` one takes the rest (at least one). */
  args: Array<{ name: string; variadic?: boolean; optional?: boolean }>;
  opts: OptSpec[];
}

interface Parsed {
  args: string[];
  flags: Set<string>;
  options: Map<string, string>;
  arrays: Map<string, string[]>;
}

const flag = (long: string, short?: string): OptSpec => ({ long, short, kind: 'flag' });
const option = (long: string, value: ValueKind = 'string', valueName?: string, short?: string): OptSpec => ({
  long,
  short,
  kind: 'option',
  value,
  valueName,
});
const array = (long: string, valueName?: string): OptSpec => ({ long, kind: 'array', value: 'string', valueName });

const FORMAT = option('format', { oneOf: ['text', 'json'] });

const COMMANDS: Record<string, CommandSpec> = {
  clone: {
    name: 'clone',
    args: [{ name: 'source-name' }, { name: 'new-name' }],
    opts: [flag('insecure'), option('concurrency', 'uint'), flag('deduplicate'), option('prune-limit', 'uint', 'n')],
  },
  run: {
    name: 'run',
    args: [{ name: 'name' }],
    opts: [
      flag('no-graphics'),
      flag('serial'),
      option('serial-path'),
      flag('graphics'),
      flag('no-audio'),
      flag('no-clipboard'),
      flag('recovery'),
      flag('vnc'),
      flag('vnc-experimental'),
      array('disk', 'path[:ro]'),
      option('rosetta', 'string', 'tag'),
      array('dir', '[name:]path[:options]'),
      array('net-bridged', 'interface name'),
      flag('net-softnet'),
      option('net-softnet-allow', 'string', 'comma-separated CIDRs'),
      flag('net-host'),
      flag('suspendable'),
      flag('capture-system-keys'),
      flag('nested'),
    ],
  },
  ip: {
    name: 'ip',
    args: [{ name: 'name' }],
    opts: [option('wait', 'uint16'), option('resolver', { oneOf: ['dhcp', 'arp', 'agent'] })],
  },
  stop: { name: 'stop', args: [{ name: 'name' }], opts: [option('timeout', 'uint64', undefined, 't')] },
  delete: { name: 'delete', args: [{ name: 'name', variadic: true }], opts: [] },
  list: { name: 'list', args: [], opts: [option('source'), FORMAT, flag('quiet', 'q')] },
  get: { name: 'get', args: [{ name: 'name' }], opts: [FORMAT] },
  pull: {
    name: 'pull',
    args: [{ name: 'remote-name' }],
    opts: [flag('insecure'), option('concurrency', 'uint'), flag('deduplicate')],
  },
  set: {
    name: 'set',
    args: [{ name: 'name' }],
    opts: [
      option('cpu', 'uint16'),
      option('memory', 'uint64'),
      option('display'),
      flag('random-mac'),
      flag('random-serial'),
      option('disk', 'string', 'path'),
      option('disk-size', 'uint16'),
    ],
  },
  fqn: { name: 'fqn', args: [{ name: 'name' }], opts: [] },
  push: {
    name: 'push',
    args: [{ name: 'local-name' }, { name: 'remote-names', variadic: true }],
    opts: [flag('insecure'), option('concurrency', 'uint'), option('chunk-size', 'uint'), array('label'), flag('populate-cache')],
  },
};

function optLabel(o: OptSpec, spelled = `--${o.long}`): string {
  return o.kind === 'flag' ? spelled : `${spelled} <${o.valueName ?? o.long}>`;
}

function usageLine(cmd: CommandSpec): string {
  const parts = cmd.args.map((a) => (a.variadic ? `<${a.name}> ...` : `<${a.name}>`));
  for (const o of cmd.opts) {
    if (o.long === 'deduplicate') continue; // hidden in tart
    parts.push(o.kind === 'array' ? `[${optLabel(o)} ...]` : `[${optLabel(o)}]`);
  }
  return `tart ${cmd.name} ${parts.join(' ')}`.trimEnd();
}

function usageError(cmd: CommandSpec, message: string): TartExit {
  return new TartExit(
    64,
    `Error: ${message}\nUsage: ${usageLine(cmd)}\n  See 'tart ${cmd.name} --help' for more information.`,
  );
}

function checkValue(cmd: CommandSpec, o: OptSpec, spelled: string, value: string): void {
  const kind = o.value ?? 'string';
  const bad = () => usageError(cmd, `The value '${value}' is invalid for '${optLabel(o, spelled)}'`);
  if (kind === 'string') return;
  if (typeof kind === 'object') {
    if (kind.oneOf.includes(value)) return;
    const quoted = kind.oneOf.map((v) => `'${v}'`);
    const list = `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}`;
    throw usageError(cmd, `The value '${value}' is invalid for '${optLabel(o, spelled)}'. Please provide one of ${list}.`);
  }
  if (!/^\d+$/.test(value)) throw bad();
  const n = BigInt(value);
  const max = kind === 'uint16' ? 65535n : 18446744073709551615n;
  if (n > max) throw bad();
}

function parse(cmd: CommandSpec, argv: string[]): Parsed {
  const out: Parsed = { args: [], flags: new Set(), options: new Map(), arrays: new Map() };
  let onlyArgs = false;
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (onlyArgs || !tok.startsWith('-') || tok === '-') {
      out.args.push(tok);
      continue;
    }
    if (tok === '--') {
      onlyArgs = true;
      continue;
    }
    let spelled = tok;
    let inline: string | undefined;
    const eq = tok.indexOf('=');
    if (tok.startsWith('--') && eq > 0) {
      spelled = tok.slice(0, eq);
      inline = tok.slice(eq + 1);
    }
    const spec = spelled.startsWith('--')
      ? cmd.opts.find((o) => `--${o.long}` === spelled)
      : cmd.opts.find((o) => o.short !== undefined && `-${o.short}` === spelled);
    if (!spec) {
      const near = cmd.opts.find((o) => spelled.length > 3 && editDistance(`--${o.long}`, spelled) <= 2);
      throw usageError(cmd, `Unknown option '${spelled}'${near ? `. Did you mean '--${near.long}'?` : ''}`);
    }
    if (spec.kind === 'flag') {
      if (inline !== undefined) {
        throw usageError(cmd, `The option '${spelled}' does not take any value, but '${inline}' was specified.`);
      }
      out.flags.add(spec.long);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('-') && next !== '-' && !/^-\d/.test(next))) {
        throw usageError(cmd, `Missing value for '${optLabel(spec, spelled)}'`);
      }
      value = next;
      i++;
    }
    checkValue(cmd, spec, spelled, value);
    if (spec.kind === 'array') out.arrays.set(spec.long, [...(out.arrays.get(spec.long) ?? []), value]);
    else out.options.set(spec.long, value);
  }
  const wanted = cmd.args;
  const variadic = wanted.length > 0 && wanted[wanted.length - 1]!.variadic;
  const required = wanted.filter((a) => !a.optional);
  if (out.args.length < required.length) {
    const missing = required[out.args.length]!;
    throw usageError(cmd, `Missing expected argument '<${missing.name}>${missing.variadic ? ' ...' : ''}'`);
  }
  if (!variadic && out.args.length > wanted.length) {
    const extra = out.args.slice(wanted.length);
    throw usageError(
      cmd,
      extra.length === 1 ? `Unexpected argument '${extra[0]}'` : `${extra.length} unexpected arguments: ${extra.map((e) => `'${e}'`).join(', ')}`,
    );
  }
  return out;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

// ---------------------------------------------------------------- storage

function tartHome(): string {
  return process.env.TART_HOME || path.join(os.homedir(), '.tart');
}
const vmsDir = () => path.join(tartHome(), 'vms');
const ociDir = () => path.join(tartHome(), 'cache', 'OCIs');
const tmpDir = () => path.join(tartHome(), 'tmp');

interface VmConfig {
  version: number;
  os: string;
  arch: string;
  cpuCountMin: number;
  cpuCount: number;
  memorySizeMin: number;
  memorySize: number;
  macAddress: string;
  display: { width: number; height: number };
  [key: string]: unknown;
}

interface GuestDisk {
  sizeGB?: number;
  /** Fault hook: `run` fails with this (as Virtualization.framework would) once it has the VM. */
  bootError?: string;
  guest?: { username?: string; password?: string; authorizedKeys?: string[]; hostKey?: string };
}

function initialized(dir: string): boolean {
  return VM_FILES.every((f) => fs.existsSync(path.join(dir, f)));
}

/** VMStorageLocal.open: exit 2 when the directory is missing, 1 when files are. */
function openLocal(name: string): string {
  const dir = path.join(vmsDir(), name);
  if (!fs.existsSync(dir)) throw doesNotExist(name);
  if (!initialized(dir)) {
    throw runtimeError('VM is missing some of its files (config.json, disk.img or nvram.bin)');
  }
  return dir;
}

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

function writeFileAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

function readConfig(dir: string): VmConfig {
  return readJson<VmConfig>(path.join(dir, 'config.json'));
}

function saveConfig(dir: string, config: VmConfig): void {
  writeFileAtomic(path.join(dir, 'config.json'), swiftJson(config));
}

function readDisk(dir: string): GuestDisk {
  try {
    return readJson<GuestDisk>(path.join(dir, 'disk.img'));
  } catch {
    return {};
  }
}

function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02; // locally administered, unicast
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function localNames(): string[] {
  try {
    return fs
      .readdirSync(vmsDir())
      .filter((n) => initialized(path.join(vmsDir(), n)))
      .sort();
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------- processes

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A live (non-zombie) process of this double. */
function isDoubleProcess(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || !isLivePid(pid)) return false;
  if (process.platform !== 'linux') return true;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(MARKER);
  } catch {
    return false;
  }
}

/** Pid of the VM's live `tart run`, if any (our stand-in for tart's PIDLock on config.json). */
function runningPid(dir: string): number | undefined {
  try {
    const { pid } = readJson<{ pid: number }>(path.join(dir, RUN_FILE));
    return isDoubleProcess(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function vmState(dir: string): 'running' | 'suspended' | 'stopped' {
  if (runningPid(dir) !== undefined) return 'running';
  return fs.existsSync(path.join(dir, 'state.vzvmsave')) ? 'suspended' : 'stopped';
}

/** tart's global FileLock on TART_HOME: serialises `run` registrations. */
function withHomeLock<T>(fn: () => T): T {
  fs.mkdirSync(tartHome(), { recursive: true });
  const lock = path.join(tartHome(), '.tart-double.lock');
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(fs.readFileSync(lock, 'utf8').trim() || '0');
      if (holder && !isDoubleProcess(holder)) {
        fs.rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw runtimeError(`failed to lock ${tartHome()}: held by ${holder}`);
      sleepSync(10);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

// ---------------------------------------------------------------- output

/** Swift JSONEncoder with .prettyPrinted: two-space indent, `"key" : value`. */
function swiftJson(value: unknown, indent = ''): string {
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[\n\n]';
    return `[\n${value.map((v) => inner + swiftJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return '{\n\n}';
    return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)} : ${swiftJson(v, inner)}`).join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value).replace(/\//g, '\\/');
}

/** TextTable, plain style, without the deprecated Running column (Format.swift). */
function table(rows: Array<Record<string, unknown>>): string {
  if (rows.length === 0) return '';
  const cols = Object.keys(rows[0]!).filter((c) => c !== 'Running');
  const cells = [cols, ...rows.map((r) => cols.map((c) => String(r[c])))];
  const widths = cols.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join(' ').trimEnd()).join('\n');
}

function accessed(dir: string): string {
  let secs = 0;
  try {
    secs = Math.max(0, Math.round((Date.now() - fs.statSync(dir).mtimeMs) / 1000));
  } catch {
    // gone meanwhile
  }
  if (secs < 60) return `${secs} seconds ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)} minutes ago`;
  return `${Math.floor(secs / 3600)} hours ago`;
}

function sizeGB(dir: string): number {
  return readDisk(dir).sizeGB ?? 50;
}

function allocatedGB(dir: string): number {
  let bytes = 0;
  for (const f of VM_FILES) bytes += fs.statSync(path.join(dir, f)).size;
  return Math.floor(bytes / 1e9);
}

// ---------------------------------------------------------------- OCI

interface RemoteName {
  host: string;
  namespace: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

function parseRemote(text: string): RemoteName | undefined {
  let base = text;
  let digest: string | undefined;
  const at = text.indexOf('@');
  if (at >= 0) {
    base = text.slice(0, at);
    digest = text.slice(at + 1);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) return undefined;
  }
  const slash = base.indexOf('/');
  if (slash <= 0) return undefined;
  const host = base.slice(0, slash);
  let namespace = base.slice(slash + 1);
  let tag: string | undefined;
  if (!digest) {
    const colon = namespace.lastIndexOf(':');
    if (colon >= 0) {
      tag = namespace.slice(colon + 1);
      namespace = namespace.slice(0, colon);
      if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) return undefined;
    } else {
      tag = 'latest';
    }
  }
  if (!/^[A-Za-z0-9.-]+(?::\d+)?$/.test(host)) return undefined;
  if (!namespace.split('/').every((c) => COMPONENT.test(c))) return undefined;
  return { host, namespace, tag, digest };
}

function remoteString(r: RemoteName): string {
  return `${r.host}/${r.namespace}${r.digest ? `@${r.digest}` : `:${r.tag}`}`;
}

/** VMStorageOCI: the host's `:` is percent-encoded (`127.0.0.1%3A5000`), `list` decodes it. */
function ociPath(r: RemoteName): string {
  return path.join(ociDir(), r.host.replace(/:/g, '%3A'), ...r.namespace.split('/'), r.digest ?? r.tag!);
}

function fileSha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Stand-in for the manifest digest: sha256 over the three files' hashes. */
function imageDigest(dir: string): string {
  const manifest = VM_FILES.map((f) => `${f} sha256:${fileSha256(path.join(dir, f))}`).join('\n');
  return `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
}

function copyVmFiles(from: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const f of VM_FILES) fs.copyFileSync(path.join(from, f), path.join(to, f));
}

function registryLookup(r: RemoteName, insecure: boolean): string {
  const root = process.env.TART_DOUBLE_REGISTRY_DIR;
  const hostDir = root ? path.join(root, r.host) : undefined;
  if (!hostDir || !fs.existsSync(hostDir)) {
    throw otherError('Error Domain=NSURLErrorDomain Code=-1003 "A server with the specified hostname could not be found."');
  }
  if (fs.existsSync(path.join(hostDir, '.http-only')) && !insecure) {
    throw otherError('Error Domain=NSURLErrorDomain Code=-1200 "An SSL error has occurred and a secure connection to the server cannot be made."');
  }
  const repo = path.join(hostDir, ...r.namespace.split('/'));
  const authFile = path.join(repo, '.auth');
  if (fs.existsSync(authFile)) {
    const want = fs.readFileSync(authFile, 'utf8').trim();
    const got = `${process.env.TART_REGISTRY_USERNAME ?? ''}:${process.env.TART_REGISTRY_PASSWORD ?? ''}`;
    if (want !== got) {
      throw otherError('AuthFailed(why: "received unexpected HTTP status code 401 while retrieving an authentication token", details: "")');
    }
  }
  let found: string | undefined;
  if (r.tag !== undefined) {
    const dir = path.join(repo, r.tag);
    if (initialized(dir)) found = dir;
  } else {
    const tags = fs.existsSync(repo) ? fs.readdirSync(repo) : [];
    found = tags.map((t) => path.join(repo, t)).find((d) => initialized(d) && imageDigest(d) === r.digest);
  }
  if (!found) {
    throw otherError(
      'UnexpectedHTTPStatusCode(when: "pulling manifest", code: 404, details: "{\\"errors\\":[{\\"code\\":\\"MANIFEST_UNKNOWN\\",\\"message\\":\\"manifest unknown\\"}]}")',
    );
  }
  return found;
}

/** The host is played by TART_DOUBLE_REGISTRY_DIR (else a real registry is asked over HTTP). */
function inRegistryDir(r: RemoteName): boolean {
  const root = process.env.TART_DOUBLE_REGISTRY_DIR;
  return Boolean(root) && fs.existsSync(path.join(root!, r.host));
}

/** VMStorageOCI.pull: cache by digest, point the tag at it. */
async function pullRemote(r: RemoteName, insecure: boolean, concurrency: number): Promise<void> {
  console.log(`pulling ${remoteString(r)}...`);
  if (inRegistryDir(r)) {
    pullFromRegistryDir(r, insecure);
    return;
  }
  const registry = new Registry(r.host, r.namespace, insecure);
  try {
    console.log('pulling manifest...');
    const { manifest, bytes } = await registry.pullManifest(r.digest ?? r.tag!);
    const digestName: RemoteName = { host: r.host, namespace: r.namespace, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
    const digestDir = ociPath(digestName);
    if (r.tag !== undefined && initialized(ociPath(r)) && initialized(digestDir) && linkTarget(ociPath(r)) === digestDir) {
      console.log(`${remoteString(digestName)} image is already cached and linked!`);
      return;
    }
    if (!initialized(digestDir)) {
      // VMDirectory.temporaryDeterministic(key: name.description): a failed pull resumes here
      const tmp = path.join(tmpDir(), createHash('md5').update(remoteString(r)).digest('hex'));
      fs.mkdirSync(tmp, { recursive: true });
      await pullVm(tmp, registry, manifest, { concurrency, log: (line) => console.log(line) });
      fs.mkdirSync(path.dirname(digestDir), { recursive: true });
      fs.rmSync(digestDir, { recursive: true, force: true });
      fs.renameSync(tmp, digestDir);
    } else {
      console.log(`${remoteString(digestName)} image is already cached! creating a symlink...`);
    }
    linkOrMark(r, digestDir);
  } finally {
    registry.close();
  }
}

function linkTarget(link: string): string | undefined {
  try {
    return fs.readlinkSync(link);
  } catch {
    return undefined;
  }
}

/** A tag becomes a symlink to the digest directory; a digest pull is marked explicitly pulled. */
function linkOrMark(r: RemoteName, digestDir: string): void {
  if (r.tag !== undefined) {
    const link = ociPath(r);
    fs.rmSync(link, { recursive: true, force: true });
    fs.symlinkSync(digestDir, link);
  } else {
    fs.writeFileSync(path.join(digestDir, '.explicitly-pulled'), '');
  }
}

/** The TART_DOUBLE_REGISTRY_DIR flavour of pullRemote. */
function pullFromRegistryDir(r: RemoteName, insecure: boolean): void {
  const src = registryLookup(r, insecure);
  console.log('pulling manifest...');
  const digest = imageDigest(src);
  const digestName: RemoteName = { host: r.host, namespace: r.namespace, digest };
  const digestDir = ociPath(digestName);
  if (!initialized(digestDir)) {
    fs.mkdirSync(tmpDir(), { recursive: true });
    const tmp = path.join(tmpDir(), randomUUID());
    try {
      copyVmFiles(src, tmp);
      fs.mkdirSync(path.dirname(digestDir), { recursive: true });
      fs.rmSync(digestDir, { recursive: true, force: true });
      fs.renameSync(tmp, digestDir);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  } else {
    console.log(`${remoteString(digestName)} image is already cached! creating a symlink...`);
  }
  linkOrMark(r, digestDir);
}

interface OciEntry {
  name: string;
  dir: string;
}

function ociEntries(): OciEntry[] {
  const out: OciEntry[] = [];
  const walk = (rel: string[]) => {
    const dir = path.join(ociDir(), ...rel);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isSymbolicLink()) {
        if (initialized(full)) out.push({ name: decodeURIComponent(`${rel.join('/')}:${e.name}`), dir: full });
      } else if (e.isDirectory()) {
        if (initialized(full)) out.push({ name: decodeURIComponent(`${rel.join('/')}@${e.name}`), dir: full });
        else walk([...rel, e.name]);
      }
    }
  };
  walk([]);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

// ---------------------------------------------------------------- commands

async function cmdClone(p: Parsed): Promise<number> {
  const [source, newName] = p.args as [string, string];
  if (newName.includes('/')) throw usageError(COMMANDS.clone!, '<new-name> should be a local name');
  if (p.options.get('concurrency') === '0') throw usageError(COMMANDS.clone!, 'network concurrency cannot be less than 1');
  const remote = parseRemote(source);
  const insecure = p.flags.has('insecure');
  if (remote && !initialized(ociPath(remote))) await pullRemote(remote, insecure, Number(p.options.get('concurrency') ?? '4'));
  let srcDir: string;
  if (remote) {
    srcDir = ociPath(remote);
    if (!fs.existsSync(srcDir)) throw doesNotExist(source);
  } else {
    srcDir = openLocal(source);
  }
  fs.mkdirSync(tmpDir(), { recursive: true });
  const tmp = path.join(tmpDir(), randomUUID());
  try {
    copyVmFiles(srcDir, tmp);
    const config = readConfig(tmp);
    if (localNames().some((n) => readConfig(path.join(vmsDir(), n)).macAddress === config.macAddress)) {
      config.macAddress = randomMac();
      saveConfig(tmp, config);
    }
    fs.mkdirSync(vmsDir(), { recursive: true });
    const target = path.join(vmsDir(), newName);
    fs.rmSync(target, { recursive: true, force: true }); // FileManager.replaceItemAt
    fs.renameSync(tmp, target);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return 0;
}

async function cmdPull(p: Parsed): Promise<number> {
  const name = p.args[0]!;
  if (p.options.get('concurrency') === '0') throw usageError(COMMANDS.pull!, 'network concurrency cannot be less than 1');
  if (fs.existsSync(path.join(vmsDir(), name)) && initialized(path.join(vmsDir(), name))) {
    console.log(`"${name}" is a local image, nothing to pull here!`);
    return 0;
  }
  const remote = parseRemote(name);
  if (!remote) throw runtimeError(`failed to parse remote name: ${name}`);
  await pullRemote(remote, p.flags.has('insecure'), Number(p.options.get('concurrency') ?? '4'));
  return 0;
}

/** Push.swift: the VM (local, or a cached OCI one) to every remote name, grouped by host/namespace. */
async function cmdPush(p: Parsed): Promise<number> {
  const [localName, ...remoteNames] = p.args as [string, ...string[]];
  const remote = parseRemote(localName);
  const dir = remote ? ociPath(remote) : path.join(vmsDir(), localName);
  if (!fs.existsSync(dir)) throw doesNotExist(localName);
  if (!initialized(dir)) throw runtimeError('VM is missing some of its files (config.json, disk.img or nvram.bin)');
  if (runningPid(dir) !== undefined) throw runtimeError(`VM "${localName}" is running`);
  const targets = remoteNames.map((n) => {
    const r = parseRemote(n);
    if (!r) throw runtimeError(`failed to parse remote name: ${n}`);
    return r;
  });
  const groups = new Map<string, RemoteName[]>();
  for (const t of targets) groups.set(`${t.host}/${t.namespace}`, [...(groups.get(`${t.host}/${t.namespace}`) ?? []), t]);
  const labels: Record<string, string> = {};
  for (const l of p.arrays.get('label') ?? []) {
    const eq = l.trim().indexOf('=');
    const key = eq < 0 ? l.trim() : l.trim().slice(0, eq);
    if (key) labels[key] = eq < 0 ? '' : l.trim().slice(eq + 1);
  }
  for (const group of groups.values()) {
    const { host, namespace } = group[0]!;
    const refs = group.map((g) => (g.digest ? `@${g.digest}` : `:${g.tag}`));
    console.log(`pushing ${localName} to ${host}/${namespace}${refs.length === 1 ? refs[0] : `{${refs.join(',')}}`}...`);
    if (inRegistryDir(group[0]!)) {
      for (const g of group) copyVmFiles(dir, path.join(process.env.TART_DOUBLE_REGISTRY_DIR!, host, ...namespace.split('/'), g.tag ?? g.digest!));
      continue;
    }
    const registry = new Registry(host, namespace, p.flags.has('insecure'));
    try {
      const references = group.map((g) => g.digest ?? g.tag!);
      let digest: string;
      if (remote) {
        // lightweightPushToRegistry: re-tag the manifest the cached image came from
        digest = path.basename(fs.realpathSync(dir));
        if (!digest.startsWith('sha256:')) throw runtimeError(`OCI storage error: ${remoteString(remote)} is not a digest and doesn't point to a digest`);
        const { bytes } = await registry.pullManifest(digest);
        for (const ref of references) {
          console.log(`pushing manifest for ${ref}...`);
          await registry.pushManifest(ref, bytes);
        }
      } else {
        digest = await pushVm(dir, registry, references, {
          concurrency: Number(p.options.get('concurrency') ?? '4'),
          chunkSizeMb: Number(p.options.get('chunk-size') ?? '0'),
          labels,
          log: (line) => console.log(line),
        });
        if (p.flags.has('populate-cache')) {
          const digestDir = ociPath({ host, namespace, digest });
          fs.rmSync(digestDir, { recursive: true, force: true });
          copyVmFiles(dir, digestDir);
        }
      }
      if (p.flags.has('populate-cache')) for (const g of group) if (g.tag !== undefined) linkOrMark(g, ociPath({ host, namespace, digest }));
    } finally {
      registry.close();
    }
  }
  return 0;
}

function cmdSet(p: Parsed): number {
  const dir = openLocal(p.args[0]!);
  const config = readConfig(dir);
  const cpu = p.options.get('cpu');
  if (cpu !== undefined) {
    const n = Number(cpu);
    const min = config.os === 'darwin' ? config.cpuCountMin : 1;
    if (n < min || n < 1) throw otherError(`LessThanMinimalResourcesError: VM should have ${Math.max(min, 1)} CPU cores at minimum (requested ${n})`);
    config.cpuCount = n;
  }
  const memory = p.options.get('memory');
  if (memory !== undefined) {
    const bytes = Number(memory) * 1024 * 1024;
    const min = config.os === 'darwin' ? config.memorySizeMin : 512 * 1024 * 1024;
    if (bytes < min) throw otherError(`LessThanMinimalResourcesError: VM should have ${min} bytes of memory at minimum (requested ${bytes})`);
    config.memorySize = bytes;
  }
  const display = p.options.get('display');
  if (display !== undefined) {
    const [w, h] = display.split('x').map((v) => Number(v) || 0);
    if (w) config.display.width = w;
    if (h) config.display.height = h;
  }
  if (p.flags.has('random-mac')) config.macAddress = randomMac();
  saveConfig(dir, config);
  const disk = p.options.get('disk');
  if (disk !== undefined) fs.copyFileSync(disk, path.join(dir, 'disk.img'));
  const diskSize = p.options.get('disk-size');
  if (diskSize !== undefined) {
    const current = readDisk(dir);
    const want = Number(diskSize);
    if (want < (current.sizeGB ?? 50)) {
      throw runtimeError(`new disk size of ${want} GB should be larger than the current disk size of ${current.sizeGB ?? 50} GB`);
    }
    writeFileAtomic(path.join(dir, 'disk.img'), JSON.stringify({ ...current, sizeGB: want }, null, 2));
  }
  return 0;
}

function cmdGet(p: Parsed): number {
  const dir = openLocal(p.args[0]!);
  const config = readConfig(dir);
  const state = vmState(dir);
  const info = {
    OS: config.os,
    CPU: config.cpuCount,
    Memory: Math.floor(config.memorySize / 1024 / 1024),
    Disk: sizeGB(dir),
    DiskFormat: typeof config.diskFormat === 'string' ? config.diskFormat : 'raw',
    Size: `${(allocatedGB(dir) || 0).toFixed(3)} GB`,
    Display: `${config.display.width}x${config.display.height}`,
    Running: state === 'running',
    State: state,
  };
  console.log(p.options.get('format') === 'json' ? swiftJson(info) : table([info]));
  return 0;
}

function cmdList(p: Parsed): number {
  const source = p.options.get('source');
  if (source !== undefined && source !== 'local' && source !== 'oci') {
    throw usageError(COMMANDS.list!, `'${source}' is not a valid <source>`);
  }
  const infos: Array<Record<string, unknown>> = [];
  if (source === undefined || source === 'local') {
    for (const name of localNames()) {
      const dir = path.join(vmsDir(), name);
      const state = vmState(dir);
      infos.push({ Source: 'local', Name: name, Disk: sizeGB(dir), Size: allocatedGB(dir), Accessed: accessed(dir), Running: state === 'running', State: state });
    }
  }
  if (source === undefined || source === 'oci') {
    for (const e of ociEntries()) {
      infos.push({ Source: 'OCI', Name: e.name, Disk: sizeGB(e.dir), Size: allocatedGB(e.dir), Accessed: accessed(e.dir), Running: false, State: 'stopped' });
    }
  }
  if (p.flags.has('quiet')) {
    for (const i of infos) console.log(i.Name);
  } else {
    console.log(p.options.get('format') === 'json' ? swiftJson(infos) : table(infos));
  }
  return 0;
}

function cmdFqn(p: Parsed): number {
  const name = p.args[0]!;
  const remote = parseRemote(name);
  if (!remote) {
    console.log(name);
    return 0;
  }
  let target = ociPath(remote);
  try {
    target = fs.realpathSync(target);
  } catch {
    // as tart: resolvingSymlinksInPath leaves a missing path alone
  }
  const digest = path.basename(target);
  if (!digest.startsWith('sha256:')) throw runtimeError(`OCI storage error: ${remoteString(remote)} is not a digest and doesn't point to a digest`);
  console.log(remoteString({ host: remote.host, namespace: remote.namespace, digest }));
  return 0;
}

function cmdDelete(p: Parsed): number {
  for (const name of p.args) {
    const remote = parseRemote(name);
    if (remote) {
      const entry = ociPath(remote);
      if (!fs.existsSync(entry) && !isSymlink(entry)) throw doesNotExist(name);
      fs.rmSync(entry, { recursive: true, force: true });
      continue;
    }
    const dir = path.join(vmsDir(), name);
    if (!fs.existsSync(dir)) throw doesNotExist(name);
    if (runningPid(dir) !== undefined) throw runtimeError(`VM "${name}" is running`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return 0;
}

function isSymlink(file: string): boolean {
  try {
    return fs.lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

async function cmdStop(p: Parsed): Promise<number> {
  const name = p.args[0]!;
  const dir = openLocal(name);
  const timeoutS = Number(p.options.get('timeout') ?? '30');
  const pid = runningPid(dir);
  if (pid === undefined) {
    clearRuntime(dir);
    return 0; // Stop.swift: neither running nor suspended → nothing to do
  }
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    // already going
  }
  if (await waitUntil(() => !isDoubleProcess(pid), { timeoutMs: timeoutS * 1000, intervalMs: 100 })) {
    clearRuntime(dir);
    return 0;
  }
  if (isDoubleProcess(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (err) {
      throw runtimeError(`failed to forcefully terminate the VM "${name}": ${(err as Error).message}`);
    }
    // The double's guest commands share the run process's group when it leads one (the
    // driver spawns it detached); a real VM's processes die with it.
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // not a group leader
    }
    await waitUntil(() => !isDoubleProcess(pid), { timeoutMs: 1_000, intervalMs: 20 });
  }
  clearRuntime(dir);
  return 0;
}

function clearRuntime(dir: string): void {
  if (runningPid(dir) !== undefined) return;
  fs.rmSync(path.join(dir, RUN_FILE), { force: true });
  fs.rmSync(path.join(dir, GUEST_FILE), { force: true });
}

async function cmdIp(p: Parsed): Promise<number> {
  const name = p.args[0]!;
  const dir = openLocal(name);
  const wait = Number(p.options.get('wait') ?? '0');
  const resolver = p.options.get('resolver') ?? 'dhcp';
  const deadline = Date.now() + wait * 1000;
  for (;;) {
    if (runningPid(dir) !== undefined) {
      try {
        const { ip } = readJson<{ ip: string }>(path.join(dir, GUEST_FILE));
        console.log(ip);
        return 0;
      } catch {
        // not booted yet
      }
    }
    if (Date.now() >= deadline) break;
    await pause(100); // tart: 1 s between attempts; faster here to keep tests quick
  }
  let message = 'no IP address found';
  if (runningPid(dir) === undefined) message += ', is your VM running?';
  if (resolver === 'agent') message += ' (also make sure that Guest agent for Tart is running inside of a VM)';
  throw runtimeError(message);
}

// ---------------------------------------------------------------- run: the "VM"

async function cmdRun(p: Parsed): Promise<number> {
  const cmd = COMMANDS.run!;
  const name = p.args[0]!;
  if (p.flags.has('vnc') && p.flags.has('vnc-experimental')) throw usageError(cmd, '--vnc and --vnc-experimental are mutually exclusive');
  const nets = [(p.arrays.get('net-bridged') ?? []).length > 0, p.flags.has('net-softnet'), p.flags.has('net-host')].filter(Boolean).length;
  if (nets > 1) throw usageError(cmd, '--net-bridged, --net-softnet and --net-host are mutually exclusive');
  if (p.flags.has('graphics') && p.flags.has('no-graphics')) throw usageError(cmd, '--graphics and --no-graphics are mutually exclusive');
  if ((p.flags.has('no-graphics') || p.flags.has('vnc') || p.flags.has('vnc-experimental')) && p.flags.has('capture-system-keys')) {
    throw usageError(cmd, '--captures-system-keys can only be used with the default VM view');
  }
  const dir = openLocal(name);
  const limit = Number(process.env.TART_DOUBLE_MAX_RUNNING ?? '2');
  const others = withHomeLock(() => {
    // tart: regenerate the MAC when another running VM has it
    const config = readConfig(dir);
    const clash = localNames().some((n) => n !== name && runningPid(path.join(vmsDir(), n)) !== undefined && readConfig(path.join(vmsDir(), n)).macAddress === config.macAddress);
    if (clash) {
      console.log('There is already a running VM with the same MAC address!');
      console.log('Resetting VM to assign a new MAC address...');
      config.macAddress = randomMac();
      saveConfig(dir, config);
    }
    if (runningPid(dir) !== undefined) throw runtimeError(`VM "${name}" is already running!`, 2);
    const running = localNames().filter((n) => n !== name && runningPid(path.join(vmsDir(), n)) !== undefined);
    fs.rmSync(path.join(dir, GUEST_FILE), { force: true });
    writeFileAtomic(path.join(dir, RUN_FILE), JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }));
    return running;
  });
  const releaseLock = () => {
    try {
      if (readJson<{ pid: number }>(path.join(dir, RUN_FILE)).pid === process.pid) {
        fs.rmSync(path.join(dir, GUEST_FILE), { force: true });
        fs.rmSync(path.join(dir, RUN_FILE), { force: true });
      }
    } catch {
      // already gone (VM deleted)
    }
  };
  if (others.length >= limit) {
    // Virtualization.framework refuses the VM once it starts (VZErrorDomain code 6).
    await pause(Number(process.env.TART_DOUBLE_LIMIT_DELAY_MS ?? '300'));
    releaseLock();
    throw runtimeError(`The number of VMs exceeds the system limit (other running VMs: ${others.join(', ')})`);
  }
  const bootError = readDisk(dir).bootError;
  if (bootError !== undefined) {
    await pause(50);
    releaseLock();
    throw runtimeError(bootError);
  }
  try {
    return await runGuest(dir);
  } finally {
    releaseLock();
  }
}

/** The "guest": an SSH server on 127.0.0.1 until SIGINT (tart stop) or SIGTERM. */
async function runGuest(dir: string): Promise<number> {
  const ssh2 = (await import('ssh2')).default;
  const disk = readDisk(dir);
  const guest = { username: 'admin', password: 'admin', authorizedKeys: [] as string[], ...disk.guest };
  if (!guest.hostKey) {
    // first boot: sshd makes its host key and keeps it on the disk
    guest.hostKey = makeHostKey(ssh2);
    writeFileAtomic(path.join(dir, 'disk.img'), JSON.stringify({ ...disk, guest: { ...disk.guest, hostKey: guest.hostKey } }, null, 2));
  }
  const authorized = guest.authorizedKeys
    .map((k) => ssh2.utils.parseKey(k))
    .filter((k): k is ParsedKey => !(k instanceof Error));
  const home = path.join(dir, 'double-home');
  fs.mkdirSync(home, { recursive: true });
  const children = new Set<ChildProcess>();

  const authenticate = (ctx: AuthContext) => {
    if (ctx.username !== guest.username) return ctx.reject();
    if (ctx.method === 'password' && guest.password && sameBytes(Buffer.from(ctx.password), Buffer.from(guest.password))) return ctx.accept();
    if (ctx.method === 'publickey') {
      const key = authorized.find((k) => k.type === ctx.key.algo && sameBytes(k.getPublicSSH(), ctx.key.data));
      if (key && (!ctx.signature || (ctx.blob !== undefined && key.verify(ctx.blob, ctx.signature, ctx.hashAlgo)))) return ctx.accept();
    }
    return ctx.reject(['password', 'publickey']);
  };

  const onClient = (client: Connection) => {
    client.on('error', () => {});
    client.on('authentication', authenticate);
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept();
        const env: Record<string, string> = {};
        let child: ChildProcess | undefined;
        session.on('env', (ok, _no, info) => {
          env[info.key] = info.val;
          ok?.();
        });
        session.on('pty', (_ok, no) => no?.());
        session.on('shell', (_ok, no) => no?.());
        session.on('subsystem', (_ok, no) => no?.());
        session.on('signal', (ok, _no, info) => {
          try {
            child?.kill(`SIG${info.name.replace(/^SIG/, '')}` as NodeJS.Signals);
          } catch {
            // gone
          }
          ok?.();
        });
        session.on('exec', (ok, _no, info) => {
          child = exec(ok(), info.command, env);
          children.add(child);
          child.on('exit', () => children.delete(child!));
        });
      });
    });
  };

  const exec = (channel: ServerChannel, command: string, sessionEnv: Record<string, string>): ChildProcess => {
    const child = spawn('bash', ['-c', command], {
      cwd: home,
      env: { PATH: process.env.PATH, LANG: process.env.LANG, ...sessionEnv, HOME: home, USER: guest.username, LOGNAME: guest.username, SHELL: '/bin/bash' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    bridgeExec(channel, child, { errorPrefix: '', destroyPipesOnClose: false });
    return child;
  };

  const server = new ssh2.Server({ hostKeys: [guest.hostKey] }, onClient);
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : 0);
    });
  });
  const bootTimer = setTimeout(() => {
    writeFileAtomic(path.join(dir, GUEST_FILE), JSON.stringify({ ip: '127.0.0.1', sshPort: port, bootedAt: new Date().toISOString() }));
  }, Number(process.env.TART_DOUBLE_BOOT_MS ?? '300'));

  process.on('SIGHUP', () => {});
  process.on('uncaughtException', (err) => console.error(`tart double: ${err.stack ?? String(err)}`));
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  clearTimeout(bootTimer);
  fs.rmSync(path.join(dir, GUEST_FILE), { force: true });
  server.close();
  for (const c of children) c.kill('SIGTERM');
  await waitUntil(() => children.size === 0, { timeoutMs: 500, intervalMs: 20 });
  for (const c of children) c.kill('SIGKILL');
  return 0;
}

function makeHostKey(ssh2: typeof import('ssh2')): string {
  for (let i = 0; i < 20; i++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519');
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error) && !(ssh2.utils.parseKey(pair.public) instanceof Error)) return pair.private;
  }
  throw runtimeError('could not generate an SSH host key');
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

// ---------------------------------------------------------------- main

const ROOT_USAGE = `OVERVIEW: tart (test double of Cirrus Labs' tart ${VERSION})

USAGE: tart <subcommand>

SUBCOMMANDS:
  clone, run, set, get, list, ip, pull, push, stop, delete, fqn`;

/** Runs one tart command; returns the exit status (run: when the "VM" stops). */
export async function main(argv: string[]): Promise<number> {
  if (process.env.TART_DOUBLE_ARGV_LOG) {
    const entry = { pid: process.pid, argv, registryCredentials: Boolean(process.env.TART_REGISTRY_USERNAME || process.env.TART_REGISTRY_PASSWORD) };
    fs.appendFileSync(process.env.TART_DOUBLE_ARGV_LOG, `${JSON.stringify(entry)}\n`);
  }
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(ROOT_USAGE);
    return 0;
  }
  if (sub === '--version') {
    console.log(VERSION);
    return 0;
  }
  const cmd = COMMANDS[sub];
  if (!cmd) {
    process.stderr.write(`Error: Unexpected argument '${sub}'\nUsage: tart <subcommand>\n  See 'tart --help' for more information.\n`);
    return 64;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`USAGE: ${usageLine(cmd)}`);
    return 0;
  }
  try {
    const parsed = parse(cmd, rest);
    switch (cmd.name) {
      case 'clone':
        return await cmdClone(parsed);
      case 'pull':
        return await cmdPull(parsed);
      case 'push':
        return await cmdPush(parsed);
      case 'set':
        return cmdSet(parsed);
      case 'get':
        return cmdGet(parsed);
      case 'list':
        return cmdList(parsed);
      case 'fqn':
        return cmdFqn(parsed);
      case 'delete':
        return cmdDelete(parsed);
      case 'stop':
        return await cmdStop(parsed);
      case 'ip':
        return await cmdIp(parsed);
      case 'run':
        return await cmdRun(parsed);
      default:
        return 64;
    }
  } catch (err) {
    if (err instanceof TartExit) {
      process.stderr.write(`${err.text}\n`);
      return err.code;
    }
    if (err instanceof TartRuntimeError) {
      process.stderr.write(`${err.message}\n`);
      return err.code;
    }
    process.stderr.write(`Error: ${(err as Error).message}\n`);
    return 1;
  }
}
