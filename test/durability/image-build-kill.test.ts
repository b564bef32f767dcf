/**
 * An image build survives its worker being killed with SIGKILL: once in the middle of
 * `packer build` (Packer and its QEMU are left running, orphaned), once after the push did its
 * work but before the server heard. Each time a new worker process takes over; the build then
 * completes exactly once: one manifest in the registry, the orphaned Packer stopped, nothing of
 * the build left on the host, and the registry password in no history, log or command line.
 *
 * Real components: the dev server, `ekiden worker` processes, Packer 1.6.6 + QEMU (TCG), the
 * distribution registry with TLS and htpasswd auth. Skipped with the reason when any is missing.
 */
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { imageBuildWorkflowId, imageCatalogWorkflowId } from '../../core/names.js';
import { DEFAULT_QEMU_IMAGE, defaultQemuImagesDir, imageRefDir } from '../../drivers/qemu-image.js';
import { processesMentioning } from '../../packer/packer.js';
import { defaultQemuTemplateDir } from '../../packer/qemu-build.js';
import { imageStatusQuery, type ImageBuildSpec } from '../../workflows/api.js';
import type { ImageBuildWorkflow } from '../../workflows/image-build.js';
import { PAUSE_MARKER } from '../../workers/test-hooks.js';
import { ROOT, temporalSkipReason } from '../support/harness.js';
import { registryMissing, startRegistry, type TestRegistry } from '../support/registry.js';
import { waitUntil } from '../support/wait.js';

const IMAGES_DIR = process.env.EKIDEN_QEMU_IMAGES_DIR || defaultQemuImagesDir();
const onPath = (bin: string) => (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, bin)));

function skipReason(): string {
  const temporal = temporalSkipReason();
  if (temporal) return temporal;
  const missing = ['packer', 'qemu-system-x86_64', 'qemu-img'].filter((b) => !onPath(b));
  if (missing.length) return `${missing.join(', ')} not installed (apt-get install packer qemu-system-x86 qemu-utils)`;
  if (!existsSync(join(imageRefDir(IMAGES_DIR, DEFAULT_QEMU_IMAGE), 'manifest.json'))) return `guest image not built in ${IMAGES_DIR} (run images/ensure-image.sh as root)`;
  return registryMissing();
}
const SKIP = skipReason();

interface WorkerProc {
  child: ChildProcess;
  stderr: string[];
}

describe.skipIf(SKIP !== '')(`image build with its worker SIGKILLed${SKIP ? ` — skipped: ${SKIP}` : ''}`, () => {
  const host = `kill-build-${randomBytes(3).toString('hex')}`;
  const queue = `ekiden-${host}`;
  let registry: TestRegistry;
  let dir: string;
  let connection: Connection;
  let client: Client;
  const workers: WorkerProc[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    dir = mkdtempSync(join(tmpdir(), 'ekiden-image-kill-'));
    connection = await Connection.connect({ address: inject('temporalAddress') });
    client = new Client({ connection });
  });
  afterAll(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    for (const pid of dir ? processesMentioning(dir) : []) process.kill(pid, 'SIGKILL');
    await connection?.close();
    await registry?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function startWorker(pauseAfter: string[]): WorkerProc {
    const config = {
      temporal: { address: inject('temporalAddress'), namespace: 'default', taskQueue: queue },
      host: { id: host, dataDir: join(dir, 'host'), shutdownGraceMs: 1000 },
      driver: { kind: 'qemu', root: join(dir, 'vms'), imagesDir: IMAGES_DIR },
      github: { apiUrl: 'http://127.0.0.1:9', scope: 'repo:acme/app', auth: { tokenEnv: 'EKIDEN_TEST_GITHUB_TOKEN' }, writeSpacingMs: 0 },
      registry: { url: registry.url, username: registry.username, passwordEnv: 'EKIDEN_REGISTRY_PASSWORD', caFile: registry.caFile },
      ...(pauseAfter.length ? { testing: { pauseAfter } } : {}),
    };
    const file = join(dir, `worker-${workers.length}.json`);
    writeFileSync(file, JSON.stringify(config));
    const child = spawn(process.execPath, [join(ROOT, 'dist/workers/main.js'), '--config', file], {
      env: { ...process.env, EKIDEN_TEST_GITHUB_TOKEN: 'ghp_image_kill', EKIDEN_REGISTRY_PASSWORD: registry.password },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const w: WorkerProc = { child, stderr: [] };
    child.stderr!.setEncoding('utf8').on('data', (d: string) => w.stderr.push(...d.split('\n')));
    workers.push(w);
    return w;
  }

  async function kill(w: WorkerProc): Promise<void> {
    const exited = new Promise((r) => w.child.once('exit', r));
    w.child.kill('SIGKILL');
    await exited;
  }

  /** The running activity of the build and its heartbeat details. */
  async function pending(handle: WorkflowHandle): Promise<{ type?: string; details?: { packerStep?: string } }> {
    const raw = (await handle.describe()).raw;
    const a = raw.pendingActivities?.[0];
    const payload = a?.heartbeatDetails?.payloads?.[0];
    return { type: a?.activityType?.name ?? undefined, details: payload ? (defaultPayloadConverter.fromPayload(payload) as { packerStep?: string }) : undefined };
  }

  it('completes once, with one manifest in the registry and nothing left behind', { timeout: 900_000 }, async () => {
    const spec: ImageBuildSpec = {
      name: 'kill-runner',
      kind: 'qemu',
      template: defaultQemuTemplateDir(),
      variables: { inline: ['echo killed-twice > /etc/ekiden-build-id'] },
      variablesFromEnv: {},
      base: { ref: DEFAULT_QEMU_IMAGE },
      registry: registry.host,
      repository: 'ekiden/kill-runner',
      buildHosts: [host],
      buildTimeoutMs: 20 * 60_000,
      smokeTimeoutMs: 5 * 60_000,
      promote: 'auto',
      keep: 3,
    };
    const first = startWorker([]);
    const handle = await client.workflow.start<typeof ImageBuildWorkflow>('ImageBuildWorkflow', {
      workflowId: imageBuildWorkflowId('kill-runner', `k${Date.now().toString(36)}`),
      taskQueue: queue,
      args: [{ spec, trigger: 'manual', heartbeatTimeoutMs: 10_000 }],
    });

    // 1. Mid-build: Packer is waiting for (or talking to) the build VM's SSH.
    const during = await waitUntil(() => pending(handle), (p) => p.type === 'buildImage' && /SSH|Provisioning/.test(p.details?.packerStep ?? ''), 300_000, 'packer reaching the build VM');
    expect(during.details?.packerStep).toBeDefined();
    const buildsDir = join(dir, 'host', 'image-builds');
    await kill(first);
    // Packer and its QEMU outlive the worker: the next attempt must stop them.
    const orphans = processesMentioning(join(buildsDir));
    expect(orphans.length, 'packer survives its worker').toBeGreaterThan(0);

    // 2. After the push did its work, before the server heard.
    const second = startWorker(['pushImage']);
    await waitUntil(() => second.stderr.some((l) => l.startsWith(`${PAUSE_MARKER} pushImage`)), (v) => v, 600_000, 'the push done and held');
    for (const pid of orphans) expect(existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'), `orphan ${pid} stopped`).toBe(false);
    await kill(second);

    // 3. A third worker finishes it.
    const third = startWorker([]);
    const record = await handle.result();
    expect(record.digest).toMatch(/^sha256:[0-9a-f]{64}$/);

    // One manifest in the registry: the retried push recognised the one already there.
    const revisions = join(registry.rootDir, 'docker', 'registry', 'v2', 'repositories', 'ekiden', 'kill-runner', '_manifests', 'revisions', 'sha256');
    expect(readdirSync(revisions)).toEqual([record.digest.slice('sha256:'.length)]);
    // Recorded once, current.
    const catalog = await waitUntil(() => client.workflow.getHandle(imageCatalogWorkflowId('kill-runner')).query(imageStatusQuery), (s) => s.current === record.digest, 30_000, 'current');
    expect(catalog.builds.map((b) => b.digest)).toEqual([record.digest]);
    // Nothing of the build on the host, nothing of it running.
    expect(existsSync(buildsDir) ? readdirSync(buildsDir) : []).toEqual([]);
    expect(processesMentioning(buildsDir)).toEqual([]);

    // The registry password: in no history, no worker log, no command line.
    const history = JSON.stringify(await handle.fetchHistory());
    expect(history).not.toContain(registry.password);
    for (const w of workers) expect(w.stderr.join('\n')).not.toContain(registry.password);
    for (const pid of [third.child.pid!]) expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).not.toContain(registry.password);
    third.child.kill('SIGTERM');
  });
});
