/**
 * Content digests as the registry names them (`sha256:<64 hex>`; the only algorithm this
 * client accepts) and hashing of byte ranges of files without holding them in memory.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { RegistryError, isAbort } from './errors.js';

const DIGEST = /^sha256:[0-9a-f]{64}$/;

export function isDigest(text: string): boolean {
  return DIGEST.test(text);
}

/** Throws 'invalid' unless `text` is a sha256 digest. */
export function checkDigest(text: string, what = 'digest'): string {
  if (!DIGEST.test(text)) throw new RegistryError('invalid', `${what} "${text.slice(0, 80)}" is not a sha256:<64 hex> digest`);
  return text;
}

export function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function digestOf(hash: Hash): string {
  return `sha256:${hash.digest('hex')}`;
}

/**
 * Feeds bytes [offset, offset+length) of `file` to `hashes` (in order), `onBytes` after each
 * piece. Resolves with the number of bytes read (less than `length` when the file is shorter).
 */
export async function hashFileRange(file: string, offset: number, length: number, hashes: Hash[], signal?: AbortSignal, onBytes?: (n: number) => void): Promise<number> {
  if (length <= 0) return 0;
  let n = 0;
  try {
    const stream = createReadStream(file, { start: offset, end: offset + length - 1, highWaterMark: 1 << 20, signal });
    for await (const chunk of stream) {
      for (const h of hashes) h.update(chunk as Buffer);
      n += (chunk as Buffer).length;
      onBytes?.((chunk as Buffer).length);
    }
  } catch (err) {
    if (isAbort(err, signal)) throw new RegistryError('aborted', `hashing ${file}: cancelled`, { cause: err });
    throw new RegistryError('io', `reading ${file} failed: ${(err as Error).message}`, { cause: err });
  }
  return n;
}

/**
 * Flushes `partial` to disk and renames it to `dest`: a file that is complete, verified and
 * durable appears under its final name, or nothing does. `what` prefixes the error.
 */
export async function commitFile(partial: string, dest: string, what?: string): Promise<void> {
  try {
    const fh = await fsp.open(partial, 'r+');
    try {
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await fsp.rename(partial, dest);
  } catch (err) {
    throw new RegistryError('io', `${what ? `${what}: ` : ''}moving ${partial} into place failed: ${(err as Error).message}`, { cause: err });
  }
}

/** Cuts `file` back to `to` bytes (0 removes it): a partial download kept only as far as it was verified. */
export async function cutFile(file: string, to: number): Promise<number> {
  try {
    if (to === 0) await fsp.rm(file, { force: true });
    else await fsp.truncate(file, to);
  } catch (err) {
    throw new RegistryError('io', `truncating ${file} failed: ${(err as Error).message}`, { cause: err });
  }
  return to;
}
