/**
 * ImageBuildWorkflow on real components (the Temporal dev server, a host worker in this process
 * serving the build host's queue, real Packer 1.6.6, the real registry with TLS and htpasswd
 * auth). A green build — Packer over the cached Debian guest, the smoke boot, the push, the
 * catalog holding it with what it contains, the registry's annotations, no build directory
 * left — is the images story's first half (test/e2e/images.test.ts), fired by its schedule.
 *
 * A broken template fails cleanly: nothing is promoted (the catalog keeps its current build,
 * and records the failure), and the build's directory is gone from the host.
 *
 * Skipped with the reason when packer, QEMU, the guest image or the registry are missing.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { imageBuildWorkflowId, imageCatalogWorkflowId } from '../../core/names.js';
import { createDriver } from '../../drivers/index.js';
import { DEFAULT_QEMU_IMAGE, defaultQemuImagesDir, imageRefDir } from '../../drivers/qemu-image.js';
import type { RunnerRegistry } from '../../github/runners.js';
import { defaultQemuTemplateDir } from '../../packer/qemu-build.js';
import { imageStatusQuery, type ImageBuildSpec, type ImageCatalogStatus } from '../../workflows/api.js';
import type { ImageBuildWorkflow } from '../../workflows/image-build.js';
import { createHostWorker, type HostWorker } from '../../workers/host-worker.js';
import { BUNDLE, temporalSkipReason } from '../support/harness.js';
import { registryMissing, startRegistry, type TestRegistry } from '../support/registry.js';
import { waitUntil } from '../support/wait.js';

const IMAGES_DIR = process.env.EKIDEN_QEMU_IMAGES_DIR || defaultQemuImagesDir();

function onPath(bin: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && existsSync(path.join(d, bin)));
}

function skipReason(): string {
  const temporal = temporalSkipReason();
  if (temporal) return temporal;
  const missing = ['packer', 'qemu-system-x86_64', 'qemu-img'].filter((b) => !onPath(b));
  if (missing.length) return `${missing.join(', ')} not installed (apt-get install packer qemu-system-x86 qemu-utils)`;
  if (!existsSync(path.join(imageRefDir(IMAGES_DIR, DEFAULT_QEMU_IMAGE), 'manifest.json'))) return `guest image not built in ${IMAGES_DIR} (run images/ensure-image.sh as root)`;
  return registryMissing();
}

const SKIP = skipReason();
const HOST = `build-${randomBytes(3).toString('hex')}`;
const QUEUE = `ekiden-image-build-${randomBytes(3).toString('hex')}`;

describe.skipIf(SKIP !== '')(`image builds${SKIP ? ` — skipped: ${SKIP}` : ''}`, () => {
  let registry: TestRegistry;
  let root: string;
  let connection: NativeConnection;
  let clientConnection: Connection;
  let client: Client;
  let worker: HostWorker;
  let running: Promise<void>;

  const spec = (over: Partial<ImageBuildSpec> = {}): ImageBuildSpec => ({
    name: 'linux-runner',
    kind: 'qemu',
    template: defaultQemuTemplateDir(),
    variables: {},
    variablesFromEnv: {},
    base: { ref: DEFAULT_QEMU_IMAGE },
    registry: registry.host,
    repository: 'ekiden/linux-runner',
    buildHosts: [HOST],
    buildTimeoutMs: 20 * 60_000,
    smokeTimeoutMs: 5 * 60_000,
    promote: 'auto',
    keep: 3,
    ...over,
  });

  const catalog = () => client.workflow.getHandle(imageCatalogWorkflowId('linux-runner')).query(imageStatusQuery);
  const buildDirs = () => {
    const dir = path.join(root, 'host', 'image-builds');
    return existsSync(dir) ? readdirSync(dir) : [];
  };

  beforeAll(async () => {
    registry = await startRegistry();
    root = await fs.mkdtemp(path.join(tmpdir(), 'ekiden-image-build-'));
    connection = await NativeConnection.connect({ address: inject('temporalAddress') });
    clientConnection = await Connection.connect({ address: inject('temporalAddress') });
    client = new Client({ connection: clientConnection });
    worker = await createHostWorker({
      connection,
      client,
      namespace: 'default',
      hostId: HOST,
      sharedTaskQueue: QUEUE,
      driver: createDriver({ kind: 'fake', root: path.join(root, 'vms'), images: {} }),
      github: {} as RunnerRegistry,
      githubRunnerUrl: 'http://127.0.0.1:9',
      dataDir: path.join(root, 'host'),
      workflowBundlePath: BUNDLE,
      confirmDelayMs: 0,
      images: {
        registry: { url: registry.url, caFile: registry.caFile, username: registry.username, password: registry.password, credentialSource: 'registry.passwordEnv EKIDEN_REGISTRY_PASSWORD' },
        qemuImagesDir: IMAGES_DIR,
      },
    });
    running = worker.run();
    await worker.ready;
  });

  afterAll(async () => {
    worker?.shutdown();
    await running?.catch(() => {});
    await connection?.close();
    await clientConnection?.close();
    await registry?.stop();
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('a broken template fails the build, promotes nothing and leaves no build directory', { timeout: 300_000 }, async () => {
    // The catalog may not exist yet: the failure starts it (signal-with-start).
    const before = await catalog().catch(() => undefined);
    const broken = path.join(root, 'broken-template');
    await fs.mkdir(broken, { recursive: true });
    await fs.writeFile(path.join(broken, 'runner.pkr.hcl'), 'source "qemu" "runner" {\n  this is not hcl\n');
    const handle = await client.workflow.start<typeof ImageBuildWorkflow>('ImageBuildWorkflow', {
      workflowId: imageBuildWorkflowId('linux-runner', `broken-${Date.now().toString(36)}`),
      taskQueue: QUEUE,
      args: [{ spec: spec({ template: broken }), trigger: 'manual' }],
    });
    await expect(handle.result()).rejects.toThrow();
    const after = await waitUntil<ImageCatalogStatus>(catalog, (s) => s.lastFailure?.buildId === handle.workflowId, 30_000, 'the failure is recorded');
    expect(after.current).toBe(before?.current);
    expect(after.builds.map((b) => b.digest)).toEqual((before?.builds ?? []).map((b) => b.digest));
    expect(after.consecutiveFailures).toBe((before?.consecutiveFailures ?? 0) + 1);
    expect(after.lastFailure?.message).toMatch(/packer|template|hcl/i);
    expect(buildDirs()).toEqual([]);
  });
});
