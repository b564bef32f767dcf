/**
 * The per-VM state file `<vmDir>/vm.json` of the drivers that keep each VM as a directory
 * (fake, QEMU; see vm-dirs.ts): read, written atomically (temp file + rename, so a reader —
 * a restarted worker, another driver instance — never sees half a record), and stripped of
 * the fields that hold only while the VM runs. Each driver defines its own record type.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { DriverError } from './types.js';
import { errCode, rand } from './vm-dirs.js';

/** File name of the record inside the VM's directory. */
export const VM_RECORD_FILE = 'vm.json';

/** Writes `data` to a temporary sibling, then renames it over `file`. */
export async function writeFileAtomic(file: string, data: string, mode = 0o644): Promise<void> {
  const tmp = `${file}.${process.pid}.${rand()}.tmp`;
  await fs.writeFile(tmp, data, { mode });
  await fs.rename(tmp, file);
}

/** The record as it is stored: pretty-printed JSON with a final newline. */
export function vmRecordText(rec: object): string {
  return `${JSON.stringify(rec, null, 2)}\n`;
}

/**
 * The record of the VM in `vmDir`, or undefined when it has none. An unreadable record is a
 * DriverError 'failed' naming the VM (the directory's name).
 */
export async function readVmRecord<T>(vmDir: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(vmDir, VM_RECORD_FILE), 'utf8')) as T;
  } catch (err) {
    if (errCode(err) === 'ENOENT') return undefined;
    throw new DriverError('failed', `state of VM ${path.basename(vmDir)} is unreadable`, { cause: err });
  }
}

/** Replaces the record of the VM in `vmDir` atomically. */
export async function writeVmRecord(vmDir: string, rec: object): Promise<void> {
  await writeFileAtomic(path.join(vmDir, VM_RECORD_FILE), vmRecordText(rec));
}

/** A copy of `rec` without `fields` (the runtime ones: pid, port, …). */
export function withoutFields<T extends object>(rec: T, fields: readonly (keyof T)[]): T {
  const copy = { ...rec };
  for (const f of fields) delete copy[f];
  return copy;
}

/** Whether any of `fields` is set in `rec`. */
export function hasAnyField<T extends object>(rec: T, fields: readonly (keyof T)[]): boolean {
  return fields.some((f) => rec[f] !== undefined);
}
