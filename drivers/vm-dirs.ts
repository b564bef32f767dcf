/**
 * Shared by the drivers that keep each VM as a directory under `<root>/vms/` (fake, QEMU):
 * listing Ekiden's own VM directories and removing one so it is never seen half-deleted.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseVmName } from '../core/names.js';

export function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** A short random suffix for temporary file names. */
export function rand(): string {
  return randomBytes(4).toString('hex');
}

/** Names of the VM directories in `vmsDir` that are Ekiden's (parseVmName), sorted. */
export async function ownVmDirNames(vmsDir: string): Promise<string[]> {
  try {
    return (await fs.readdir(vmsDir)).filter((n) => parseVmName(n)).sort();
  } catch (err) {
    if (errCode(err) === 'ENOENT') return [];
    throw err;
  }
}

/** Removes `<vmsDir>/<name>`: renamed away first, so a half-removed VM is never listed. */
export async function removeVmDir(vmsDir: string, name: string): Promise<void> {
  const doomed = path.join(vmsDir, `.deleting-${name}-${rand()}`);
  await fs.rename(path.join(vmsDir, name), doomed);
  await fs.rm(doomed, { recursive: true, force: true });
}
