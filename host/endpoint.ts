/**
 * Where a running `ekiden up` can be reached: `DIR/endpoint.json` in its data dir, holding the
 * Temporal address and namespace it serves and its Web UI's URL (no secret: the dev server on
 * loopback has none). Written once the server is up (a temporary file renamed into place, so a
 * reader never sees half of it) and removed when `up` stops. A reader trusts it only while the
 * data dir's lock (host/data-dir-lock.ts) is held by the live process that wrote it: a file left
 * by a killed `up` is ignored, never followed to a port some other program now listens on.
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { lockHolder } from './data-dir-lock.js';

export const ENDPOINT_FILE = 'endpoint.json';

export interface Endpoint {
  pid: number;
  address: string;
  namespace: string;
  uiUrl?: string;
}

/** Records the endpoint of this process (`up`) in `dir`; returns a remover (idempotent, only removes its own). */
export function writeEndpoint(dir: string, endpoint: Omit<Endpoint, 'pid'>): () => void {
  const file = join(resolve(dir), ENDPOINT_FILE);
  const content = `${JSON.stringify({ pid: process.pid, ...endpoint }, null, 2)}\n`;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o644 });
  renameSync(tmp, file);
  let removed = false;
  return () => {
    if (removed) return;
    removed = true;
    try {
      if (readFileSync(file, 'utf8') === content) unlinkSync(file);
    } catch {
      // already gone
    }
  };
}

/** Why no endpoint could be read from `dir` (for the one line the CLI prints). */
export type EndpointAbsence = { missing: string };

/** The endpoint of the `ekiden up` that owns `dir` now, or why there is none. */
export function readEndpoint(dir: string): Endpoint | EndpointAbsence {
  const abs = resolve(dir);
  const holder = lockHolder(abs);
  if (holder === undefined) return { missing: `no ekiden up is running on data dir ${abs}` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(join(abs, ENDPOINT_FILE), 'utf8'));
  } catch {
    return { missing: `data dir ${abs} is in use by pid ${holder} but has no ${ENDPOINT_FILE} (not an ekiden up, or still starting)` };
  }
  const e = parsed as Partial<Endpoint>;
  if (e.pid !== holder || typeof e.address !== 'string' || typeof e.namespace !== 'string' || (e.uiUrl !== undefined && typeof e.uiUrl !== 'string')) {
    return { missing: `data dir ${abs}: ${ENDPOINT_FILE} is not that of pid ${holder}, which holds the dir` };
  }
  return { pid: e.pid, address: e.address, namespace: e.namespace, ...(e.uiUrl ? { uiUrl: e.uiUrl } : {}) };
}
