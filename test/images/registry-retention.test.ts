/**
 * Registry retention on the real registry (Debian's docker-registry, TLS + htpasswd): four
 * builds of an image pushed the way an ImageBuildWorkflow pushes them (tag = the manifest's
 * sha256), recorded in a catalog that keeps the current build and one other; the fleet round's
 * pruneRegistry deletes exactly the two it no longer keeps, leaves a tag Ekiden did not make,
 * and deletes nothing on a second round. A pool's reference alone keeps a build too.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImageSharedActivities, type RegistryPrune } from '../../activities/images.js';
import { imageCatalogWorkflowId } from '../../core/names.js';
import { RegistryClient, type RegistryEndpoint } from '../../registry/client.js';
import { pushQemuImage } from '../../registry/qemu-artifact.js';
import { imageBuiltSignal, imageStatusQuery, type ImageBuildRecord } from '../../workflows/api.js';
import type { ImageCatalogWorkflow } from '../../workflows/image-catalog.js';
import { createHarness, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';
import { makeImageDir, registryMissing, startRegistry, type TestRegistry } from '../support/registry.js';

const skip = temporalSkipReason() ?? (registryMissing() || undefined);
const REPOSITORY = 'ekiden/retention';

describe.skipIf(skip)('registry retention', () => {
  let h: Harness;
  let reg: TestRegistry;
  let endpoint: RegistryEndpoint;
  let client: RegistryClient;
  let work: string;
  let catalog: WorkflowHandle<typeof ImageCatalogWorkflow>;
  const image = `ret-${Date.now().toString(36)}`;
  const digests: string[] = [];
  let foreign: string;
  const env = () => new MockActivityEnvironment({ taskQueue: h.taskQueue }, { logger: new DefaultLogger('WARN', () => {}) });

  beforeAll(async () => {
    h = await createHarness('retention');
    await h.startWorker();
    reg = await startRegistry();
    endpoint = { url: reg.url, caFile: reg.caFile, username: reg.username, password: reg.password };
    client = new RegistryClient(endpoint);
    work = mkdtempSync(join(tmpdir(), 'ekiden-retention-'));
    for (let i = 0; i < 4; i++) {
      const dir = makeImageDir(join(work, `b${i}`), 64 * 1024 + i, `build-${i}`);
      digests.push((await pushQemuImage(client, REPOSITORY, dir, { tagWithDigest: true })).digest);
    }
    // Someone else's tag in the same repository: never Ekiden's to delete.
    foreign = (await pushQemuImage(client, REPOSITORY, makeImageDir(join(work, 'other'), 4096, 'other'), { tag: 'latest' })).digest;
    catalog = await h.client.workflow.start<typeof ImageCatalogWorkflow>('ImageCatalogWorkflow', {
      workflowId: imageCatalogWorkflowId(image),
      taskQueue: h.taskQueue,
      args: [{ image, keep: 1, promote: 'auto' }],
    });
    for (const [i, digest] of digests.entries()) {
      const record: ImageBuildRecord = {
        image,
        buildId: `image-build/${image}/b${i}`,
        digest,
        ref: `${reg.host}/${REPOSITORY}@${digest}`,
        bytes: 1,
        runnerVersion: '2.336.0',
        baseDigest: digests[0]!,
        templateHash: 'x',
        builtAt: new Date(Date.now() + i).toISOString(),
        host: h.hostId,
        durationMs: 1,
      };
      await catalog.signal(imageBuiltSignal, record);
    }
    await waitUntil(() => catalog.query(imageStatusQuery), (s) => s.current === digests[3] && s.builds.length === 2, 30_000, 'catalog keeps two builds');
  });
  afterAll(async () => {
    await catalog?.terminate().catch(() => {});
    client?.close();
    await reg?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
    await h?.close();
  });

  it('deletes the builds the catalog no longer keeps, and nothing else', async () => {
    const shared = createImageSharedActivities({ client: h.client, registry: endpoint });
    const refs = (await env().run(() => shared.referencedImages())) as { digests: string[]; complete: boolean };
    expect(refs.complete).toBe(true);
    expect(refs.digests).toEqual(expect.arrayContaining([digests[2], digests[3]]));
    // A pool still running on build 0 (the references say so): it stays too.
    const referenced = [...refs.digests, digests[0]!];
    const first = (await env().run(() => shared.pruneRegistry({ referenced }))) as RegistryPrune[];
    expect(first).toEqual([{ image, repository: REPOSITORY, deleted: [digests[1]] }]);
    const exists = (d: string) => client.manifestExists(REPOSITORY, d);
    expect(await exists(digests[1]!)).toBeUndefined();
    for (const d of [digests[0]!, digests[2]!, digests[3]!, foreign]) expect(await exists(d), d).toBe(d);
    expect(await client.manifestExists(REPOSITORY, 'latest')).toBe(foreign);

    // The pool moved on: build 0 goes at the next round; a third round finds nothing to do.
    const second = (await env().run(() => shared.pruneRegistry({ referenced: refs.digests }))) as RegistryPrune[];
    expect(second).toEqual([{ image, repository: REPOSITORY, deleted: [digests[0]] }]);
    const third = (await env().run(() => shared.pruneRegistry({ referenced: refs.digests }))) as RegistryPrune[];
    expect(third).toEqual([{ image, repository: REPOSITORY, deleted: [] }]);
    expect(await exists(digests[3]!)).toBe(digests[3]);
    expect(await exists(foreign)).toBe(foreign);

    // Without the fleet's registry (a control plane configured without one), retention is off.
    expect(await env().run(() => createImageSharedActivities({ client: h.client }).pruneRegistry({ referenced: [] }))).toEqual([]);
  });
});
