/**
 * Shared by the drivers that keep each VM as a directory under `<root>/vms/` (fake, QEMU):
 * checking VM names, listing Ekiden's own VM directories and removing one so it is never seen
 * half-deleted. The record inside each directory: vm-record.ts.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseVmName } from '../core/names.js';
import { DriverError, type VmInfo } from './types.js';

export function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** A short random suffix for temporary file names. */
export function rand(): string {
  return randomBytes(4).toString('hex');
}

/** DriverError 'invalid' unless `name` is an Ekiden VM name (parseVmName). */
export function checkVmName(name: string): void {
  if (!parseVmName(name)) throw new DriverError('invalid', `"${name}" is not an Ekiden VM name`);
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

/** `info` of each of Ekiden's VM directories in `vmsDir`, in name order; undefined ones are left out. */
export async function listOwnVms(vmsDir: string, info: (name: string) => Promise<VmInfo | undefined>): Promise<VmInfo[]> {
  const out: VmInfo[] = [];
  for (const name of await ownVmDirNames(vmsDir)) {
    const vm = await info(name);
    if (vm) out.push(vm);
  }
  return out;
}

/** Removes `<vmsDir>/<name>`: renamed away first, so a half-removed VM is never listed. */
export async function removeVmDir(vmsDir: string, name: string): Promise<void> {
  const doomed = path.join(vmsDir, `.deleting-${name}-${rand()}`);
  await fs.rename(path.join(vmsDir, name), doomed);
  await fs.rm(doomed, { recursive: true, force: true });
}
