/**
 * A pool that follows an image's catalog (`image: catalog:NAME`) on a real Temporal server,
 * fake-driver host: it starts runners on the current build only; a promotion moves its idle
 * runners onto the new build a few at a time while a busy runner finishes its job on the build
 * it started with; a rollback moves it back the same way. Builds are recorded in the catalog
 * the way a green ImageBuildWorkflow records them (its real run is test/images/image-build).
 */
import type { WorkflowHandle } from '@temporalio/client';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePoolTuning } from '../../core/defaults.js';
import { hostWorkflowId, imageCatalogWorkflowId, poolWorkflowId } from '../../core/names.js';
import { SA_POOL } from '../../core/search-attributes.js';
import { FakeDriver } from '../../drivers/fake.js';
import {
  hostStatusQuery,
  imageBuiltSignal,
  imageStatusQuery,
  poolStatusQuery,
  promoteImageUpdate,
  rollbackImageUpdate,
  type ImageBuildRecord,
  type PoolStatus,
} from '../../workflows/api.js';
import type { ImageCatalogWorkflow } from '../../workflows/image-catalog.js';
import type { PoolWorkflow } from '../../workflows/pool.js';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createImageSharedActivities } from '../../activities/images.js';
import { recordFixture } from '../support/fixtures.js';
import { createHarness, REPO, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

const skip = temporalSkipReason();
const REGISTRY = 'registry.test:5000';
const REPOSITORY = 'ekiden/linux-runner';

describe.skipIf(skip)('pools rolling onto promoted builds', () => {
  let h: Harness;
  let catalog: WorkflowHandle<typeof ImageCatalogWorkflow>;
  let pool: WorkflowHandle<typeof PoolWorkflow>;
  const image = `linux-${Date.now().toString(36)}`;
  const builds: ImageBuildRecord[] = [];

  beforeAll(async () => {
    h = await createHarness('rollout');
    // Two builds of the image: the harness's runner image and a copy that differs by a file.
    const dirA = join(h.dir, 'image');
    const dirB = join(h.dir, 'image-b');
    cpSync(dirA, dirB, { recursive: true });
    writeFileSync(join(dirB, 'provisioned-by-build-b'), 'b\n');
    const probe = new FakeDriver({ root: join(h.dir, 'probe'), images: { a: dirA, b: dirB } });
    const digests = [(await probe.pullImage({ image: 'a' })).digest, (await probe.pullImage({ image: 'b' })).digest];
    const refs = digests.map((d) => `${REGISTRY}/${REPOSITORY}@${d}`);
    const driver = new FakeDriver({ root: join(h.dir, 'vms'), images: { [refs[0]!]: dirA, [refs[1]!]: dirB } });
    await h.startWorker({ driver, fleet: { capacity: 4, labels: ['linux'] } });
    await waitUntil(() => h.client.workflow.getHandle(hostWorkflowId(h.hostId)).query(hostStatusQuery), (s) => s.state === 'up', 30_000, 'host up');

    digests.forEach((digest, i) =>
      builds.push({
        image,
        buildId: `image-build/${image}/b${i}`,
        digest,
        ref: refs[i]!,
        bytes: 1,
        runnerVersion: '2.336.0',
        baseDigest: digests[0]!,
        templateHash: digests[0]!,
        builtAt: new Date().toISOString(),
        host: h.hostId,
        durationMs: 1,
      }),
    );
    catalog = await h.client.workflow.start<typeof ImageCatalogWorkflow>('ImageCatalogWorkflow', {
      workflowId: imageCatalogWorkflowId(image),
      taskQueue: h.taskQueue,
      args: [{ image, keep: 3, promote: 'manual' }],
    });
    await catalog.signal(imageBuiltSignal, builds[0]!);
    await catalog.signal(imageBuiltSignal, builds[1]!);
  });

  afterAll(async () => {
    await pool?.cancel().catch(() => {});
    await pool?.result().catch(() => {});
    await catalog?.terminate().catch(() => {});
    await h?.close();
  });

  const status = () => pool.query(poolStatusQuery);
  const alive = (s: PoolStatus) => s.runners.filter((r) => r.phase !== 'cleaning');
  const allOn = (digest: string) => (s: PoolStatus) => alive(s).length === 2 && alive(s).every((r) => r.phase === 'idle' && r.imageDigest === digest);

  it('waits for a promoted build, then starts its runners on it', { timeout: 60_000 }, async () => {
    pool = await h.client.workflow.start<typeof PoolWorkflow>('PoolWorkflow', {
      workflowId: poolWorkflowId(image),
      taskQueue: h.taskQueue,
      args: [
        {
          config: {
            name: image,
            hosts: [h.hostId],
            image: `catalog:${image}`,
            labels: ['self-hosted', `lbl-${image}`],
            runnerGroupId: 1,
            runnerDir: 'actions-runner',
            credential: 'jit',
            size: 2,
            minIdle: 0,
            max: 3,
            timing: h.timing(),
            backoff: { initialMs: 1_000, maxMs: 4_000 },
          },
          tuning: resolvePoolTuning({ hostRetryMs: 500 }),
        },
      ],
      typedSearchAttributes: [{ key: SA_POOL, value: image }],
    });
    const blocked = await waitUntil(status, (s) => s.blocked !== undefined, 20_000, 'blocked without a build');
    expect(blocked.blocked).toBe(`image ${image} has no promoted build yet (ekiden image build ${image})`);
    expect(blocked.runners).toEqual([]);

    await catalog.executeUpdate(promoteImageUpdate, { args: [{ digest: builds[0]!.digest }] });
    const s = await waitUntil(status, allOn(builds[0]!.digest), 40_000, 'two idle runners on build 0');
    expect(s.image).toEqual({ ref: builds[0]!.ref, digest: builds[0]!.digest, staleRunners: 0 });
  });

  it('a promotion recycles idle runners and leaves the busy one to finish on its build', { timeout: 90_000 }, async () => {
    const job = h.emulator.queueJob({ repo: REPO, labels: ['self-hosted', `lbl-${image}`], steps: [{ name: 'work', run: 'sleep 8; echo done' }] });
    await h.emulator.waitForJob(job.id, (j) => j.status === 'in_progress', 30_000);
    const busy = await waitUntil(status, (s) => s.runners.some((r) => r.phase === 'busy'), 20_000, 'a busy runner');
    const busyId = busy.runners.find((r) => r.phase === 'busy')!.workflowId;

    const promoted = await catalog.executeUpdate(promoteImageUpdate, { args: [{ digest: builds[1]!.digest }] });
    expect(promoted.current).toBe(builds[1]!.digest);
    // The idle runner moves first; the busy one is still there, still on build 0, until its job ends.
    const moving = await waitUntil(status, (s) => s.image?.digest === builds[1]!.digest && s.runners.some((r) => r.imageDigest === builds[1]!.digest), 40_000, 'a runner on build 1');
    const stillBusy = moving.runners.find((r) => r.workflowId === busyId);
    if (stillBusy && stillBusy.phase !== 'cleaning') expect(stillBusy.imageDigest).toBe(builds[0]!.digest);
    const done = await h.emulator.waitForJob(job.id, (j) => j.status === 'completed', 60_000);
    expect(done.conclusion).toBe('success');
    expect(done.runner_name).toBe(busy.runners.find((r) => r.workflowId === busyId)!.runnerName);

    const s = await waitUntil(status, allOn(builds[1]!.digest), 60_000, 'every runner on build 1');
    expect(s.image?.staleRunners).toBe(0);
    // The catalog rolled it out: the host was asked to prefetch (this fake host has no registry, so it says why), then the pool was told.
    const c = await catalog.query(imageStatusQuery);
    expect(c.rollout).toMatchObject({ digest: builds[1]!.digest, state: 'done', pools: [poolWorkflowId(image)] });
    expect(c.rollout?.hostsFailed.map((f) => f.host)).toEqual([h.hostId]);
    expect(c.rollout?.hostsFailed[0]?.message).toMatch(/no registry configured/);
  });

  it('a rollback moves the pool back the same way', { timeout: 90_000 }, async () => {
    const back = await catalog.executeUpdate(rollbackImageUpdate, {});
    expect(back.current).toBe(builds[0]!.digest);
    const s = await waitUntil(status, allOn(builds[0]!.digest), 60_000, 'every runner back on build 0');
    expect(s.image?.digest).toBe(builds[0]!.digest);
    expect(s.consecutiveFailures).toBe(0);
    // This release's replay fixtures (test/workflows/histories.test.ts replays them).
    recordFixture('image-catalog', await catalog.fetchHistory());
    recordFixture('pool-catalog', await pool.fetchHistory());
  });

  it('the fleet\'s image references name every kept build and the pool\'s', { timeout: 60_000 }, async () => {
    const shared = createImageSharedActivities({ client: h.client });
    const refs = await (new MockActivityEnvironment({ taskQueue: h.taskQueue }, { logger: new DefaultLogger('WARN', () => {}) }).run(() => shared.referencedImages()) as ReturnType<typeof shared.referencedImages>);
    expect(refs.digests).toEqual(expect.arrayContaining(digestsOf(builds)));
    expect(refs.complete).toBe(true);
    // Another fleet's queue: none of this fleet's workflows, so none of its images.
    const other = await (new MockActivityEnvironment({ taskQueue: `${h.taskQueue}-other` }, { logger: new DefaultLogger('WARN', () => {}) }).run(() => shared.referencedImages()) as ReturnType<typeof shared.referencedImages>);
    expect(other.digests).toEqual([]);
  });
});

const digestsOf = (bs: ImageBuildRecord[]) => bs.map((b) => b.digest);
