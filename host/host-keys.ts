/**
 * Host-local SSH host key pins, one per VM, for drivers that cannot tell a guest's host key in
 * advance (Tart: clones share their image's host keys). The first successful connection to a
 * VM records the fingerprint it saw; every later connection must see the same one. A pin lives
 * as long as its VM: destroying the VM forgets it. There is no global known_hosts.
 *
 * One file per VM (`<vm name>` holding `SHA256:…`, 0600, in a 0700 directory). Keys are VM
 * names (slugs from core/names), so paths cannot escape the directory.
 */
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sameFingerprint, SshError } from '../ssh/client.js';

const KEY = /^[a-z0-9][a-z0-9-]{0,80}$/;
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

export class HostKeyPins {
  constructor(private readonly dir: string) {}

  private path(vmName: string): string {
    if (!KEY.test(vmName)) throw new Error(`host key pin: "${vmName}" is not a VM name`);
    return join(this.dir, vmName);
  }

  /** The fingerprint pinned for this VM, or undefined when none is. */
  async get(vmName: string): Promise<string | undefined> {
    let text: string;
    try {
      text = (await readFile(this.path(vmName), 'utf8')).trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    if (!FINGERPRINT.test(text)) throw new Error(`host key pin of VM ${vmName} is unreadable: remove ${this.path(vmName)} or destroy the VM`);
    return text;
  }

  /**
   * Pins `fingerprint` for the VM unless a pin exists. The first writer wins, also between
   * concurrent callers; a different existing pin is an SshError 'host-key-mismatch'.
   */
  async pin(vmName: string, fingerprint: string): Promise<void> {
    if (!FINGERPRINT.test(fingerprint)) throw new Error(`host key pin: "${fingerprint}" is not a SHA256 fingerprint`);
    const file = this.path(vmName);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, `${fingerprint}\n`, { mode: 0o600 });
    try {
      // link() fails when the pin exists: an atomic create-if-absent of the complete file.
      await link(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pinned = await this.get(vmName);
      if (pinned !== undefined && !sameFingerprint(pinned, fingerprint)) {
        throw new SshError('host-key-mismatch', hostKeyChangedMessage(vmName, fingerprint, pinned));
      }
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Forgets the VM's pin (the VM is gone). */
  async forget(vmName: string): Promise<void> {
    await rm(this.path(vmName), { force: true });
  }
}

export function hostKeyChangedMessage(vmName: string, presented: string, pinned: string): string {
  return `VM ${vmName} presented SSH host key ${presented}, but ${pinned} was pinned for it at its first connection: refusing to connect (the guest was replaced or someone is in between)`;
}
