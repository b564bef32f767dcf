/**
 * The on-disk state of one QEMU VM: the record in `vms/<name>/vm.json` (read and written
 * through vm-record.ts) and where every other file of the VM lives. Everything the driver
 * knows about a VM is here, so a restarted worker finds, stops and deletes it. See qemu.ts
 * for the whole layout under the driver's root.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Accel } from './qemu-accel.js';
import { hasAnyField, readVmRecord, withoutFields, writeVmRecord } from './vm-record.js';

export interface QemuVmRecord {
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

/** The fields that hold only while the VM runs. */
export const RUNTIME_FIELDS = ['pid', 'sshPort', 'qmpSocket', 'tapIfname', 'accel', 'cpuModel', 'startedAt'] as const;

/** Longest unix socket path we hand QEMU (sun_path is 108 bytes with the NUL). */
const MAX_SOCKET_PATH = 100;

/** The files of the VM in `dir` (a VM directory, or the temporary one a clone is built in). */
export function qemuVmFiles(dir: string) {
  const keys = path.join(dir, 'keys');
  return {
    /** Copy-on-write overlay over the image's disk. */
    disk: path.join(dir, 'disk.qcow2'),
    keysDir: keys,
    /** The guest's SSH host key (and .pub), handed to the guest as fw_cfg files. */
    hostKey: path.join(keys, 'host_ed25519'),
    hostKeyPub: path.join(keys, 'host_ed25519.pub'),
    /** The key Ekiden logs in with; its .pub is the guest's authorized key. */
    clientKey: path.join(keys, 'client_ed25519'),
    clientKeyPub: path.join(keys, 'client_ed25519.pub'),
    /** The guest's hostname (the VM name), also via fw_cfg. */
    hostname: path.join(dir, 'hostname'),
    console: path.join(dir, 'console.log'),
    prevConsole: path.join(dir, 'console.prev.log'),
    pidFile: path.join(dir, 'qemu.pid'),
    /** The QMP socket's usual place; see qmpSocketPath. */
    qmpSocket: path.join(dir, 'qmp.sock'),
    /** QEMU's stderr while it sets the VM up. */
    errFile: path.join(dir, 'qemu.err'),
  };
}

/** Where the VM's QMP socket goes: in its directory unless that path is too long for a socket. */
export function qmpSocketPath(dir: string): string {
  const inDir = qemuVmFiles(dir).qmpSocket;
  if (Buffer.byteLength(inDir) <= MAX_SOCKET_PATH) return inDir;
  return path.join(os.tmpdir(), `ekiden-qmp-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}.sock`);
}

export function readQemuRecord(dir: string): Promise<QemuVmRecord | undefined> {
  return readVmRecord<QemuVmRecord>(dir);
}

export function writeQemuRecord(dir: string, rec: QemuVmRecord): Promise<void> {
  return writeVmRecord(dir, rec);
}

/**
 * Forgets a VM's run: drops the runtime fields from its record and removes its pid file and
 * QMP socket (also one outside `dir`). Returns the record as it is now.
 */
export async function clearRuntime(dir: string, rec: QemuVmRecord): Promise<QemuVmRecord> {
  if (rec.qmpSocket && !rec.qmpSocket.startsWith(dir)) await fs.rm(rec.qmpSocket, { force: true });
  if (!hasAnyField(rec, RUNTIME_FIELDS)) return rec;
  const copy = withoutFields(rec, RUNTIME_FIELDS);
  await writeQemuRecord(dir, copy);
  const files = qemuVmFiles(dir);
  await fs.rm(files.pidFile, { force: true });
  await fs.rm(files.qmpSocket, { force: true });
  return copy;
}
