/**
 * The images story end to end, as an operator runs it, on real components: a fleet file with a
 * registry (the distribution registry with TLS and htpasswd auth) and an image definition;
 * `ekiden image apply` creates its catalog and its Temporal Schedule; `ekiden image schedule
 * trigger` fires it; real Packer builds the image from the Debian guest (TCG), it is smoke-booted,
 * pushed by digest and promoted; the hosts of the pool following it prefetch it; the pool's
 * runner — a real QEMU VM cloned from the cached registry image — runs a job that sees what the
 * provisioner wrote. `ekiden image rollback` then moves the pool back onto the build before
 * (the base image, pushed as the first build), where the same job no longer sees it.
 *
 * Skipped with the reason when QEMU, its guest image, Packer or the registry are missing.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePoolTuning } from '../../core/defaults.js';
import { imageCatalogWorkflowId, imageScheduleId, poolWorkflowId } from '../../core/names.js';
import { SA_POOL } from '../../core/search-attributes.js';
import { DEFAULT_QEMU_IMAGE, defaultQemuImagesDir, loadQemuImage } from '../../drivers/qemu-image.js';
import { QemuDriver } from '../../drivers/qemu.js';
import { defaultQemuTemplateDir } from '../../packer/qemu-build.js';
import { RegistryClient } from '../../registry/client.js';
import { pushQemuImage, QEMU_ANNOTATIONS } from '../../registry/qemu-artifact.js';
import { imageBuiltSignal, imageStatusQuery, poolStatusQuery, type ImageCatalogStatus, type PoolStatus } from '../../workflows/api.js';
import type { PoolWorkflow } from '../../workflows/pool.js';
import { hostImageCache } from '../../workers/host-worker.js';
import { BIN, cleanEnv } from '../cli/ekiden-process.js';
import { createHarness, qemuSkipReason, REPO, waitUntil, type Harness } from '../support/harness.js';
import { registryMissing, startRegistry, type TestRegistry } from '../support/registry.js';
import { recordFixture } from '../support/fixtures.js';

const IMAGES_DIR = process.env.EKIDEN_QEMU_IMAGES_DIR || defaultQemuImagesDir();
const onPath = (bin: string) => (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, bin)));
const skip = (await qemuSkipReason()) ?? (onPath('packer') ? undefined : 'packer not installed (apt-get install packer)') ?? (registryMissing() || undefined);

describe.skipIf(skip)(`images end to end${skip ? ` — skipped: ${skip}` : ''}`, { timeout: 900_000 }, () => {
  let h: Harness;
  let registry: TestRegistry;
  let pool: WorkflowHandle<typeof PoolWorkflow> | undefined;
  let fleetFile: string;
  let work: string;
  const image = `e2e-${randomBytes(3).toString('hex')}`;
  const marker = randomBytes(8).toString('hex');
  const label = `lbl-${image}`;
  const env = () => cleanEnv({ EKIDEN_REGISTRY_PASSWORD: registry.password });
  const ekiden = (args: string[]) => execa(process.execPath, [BIN, ...args, '--config', fleetFile], { reject: false, env: env(), extendEnv: false, cwd: work });
  const catalog = () => h.client.workflow.getHandle(imageCatalogWorkflowId(image)).query(imageStatusQuery);
  const poolStatus = () => pool!.query(poolStatusQuery);
  let baseDigest = '';

  beforeAll(async () => {
    registry = await startRegistry();
    h = await createHarness('images-e2e', { driver: 'qemu' });
    work = mkdtempSync(join(tmpdir(), 'ekiden-images-e2e-'));
    const dataDir = join(h.dir, 'host');
    const endpoint = { url: registry.url, caFile: registry.caFile, username: registry.username, password: registry.password, credentialSource: 'registry.passwordEnv EKIDEN_REGISTRY_PASSWORD' };
    const cache = hostImageCache(dataDir);
    const driver = new QemuDriver({ root: join(h.dir, 'vms'), imagesDir: IMAGES_DIR, maxRunning: 2, stopTimeoutMs: 10_000, oci: { cache, registry: endpoint } });
    await h.startWorker({ driver, fleet: { capacity: 2 }, images: { registry: endpoint, cache, qemuImagesDir: IMAGES_DIR } });

    fleetFile = join(work, 'fleet.yaml');
    writeFileSync(
      fleetFile,
      `temporal: { address: "${h.connection.options.address}", taskQueue: "${h.taskQueue}" }
registry: { url: "${registry.url}", username: ${registry.username}, passwordEnv: EKIDEN_REGISTRY_PASSWORD, caFile: "${registry.caFile}" }
images:
  - name: ${image}
    kind: qemu
    template: "${defaultQemuTemplateDir()}"
    variables: { inline: ["echo ${marker} > /etc/ekiden-build-id"] }
    base: { ref: "${DEFAULT_QEMU_IMAGE}" }
    repository: ekiden/${image}
    buildHosts: [${h.hostId}]
    schedule: { cron: "0 3 * * *", catchupWindow: 1h }
    promote: auto
    smokeTest: { timeout: 5m }
`,
    );
  });

  afterAll(async () => {
    await pool?.cancel().catch(() => {});
    await pool?.result().catch(() => {});
    await h?.client.schedule.getHandle(imageScheduleId(image)).delete().catch(() => {});
    await h?.client.workflow.getHandle(imageCatalogWorkflowId(image)).terminate().catch(() => {});
    await h?.close();
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('apply, then a build fired by its schedule is pushed, promoted and run by the pool', async () => {
    const applied = await ekiden(['image', 'apply']);
    expect(applied.exitCode, applied.stderr).toBe(0);
    expect(applied.stdout).toContain(`schedule ${imageScheduleId(image)} created`);

    // The build before: the base image itself, pushed and recorded as the first build.
    const base = (await loadQemuImage(IMAGES_DIR, DEFAULT_QEMU_IMAGE))!;
    const client = new RegistryClient({ url: registry.url, caFile: registry.caFile, username: registry.username, password: registry.password });
    try {
      baseDigest = (await pushQemuImage(client, `ekiden/${image}`, base.dir)).digest;
    } finally {
      client.close();
    }
    await h.client.workflow.getHandle(imageCatalogWorkflowId(image)).signal(imageBuiltSignal, {
      image,
      buildId: 'base',
      digest: baseDigest,
      ref: `${registry.host}/ekiden/${image}@${baseDigest}`,
      bytes: 0,
      runnerVersion: 'base',
      baseDigest,
      templateHash: 'none',
      builtAt: new Date().toISOString(),
      host: h.hostId,
      durationMs: 0,
    });
    await waitUntil(catalog, (s) => s.current === baseDigest, 30_000, 'the base is current');

    // The pool follows the image.
    pool = await h.client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
      workflowId: poolWorkflowId(image),
      taskQueue: h.taskQueue,
      args: [
        {
          config: {
            name: image,
            hosts: [h.hostId],
            image: `catalog:${image}`,
            labels: ['self-hosted', label],
            runnerGroupId: 1,
            runnerDir: 'actions-runner',
            credential: 'jit',
            size: 1,
            minIdle: 0,
            max: 2,
            timing: h.timing({ bootTimeoutMs: 180_000, heartbeatTimeoutMs: 10_000, hostCleanupTimeoutMs: 120_000 }),
            backoff: { initialMs: 2_000, maxMs: 10_000 },
          },
          tuning: resolvePoolTuning({ hostRetryMs: 1_000 }),
        },
      ],
      typedSearchAttributes: [{ key: SA_POOL, value: image }],
    });

    // The schedule fires the build now.
    const triggered = await ekiden(['image', 'schedule', 'trigger', image]);
    expect(triggered.exitCode, triggered.stderr).toBe(0);
    const built = await waitUntil<ImageCatalogStatus>(catalog, (s) => s.current !== undefined && s.current !== baseDigest, 600_000, 'the scheduled build promoted', 2_000);
    const build = built.builds.find((b) => b.digest === built.current)!;
    expect(build.buildId).toMatch(new RegExp(`^image-build/${image}/scheduled-`));
    expect(build.runnerVersion).toMatch(/^\d+\.\d+\.\d+$/);
    expect(build.baseDigest).toBe(base.manifest.digest ?? build.baseDigest);
    expect(build.ref).toBe(`${registry.host}/ekiden/${image}@${build.digest}`);
    expect(build.templateHash).toMatch(/^sha256:[0-9a-f]{64}$/);
    // The registry holds that manifest, annotated with what it contains.
    const reg = new RegistryClient({ url: registry.url, caFile: registry.caFile, username: registry.username, password: registry.password });
    try {
      const manifest = await reg.getManifest(`ekiden/${image}`, build.digest);
      expect(manifest.digest).toBe(build.digest);
      const annotations = (JSON.parse(manifest.bytes.toString('utf8')) as { annotations: Record<string, string> }).annotations;
      expect(annotations[QEMU_ANNOTATIONS.runnerVersion]).toBe(build.runnerVersion);
      expect(annotations[QEMU_ANNOTATIONS.baseDigest]).toBe(build.baseDigest);
      expect(annotations[QEMU_ANNOTATIONS.templateHash]).toBe(build.templateHash);
      expect(annotations[QEMU_ANNOTATIONS.builtAt]).toBe(build.builtAt);
    } finally {
      reg.close();
    }
    // Nothing of the build is left on the build host.
    const buildsDir = join(h.dir, 'host', 'image-builds');
    expect(existsSync(buildsDir) ? readdirSync(buildsDir) : []).toEqual([]);
    recordFixture('image-build', await h.client.workflow.getHandle(build.buildId).fetchHistory());

    // The pool's runner moves onto it; a job there sees what the provisioner wrote.
    await waitUntil<PoolStatus>(poolStatus, (s) => s.runners.some((r) => r.phase === 'idle' && r.imageDigest === build.digest), 300_000, 'an idle runner on the new build', 1_000);
    const job = h.emulator.queueJob({ repo: REPO, labels: ['self-hosted', label], steps: [{ name: 'marker', run: 'cat /etc/ekiden-build-id 2>/dev/null || echo no-marker' }] });
    const done = await h.emulator.waitForJob(job.id, (j) => j.status === 'completed', 180_000);
    expect(done.conclusion).toBe('success');
    expect(done.steps[0]?.log).toContain(marker);
    const rollout = (await catalog()).rollout;
    expect(rollout).toMatchObject({ digest: build.digest, state: 'done', hostsReady: [h.hostId], hostsFailed: [] });

    // `image list` says which hosts hold the build (the rollout prefetched it there) and which pools run on it.
    const usage = async () => {
      const listed = await ekiden(['image', 'list', image, '--json']);
      expect(listed.exitCode, listed.stderr).toBe(0);
      return (JSON.parse(listed.stdout) as Array<{ usage?: Record<string, { hosts: string[]; pools: string[] }> }>)[0]?.usage?.[build.digest];
    };
    const held = await waitUntil(usage, (u) => (u?.hosts.length ?? 0) > 0, 60_000, 'image list showing the host holding the build', 2_000);
    expect(held).toEqual({ hosts: [h.hostId], pools: [image] });
  });

  it('rollback moves the pool back onto the build before', async () => {
    const back = await ekiden(['image', 'rollback', image]);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(back.stdout).toContain(baseDigest);
    await waitUntil<PoolStatus>(poolStatus, (s) => s.image?.digest === baseDigest && s.runners.some((r) => r.phase === 'idle' && r.imageDigest === baseDigest), 300_000, 'an idle runner on the base again', 1_000);
    const job = h.emulator.queueJob({ repo: REPO, labels: ['self-hosted', label], steps: [{ name: 'marker', run: 'cat /etc/ekiden-build-id 2>/dev/null || echo no-marker' }] });
    const done = await h.emulator.waitForJob(job.id, (j) => j.status === 'completed', 180_000);
    expect(done.conclusion).toBe('success');
    expect(done.steps[0]?.log).toContain('no-marker');
    expect(done.steps[0]?.log).not.toContain(marker);
  });
});
