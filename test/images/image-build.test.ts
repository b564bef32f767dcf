/**
 * ImageBuildWorkflow end to end on real components: the Temporal dev server, a host worker
 * in this process serving the build host's queue, real Packer 1.6.6 building the QEMU runner
 * template over the cached Debian guest (TCG), a smoke boot of the result with the QEMU
 * driver, and a push to the real distribution registry (TLS with a CA the test made, htpasswd
 * auth). Then the image's catalog holds the build as current, with what it contains.
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
import { RegistryClient } from '../../registry/client.js';
import { QEMU_ANNOTATIONS } from '../../registry/qemu-artifact.js';
import { imageStatusQuery, type ImageBuildSpec, type ImageCatalogStatus } from '../../workflows/api.js';
import type { ImageBuildWorkflow } from '../../workflows/image-build.js';
import { createHostWorker, type HostWorker } from '../../workers/host-worker.js';
import { recordFixture } from '../support/fixtures.js';
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

  it('builds with Packer, smoke-boots, pushes by digest and makes the build current', { timeout: 900_000 }, async () => {
    const marker = randomBytes(8).toString('hex');
    const handle = await client.workflow.start<typeof ImageBuildWorkflow>('ImageBuildWorkflow', {
      workflowId: imageBuildWorkflowId('linux-runner', `t${Date.now().toString(36)}`),
      taskQueue: QUEUE,
      args: [{ spec: spec({ variables: { inline: [`echo ${marker} > /etc/ekiden-build-id`] } }), trigger: 'manual' }],
    });
    const record = await handle.result();
    expect(record.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(record.ref).toBe(`${registry.host}/ekiden/linux-runner@${record.digest}`);
    expect(record.runnerVersion).toMatch(/^\d+\.\d+\.\d+$/);
    expect(record.baseDigest).toMatch(/^sha256:/);
    expect(record.templateHash).toMatch(/^sha256:/);

    // The registry holds that manifest, annotated with what it contains.
    const reg = new RegistryClient({ url: registry.url, caFile: registry.caFile, username: registry.username, password: registry.password });
    try {
      const manifest = await reg.getManifest('ekiden/linux-runner', record.digest);
      expect(manifest.digest).toBe(record.digest);
      const annotations = (JSON.parse(manifest.bytes.toString('utf8')) as { annotations: Record<string, string> }).annotations;
      expect(annotations[QEMU_ANNOTATIONS.runnerVersion]).toBe(record.runnerVersion);
      expect(annotations[QEMU_ANNOTATIONS.baseDigest]).toBe(record.baseDigest);
      expect(annotations[QEMU_ANNOTATIONS.templateHash]).toBe(record.templateHash);
      expect(annotations[QEMU_ANNOTATIONS.builtAt]).toBe(record.builtAt);
    } finally {
      reg.close();
    }

    // The catalog made it current (the image promotes automatically).
    const status = await waitUntil<ImageCatalogStatus>(catalog, (s) => s.current === record.digest, 30_000, 'the build is current');
    expect(status.builds[0]).toMatchObject({ digest: record.digest, runnerVersion: record.runnerVersion, buildId: handle.workflowId });
    expect(status.consecutiveFailures).toBe(0);
    // Nothing of the build is left on the host.
    expect(buildDirs()).toEqual([]);
    recordFixture('image-build', await handle.fetchHistory());
  });

  it('a broken template fails the build, promotes nothing and leaves no build directory', { timeout: 300_000 }, async () => {
    const before = await catalog();
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
    expect(after.current).toBe(before.current);
    expect(after.builds.map((b) => b.digest)).toEqual(before.builds.map((b) => b.digest));
    expect(after.consecutiveFailures).toBe(before.consecutiveFailures + 1);
    expect(buildDirs()).toEqual([]);
  });
});
