/**
 * The command line of a VM's QEMU process, as a pure function of a plain settings object: no
 * I/O, no clock, no randomness (ports, tap names and the accelerator are decided by the
 * caller). Secrets never go on it: the guest's SSH host key, its authorized key and hostname
 * reach it as fw_cfg *files* (paths in the VM's directory, see qemu-record.ts), so argv — which
 * any local user can read in /proc — carries only their paths.
 */
import type { Accel } from './qemu-accel.js';
import { qemuVmFiles } from './qemu-record.js';

export type QemuNetArgs =
  /** NAT; the guest's sshd forwarded to 127.0.0.1:sshPort. */
  | { kind: 'user'; sshPort: number }
  /** An existing tap interface. */
  | { kind: 'tap'; ifname: string };

export interface QemuLaunchSettings {
  /** VM name: `-name`, and with `machineId` how a live QEMU is recognised as this VM's. */
  name: string;
  /** 32 hex digits: `-uuid` (uuidOf) and systemd.machine_id=. */
  machineId: string;
  accel: Accel;
  cpuModel: string;
  cpu: number;
  memoryMb: number;
  kernel: string;
  initrd: string;
  /** The image's kernel command line. */
  append: string;
  /** The disk is larger than the image's: the guest grows its filesystem at boot. */
  growfs?: boolean;
  /** Appended to the kernel command line. */
  extraAppend?: string;
  /** The VM's directory: disk, console, pid file and fw_cfg files (qemuVmFiles). */
  dir: string;
  qmpSocket: string;
  mac: string;
  network: QemuNetArgs;
}

/** A file QEMU hands the guest through fw_cfg (the guest reads /sys/firmware/qemu_fw_cfg). */
export interface FwCfgFile {
  name: string;
  file: string;
}

export interface QemuArgs {
  /** Arguments of qemu-system-x86_64 (without the binary). */
  argv: string[];
  /** The fw_cfg entries on argv, in order. */
  fwCfg: FwCfgFile[];
}

/** QEMU option values: a comma is written as two. */
export function optValue(value: string): string {
  return value.replace(/,/g, ',,');
}

/** The machine id as a UUID (8-4-4-4-12). */
export function uuidOf(machineId: string): string {
  const h = machineId;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** -cpu model when none is configured: the host's under KVM, everything TCG emulates otherwise. */
export function defaultCpuModel(accel: Accel): string {
  return accel === 'kvm' ? 'host' : 'max';
}

/** The guest's kernel command line. */
export function kernelAppend(s: Pick<QemuLaunchSettings, 'append' | 'machineId' | 'growfs' | 'accel' | 'extraAppend'>): string {
  let append = `${s.append} systemd.machine_id=${s.machineId}`;
  if (s.growfs) append += ' ekiden.growfs=1';
  // Under TCG the guest CPU does not speculate: its side-channel mitigations only cost time.
  if (s.accel === 'tcg') append += ' mitigations=off';
  if (s.extraAppend) append += ` ${s.extraAppend}`;
  return append;
}

/** The fw_cfg files of the VM in `dir`: SSH host key pair, authorized key, hostname. */
export function fwCfgFiles(dir: string): FwCfgFile[] {
  const files = qemuVmFiles(dir);
  return [
    { name: 'opt/ekiden/host_key', file: files.hostKey },
    { name: 'opt/ekiden/host_key_pub', file: files.hostKeyPub },
    { name: 'opt/ekiden/authorized_keys', file: files.clientKeyPub },
    { name: 'opt/ekiden/hostname', file: files.hostname },
  ];
}

/** The `-netdev` value of the VM's one NIC (id n0). */
export function netdevArg(network: QemuNetArgs): string {
  return network.kind === 'user'
    ? `user,id=n0,hostfwd=tcp:127.0.0.1:${network.sshPort}-:22`
    : `tap,id=n0,ifname=${optValue(network.ifname)},script=no,downscript=no`;
}

/** Arguments of a daemonized QEMU running the VM: q35, virtio disk, NIC and RNG, serial to a file, QMP. */
export function qemuArgs(s: QemuLaunchSettings): QemuArgs {
  const files = qemuVmFiles(s.dir);
  const fwCfg = fwCfgFiles(s.dir);
  const argv = [
    '-name', s.name,
    '-uuid', uuidOf(s.machineId),
    '-machine', 'q35',
    '-accel', s.accel === 'tcg' ? 'tcg,thread=multi' : 'kvm',
    '-cpu', s.cpuModel,
    '-smp', String(s.cpu),
    '-m', String(s.memoryMb),
    '-nodefaults', '-no-user-config',
    '-display', 'none',
    '-monitor', 'none',
    '-serial', `file:${optValue(files.console)}`,
    '-kernel', s.kernel,
    '-initrd', s.initrd,
    '-append', kernelAppend(s),
    '-drive', `if=virtio,file=${optValue(files.disk)},format=qcow2,cache=writeback,discard=unmap`,
    '-device', 'virtio-rng-pci',
    ...fwCfg.flatMap((f) => ['-fw_cfg', `name=${f.name},file=${optValue(f.file)}`]),
    '-qmp', `unix:${optValue(s.qmpSocket)},server=on,wait=off`,
    '-pidfile', files.pidFile,
    '-daemonize',
    '-netdev', netdevArg(s.network),
    '-device', `virtio-net-pci,netdev=n0,mac=${s.mac}`,
  ];
  return { argv, fwCfg };
}
