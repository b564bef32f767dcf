/**
 * ImageBuildWorkflow `image-build/<image>/<build>`: one build of an image, on its build host's
 * own task queue.
 *
 *   prepare (base image, template hash, build dir) → packer build → smoke test (boot once, the
 *   runner's version over SSH) → push (OCI artifact, by digest) → record in the image's catalog
 *
 * - Every step is safe to retry: Packer runs in a directory per attempt (an attempt first stops
 *   what an earlier one left running), a finished image is reused, and a push uploads only what
 *   the registry lacks and ends at the same digest.
 * - A failed build records its failure in the catalog (the last good image stays current) and
 *   promotes nothing; a cancelled one records nothing. Either way its build directory, with
 *   everything Packer or the smoke VM left, is removed on the host.
 * - `imageBuildStatus` answers which step runs; the Packer step and the bytes pushed are the
 *   running activity's heartbeat details (Web UI: pending activities).
 */
import { CancellationScope, isCancellation, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { ImageHostActivities, ImageSharedActivities, PreparedBuild } from '../activities/images.js';
import { ms } from '../core/durations.js';
import { failureMessage, FailureType } from '../core/failures.js';
import { hostTaskQueue } from '../core/names.js';
import { imageBuildStatusQuery, type ImageBuildInput, type ImageBuildRecord, type ImageBuildStatus } from './api.js';

const NON_RETRYABLE = [FailureType.InvalidInput, FailureType.ImageBuildFailed, FailureType.ImageNotFound, FailureType.RegistryAuth, FailureType.ImageCacheFull];

export async function ImageBuildWorkflow(input: ImageBuildInput): Promise<ImageBuildRecord> {
  const { spec } = input;
  const info = workflowInfo();
  const host = spec.buildHosts[0]!;
  const startedAt = Date.now();
  const status: ImageBuildStatus = { image: spec.name, buildId: info.workflowId, host, step: 'preparing', startedAt };
  setHandler(imageBuildStatusQuery, () => status);

  const queue = hostTaskQueue(host);
  const heartbeatTimeout = ms(input.heartbeatTimeoutMs ?? 60_000);
  // Waiting for the build host is part of a build: a host that is off for a while delays it.
  const onHost = proxyActivities<ImageHostActivities>({
    taskQueue: queue,
    scheduleToStartTimeout: '1 hour',
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout,
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
  });
  const packer = proxyActivities<ImageHostActivities>({
    taskQueue: queue,
    scheduleToStartTimeout: '1 hour',
    startToCloseTimeout: ms(spec.buildTimeoutMs + 60_000),
    heartbeatTimeout,
    retry: { initialInterval: '10s', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
  });
  const smoke = proxyActivities<ImageHostActivities>({
    taskQueue: queue,
    scheduleToStartTimeout: '1 hour',
    startToCloseTimeout: ms(spec.smokeTimeoutMs + 60_000),
    heartbeatTimeout,
    retry: { initialInterval: '10s', maximumAttempts: 2, nonRetryableErrorTypes: NON_RETRYABLE },
  });
  const transfer = proxyActivities<ImageHostActivities>({
    taskQueue: queue,
    scheduleToStartTimeout: '1 hour',
    startToCloseTimeout: '6 hours',
    heartbeatTimeout,
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 20, nonRetryableErrorTypes: NON_RETRYABLE },
  });
  const shared = proxyActivities<ImageSharedActivities>({
    startToCloseTimeout: '1 minute',
    retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 20 },
  });

  let prepared: PreparedBuild | undefined;
  try {
    prepared = await onHost.prepareImageBuild({ spec, workflowId: info.workflowId, runId: info.runId });
    status.step = 'building';
    const built = await packer.buildImage({ spec, prepared });
    status.step = 'smoke-test';
    const checked = await smoke.smokeTestImage({ imageDir: built.imageDir, prepared, timeoutMs: spec.smokeTimeoutMs });
    status.step = 'pushing';
    const builtAt = new Date(Date.now()).toISOString();
    const contents = { runnerVersion: checked.runnerVersion, baseDigest: prepared.baseDigest, templateHash: prepared.templateHash, builtAt };
    const pushed = await transfer.pushImage({
      imageDir: built.imageDir,
      registry: spec.registry,
      repository: spec.repository,
      annotations: annotationsOf(contents),
    });
    status.step = 'recording';
    const record: ImageBuildRecord = {
      image: spec.name,
      buildId: info.workflowId,
      digest: pushed.digest,
      ref: `${spec.registry}/${spec.repository}@${pushed.digest}`,
      bytes: pushed.bytes,
      ...contents,
      host,
      durationMs: Date.now() - startedAt,
    };
    await shared.recordImageBuild({ keep: spec.keep, promote: spec.promote, record });
    status.result = record;
    status.step = 'done';
    return record;
  } catch (err) {
    status.failure = failureMessage(err);
    if (isCancellation(err)) {
      status.step = 'cancelled';
    } else {
      status.step = 'failed';
      await CancellationScope.nonCancellable(() =>
        shared.recordImageBuildFailure({
          image: spec.name,
          keep: spec.keep,
          promote: spec.promote,
          failure: { buildId: info.workflowId, at: new Date(Date.now()).toISOString(), message: status.failure ?? 'failed' },
        }),
      );
    }
    throw err;
  } finally {
    const dir = prepared?.buildDir;
    if (dir) await CancellationScope.nonCancellable(() => onHost.removeImageBuild({ buildDir: dir }));
  }
}

/** The keys registry/qemu-artifact.ts documents (docs/images-oci.md), without importing it here. */
function annotationsOf(a: { runnerVersion: string; baseDigest: string; templateHash: string; builtAt: string }): Record<string, string> {
  return {
    'io.ekiden.image.runner-version': a.runnerVersion,
    'io.ekiden.image.base-digest': a.baseDigest,
    'io.ekiden.image.template-hash': a.templateHash,
    'io.ekiden.image.built-at': a.builtAt,
  };
}
