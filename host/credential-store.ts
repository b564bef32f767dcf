/**
 * Host-local store for runner credentials (JIT configs, registration tokens).
 *
 * A credential is fetched and used on the host that launches the runner; between the two
 * activities it lives here (a 0600 file in a 0700 directory), never in workflow history.
 * Keys are runner names (slugs from core/names), so paths cannot escape the directory.
 */
import { mkdir, readFile, rm, writeFile, rename, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunnerCredential } from '../ssh/runner.js';

/** A credential as kept on the host, with the runner id GitHub gave it when known. */
export type StoredCredential = RunnerCredential & { runnerId?: number };

const KEY = /^[a-z0-9][a-z0-9-]{0,80}$/;

export class CredentialStore {
  constructor(private readonly dir: string) {}

  private path(key: string): string {
    if (!KEY.test(key)) throw new Error(`credential key "${key}" is not a runner name`);
    return join(this.dir, `${key}.json`);
  }

  async put(key: string, credential: StoredCredential): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.path(key);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(credential), { mode: 0o600 });
    await rename(tmp, file);
  }

  async get(key: string): Promise<StoredCredential | undefined> {
    try {
      return JSON.parse(await readFile(this.path(key), 'utf8')) as StoredCredential;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async keys(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length));
    } catch {
      return [];
    }
  }
}
