/**
 * Networking of QEMU VMs: the loopback port a user-mode (NAT) VM's sshd is forwarded to, the
 * tap interface a bridged VM gets, and the address a bridged guest announces on its serial
 * console (`ekiden-guest: ipv4=…`, printed by the image's boot scripts once DHCP gave it one).
 */
import net from 'node:net';
import { DriverError } from './types.js';

const GUEST_IPV4 = /ekiden-guest: ipv4=(\d{1,3}(?:\.\d{1,3}){3})/g;

/** A loopback TCP port nobody listens on right now (QEMU binds it moments later; start retries on a race). */
export function freeLoopbackPort(): Promise<number> {
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

/** QEMU's error when the forwarded port was taken between freeLoopbackPort and its bind. */
export function isHostfwdRace(qemuError: string): boolean {
  return /host forwarding|hostfwd|Address already in use/i.test(qemuError);
}

/**
 * The tap interface for a VM: `template` itself, or with a `%d` in it the lowest index not in
 * `used` (the interfaces of the other running VMs). DriverError 'capacity' when none is free.
 */
export function pickTapIfname(template: string, used: ReadonlySet<string>): string {
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

/** The last IPv4 address the guest announced in `consoleText`, if any. */
export function lastGuestIpv4(consoleText: string): string | undefined {
  let last: string | undefined;
  for (const m of consoleText.matchAll(GUEST_IPV4)) last = m[1];
  return last;
}
