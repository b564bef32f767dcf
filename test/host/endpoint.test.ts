/**
 * host/endpoint.ts: where the operator verbs find a running `ekiden up`. The file is followed
 * only while the live process that wrote it holds the data dir's lock; a file left by a dead
 * `up`, or one not written by the lock's holder, is ignored with a reason.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDataDir, LOCK_FILE, lockDataDir } from '../../host/data-dir-lock.js';
import { ENDPOINT_FILE, readEndpoint, writeEndpoint } from '../../host/endpoint.js';

const root = mkdtempSync(join(tmpdir(), 'ekiden-endpoint-'));
let n = 0;
const fresh = () => ensureDataDir(join(root, `d${n++}`));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('endpoint file', () => {
  it('is read back while its writer holds the lock, and removed by its writer', () => {
    const dir = fresh();
    const lock = lockDataDir(dir);
    const remove = writeEndpoint(dir, { address: '127.0.0.1:40001', namespace: 'default', uiUrl: 'http://127.0.0.1:40002' });
    expect(readEndpoint(dir)).toEqual({ pid: process.pid, address: '127.0.0.1:40001', namespace: 'default', uiUrl: 'http://127.0.0.1:40002' });
    remove();
    expect(existsSync(join(dir, ENDPOINT_FILE))).toBe(false);
    expect(readEndpoint(dir)).toEqual({ missing: `data dir ${dir} is in use by pid ${process.pid} but has no ${ENDPOINT_FILE} (not an ekiden up, or still starting)` });
    lock.release();
  });

  it('is ignored once the lock is gone (the up stopped or was killed)', () => {
    const dir = fresh();
    const lock = lockDataDir(dir);
    writeEndpoint(dir, { address: '127.0.0.1:40001', namespace: 'default' });
    lock.release();
    expect(readEndpoint(dir)).toEqual({ missing: `no ekiden up is running on data dir ${dir}` });
  });

  it('is ignored when the lock is held by a dead process', () => {
    const dir = fresh();
    const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    writeFileSync(join(dir, LOCK_FILE), `${dead}\n\nekiden up\n`);
    writeFileSync(join(dir, ENDPOINT_FILE), JSON.stringify({ pid: dead, address: '127.0.0.1:40001', namespace: 'default' }));
    expect(readEndpoint(dir)).toEqual({ missing: `no ekiden up is running on data dir ${dir}` });
  });

  it('is ignored when another process wrote it than the one holding the lock', () => {
    const dir = fresh();
    const lock = lockDataDir(dir);
    writeFileSync(join(dir, ENDPOINT_FILE), JSON.stringify({ pid: process.pid + 1, address: '127.0.0.1:40001', namespace: 'default' }));
    expect(readEndpoint(dir)).toEqual({ missing: `data dir ${dir}: ${ENDPOINT_FILE} is not that of pid ${process.pid}, which holds the dir` });
    lock.release();
  });

  it('a remover never deletes a newer writer\'s file', () => {
    const dir = fresh();
    const lock = lockDataDir(dir);
    const removeOld = writeEndpoint(dir, { address: '127.0.0.1:40001', namespace: 'default' });
    writeEndpoint(dir, { address: '127.0.0.1:40003', namespace: 'default' });
    removeOld();
    expect(JSON.parse(readFileSync(join(dir, ENDPOINT_FILE), 'utf8'))).toMatchObject({ address: '127.0.0.1:40003' });
    lock.release();
  });

  it('a data dir that does not exist, or is a file, has no endpoint', () => {
    expect(readEndpoint(join(root, 'nowhere'))).toEqual({ missing: `no ekiden up is running on data dir ${join(root, 'nowhere')}` });
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    expect('missing' in readEndpoint(file)).toBe(true);
  });
});
