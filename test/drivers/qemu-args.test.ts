/**
 * The QEMU command line (drivers/qemu-args.ts) as a table, without QEMU: accelerator, CPU and
 * memory, user-mode networking with its SSH port forward, tap networking, the fw_cfg files —
 * and never any key material on argv, only the paths of the files that hold it.
 */
import { describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import { defaultCpuModel, qemuArgs, uuidOf, type QemuLaunchSettings } from '../../drivers/qemu-args.js';

const DIR = '/var/lib/ekiden/vms/ekiden-demo-0001';
const MACHINE_ID = '0123456789abcdef0123456789abcdef';

const BASE: QemuLaunchSettings = {
  name: 'ekiden-demo-0001',
  machineId: MACHINE_ID,
  accel: 'tcg',
  cpuModel: 'max',
  cpu: 2,
  memoryMb: 2048,
  kernel: '/images/debian/vmlinuz',
  initrd: '/images/debian/initrd.img',
  append: 'console=ttyS0 root=/dev/vda1',
  dir: DIR,
  qmpSocket: `${DIR}/qmp.sock`,
  mac: '52:54:00:aa:bb:cc',
  network: { kind: 'user', sshPort: 40022 },
};

/** The value after each occurrence of `flag`. */
function values(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));
}

function value(argv: string[], flag: string): string | undefined {
  const all = values(argv, flag);
  expect(all.length, `${flag} given ${all.length} times`).toBeLessThanOrEqual(1);
  return all[0];
}

describe('qemuArgs', () => {
  it('builds the whole command line of a TCG VM with user-mode networking', () => {
    expect(qemuArgs(BASE).argv).toEqual([
      '-name', 'ekiden-demo-0001',
      '-uuid', '01234567-89ab-cdef-0123-456789abcdef',
      '-machine', 'q35',
      '-accel', 'tcg,thread=multi',
      '-cpu', 'max',
      '-smp', '2',
      '-m', '2048',
      '-nodefaults', '-no-user-config',
      '-display', 'none',
      '-monitor', 'none',
      '-serial', `file:${DIR}/console.log`,
      '-kernel', '/images/debian/vmlinuz',
      '-initrd', '/images/debian/initrd.img',
      '-append', `console=ttyS0 root=/dev/vda1 systemd.machine_id=${MACHINE_ID} mitigations=off`,
      '-drive', `if=virtio,file=${DIR}/disk.qcow2,format=qcow2,cache=writeback,discard=unmap`,
      '-device', 'virtio-rng-pci',
      '-fw_cfg', `name=opt/ekiden/host_key,file=${DIR}/keys/host_ed25519`,
      '-fw_cfg', `name=opt/ekiden/host_key_pub,file=${DIR}/keys/host_ed25519.pub`,
      '-fw_cfg', `name=opt/ekiden/authorized_keys,file=${DIR}/keys/client_ed25519.pub`,
      '-fw_cfg', `name=opt/ekiden/hostname,file=${DIR}/hostname`,
      '-qmp', `unix:${DIR}/qmp.sock,server=on,wait=off`,
      '-pidfile', `${DIR}/qemu.pid`,
      '-daemonize',
      '-netdev', 'user,id=n0,hostfwd=tcp:127.0.0.1:40022-:22',
      '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:cc',
    ]);
  });

  const cases: Array<{ what: string; settings: Partial<QemuLaunchSettings>; want: Record<string, string>; appendHas?: string[]; appendLacks?: string[] }> = [
    {
      what: 'TCG: multi-threaded, guest mitigations off',
      settings: { accel: 'tcg', cpuModel: 'max' },
      want: { '-accel': 'tcg,thread=multi', '-cpu': 'max' },
      appendHas: ['mitigations=off'],
    },
    {
      what: 'KVM: host CPU, mitigations left on',
      settings: { accel: 'kvm', cpuModel: 'host' },
      want: { '-accel': 'kvm', '-cpu': 'host' },
      appendLacks: ['mitigations=off'],
    },
    {
      what: 'a configured CPU model is passed as is',
      settings: { accel: 'kvm', cpuModel: 'Skylake-Server' },
      want: { '-accel': 'kvm', '-cpu': 'Skylake-Server' },
    },
    {
      what: 'vCPUs and memory',
      settings: { cpu: 8, memoryMb: 16384 },
      want: { '-smp': '8', '-m': '16384' },
    },
    {
      what: 'user-mode networking forwards the given loopback port to the guest sshd',
      settings: { network: { kind: 'user', sshPort: 51234 } },
      want: { '-netdev': 'user,id=n0,hostfwd=tcp:127.0.0.1:51234-:22' },
    },
    {
      what: 'tap networking uses the interface, no helper scripts',
      settings: { network: { kind: 'tap', ifname: 'ekiden3' } },
      want: { '-netdev': 'tap,id=n0,ifname=ekiden3,script=no,downscript=no' },
    },
    {
      what: 'a grown disk and extra kernel arguments go on the command line',
      settings: { accel: 'kvm', growfs: true, extraAppend: 'quiet loglevel=3' },
      want: {},
      appendHas: [`systemd.machine_id=${MACHINE_ID} ekiden.growfs=1 quiet loglevel=3`],
    },
    {
      what: 'commas in paths are doubled in option values',
      settings: { dir: '/tmp/a,b', qmpSocket: '/tmp/a,b/qmp.sock' },
      want: {
        '-serial': 'file:/tmp/a,,b/console.log',
        '-drive': 'if=virtio,file=/tmp/a,,b/disk.qcow2,format=qcow2,cache=writeback,discard=unmap',
        '-qmp': 'unix:/tmp/a,,b/qmp.sock,server=on,wait=off',
        '-pidfile': '/tmp/a,b/qemu.pid',
      },
    },
  ];

  for (const c of cases) {
    it(c.what, () => {
      const { argv } = qemuArgs({ ...BASE, ...c.settings });
      for (const [flag, want] of Object.entries(c.want)) expect(value(argv, flag), flag).toBe(want);
      const append = value(argv, '-append')!;
      for (const s of c.appendHas ?? []) expect(append).toContain(s);
      for (const s of c.appendLacks ?? []) expect(append).not.toContain(s);
      // Always exactly one NIC, after -daemonize, with the VM's MAC.
      expect(values(argv, '-netdev')).toHaveLength(1);
      expect(values(argv, '-device')).toEqual(['virtio-rng-pci', `virtio-net-pci,netdev=n0,mac=${BASE.mac}`]);
    });
  }

  it('hands the keys and hostname over as fw_cfg files in the VM directory', () => {
    const { argv, fwCfg } = qemuArgs(BASE);
    expect(fwCfg).toEqual([
      { name: 'opt/ekiden/host_key', file: `${DIR}/keys/host_ed25519` },
      { name: 'opt/ekiden/host_key_pub', file: `${DIR}/keys/host_ed25519.pub` },
      { name: 'opt/ekiden/authorized_keys', file: `${DIR}/keys/client_ed25519.pub` },
      { name: 'opt/ekiden/hostname', file: `${DIR}/hostname` },
    ]);
    expect(values(argv, '-fw_cfg')).toEqual(fwCfg.map((f) => `name=${f.name},file=${f.file}`));
  });

  it('never puts key material on argv: fw_cfg entries are files, nothing looks like a key', () => {
    // Real keys of the kinds the driver generates, to look for on argv.
    const host = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'ekiden-demo-0001 host key' });
    const client = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'ekiden client' });
    const blobs = [host.private, host.public, client.private, client.public].flatMap((k) =>
      k.split(/\s+/).filter((word) => word.length >= 40),
    );
    expect(blobs.length).toBeGreaterThan(0);
    for (const settings of [BASE, { ...BASE, accel: 'kvm' as const, network: { kind: 'tap' as const, ifname: 'ekiden0' } }]) {
      const { argv } = qemuArgs(settings);
      for (const fw of values(argv, '-fw_cfg')) {
        expect(fw).toMatch(/^name=opt\/ekiden\/[a-z_]+,file=\/[^,]+$/);
        expect(fw).not.toMatch(/(^|,)string=/);
      }
      for (const arg of argv) {
        expect(arg).not.toMatch(/PRIVATE KEY|ssh-ed25519|ssh-rsa|ecdsa-sha2/);
        for (const blob of blobs) expect(arg).not.toContain(blob);
      }
    }
  });

  it('is a pure function of its settings', () => {
    const settings = structuredClone(BASE);
    expect(qemuArgs(settings)).toEqual(qemuArgs(BASE));
    expect(settings).toEqual(BASE);
  });

  it('derives the UUID from the machine id and the default CPU model from the accelerator', () => {
    expect(uuidOf(MACHINE_ID)).toBe('01234567-89ab-cdef-0123-456789abcdef');
    expect(defaultCpuModel('kvm')).toBe('host');
    expect(defaultCpuModel('tcg')).toBe('max');
  });
});
