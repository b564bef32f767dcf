/**
 * Activities of image builds (ImageBuildWorkflow) and image transfers.
 *
 * On the build host's own task queue (`ekiden-host-<id>`):
 * - prepareImageBuild: the base image (a local `qemu:` image; its digest checked against the
 *   definition's when it gives one), the template's hash, and the build's directory
 *   `<dataDir>/image-builds/<build key>` (one per workflow run);
 * - buildImage: `packer build` in `attempt-<n>/` of that directory, one per activity attempt:
 *   an attempt first kills whatever an earlier attempt of the same build left running (a
 *   worker SIGKILLed mid-build leaves Packer and its QEMU behind) and removes its files; the
 *   finished image goes to `image/`, complete or not at all, so a retry after the image was
 *   made but before the workflow heard of it returns that image instead of building again.
 *   The Packer step is the heartbeat's detail (`{ packerStep }`): the Web UI's pending
 *   activity and `ekiden image build --wait` show it. Cancellation stops Packer (SIGINT, then
 *   SIGKILL) and removes its output;
 * - smokeTestImage: boots the new image once and reads the runner's version over SSH;
 * - pushImage: the image as an OCI artifact (registry/qemu-artifact.ts); every blob is
 *   HEAD-checked first and the manifest bytes are deterministic, so a retried push uploads only
 *   what is missing and ends at the same digest. Progress `{ bytesDone, bytesTotal }`;
 * - prefetchImage: pulls an image by digest into the host's content-addressed cache;
 * - removeImageBuild: kills anything still running under the build's directory and deletes it.
 *
 * On any worker with a client (the shared queue): recordImageBuild / recordImageBuildFailure
 * report to the image's catalog (ImageCatalogWorkflow `image/<name>`, signal-with-start).
 *
 * The registry password lives in the worker's memory (read from the env var or file the fleet
 * file names); it is never an activity argument, so it never reaches a workflow history.
 */
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, FailureType } from '../core/failures.js';
import { catalogImageName, imageCatalogWorkflowId } from '../core/names.js';
import { parseOciImageRef, pullOciImageIntoCache } from '../drivers/qemu-oci.js';
import { imageDigest, loadQemuImage, QEMU_IMAGE_PREFIX } from '../drivers/qemu-image.js';
import { ImageCacheFullError, type ImageCache } from '../host/image-cache.js';
import { PackerError, processesMentioning, templateHash } from '../packer/packer.js';
import { buildQemuRunnerImage } from '../packer/qemu-build.js';
import { smokeTestQemuImage } from '../packer/smoke.js';
import { RegistryClient, type RegistryEndpoint } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import { pushQemuImage } from '../registry/qemu-artifact.js';
import type { HostImages, ImageBuildFailure, ImageBuildRecord, ImageBuildSpec, ImageCatalogInput, ImageCatalogStatus, PoolImage } from '../workflows/api.js';
import type { ImageCatalogWorkflow } from '../workflows/image-catalog.js';
import { imageBuildFailedSignal, imageBuiltSignal, imageStatusQuery, poolStatusQuery } from '../workflows/api.js';

export interface ImageHostDeps {
  hostId: string;
  /** Builds go under `<dataDir>/image-builds`. */
  dataDir: string;
  /** Where `qemu:NAME` base refs are found (the QEMU driver's imagesDir). */
  qemuImagesDir: string;
  /** The registry this host pushes to and pulls from, credentials in memory. */
  registry?: RegistryEndpoint;
  /** The content-addressed image cache prefetches fill. */
  cache?: ImageCache;
  /** Read for `variablesFromEnv` at build time. */
  env: Record<string, string | undefined>;
  accel?: 'auto' | 'kvm' | 'tcg';
  /** How often a long step heartbeats (default 5 s). */
  heartbeatMs?: number;
  /** Digests of the images this host's VMs use (the QEMU driver's): never evicted or collected. */
  inUse?: () => Promise<Set<string>>;
}

/** The heartbeat details of buildImage and pushImage (read by `ekiden image build --wait`). */
export interface ImageProgressDetails {
  packerStep?: string;
  bytesDone?: number;
  bytesTotal?: number;
}

export interface PreparedBuild {
  buildDir: string;
  baseDir: string;
  baseDigest: string;
  templateHash: string;
}

/** A directory name for one build run: a hash of its workflow id and run id. */
export function buildKey(workflowId: string, runId: string): string {
  // Short: Packer's and QEMU's Unix sockets live under it (a path of at most 108 bytes).
  return createHash('sha256').update(`${workflowId}\0${runId}`).digest('hex').slice(0, 16);
}

function killAllMentioning(needle: string): number {
  const pids = processesMentioning(needle);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  return pids.length;
}

/** Heartbeats `details()` every `ms` while `fn` runs; `fn` gets the activity's cancellation signal. */
async function beating<T>(ms: number, details: () => ImageProgressDetails, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat(details());
  const timer = setInterval(() => ctx.heartbeat(details()), ms);
  try {
    return await fn(ctx.cancellationSignal);
  } finally {
    clearInterval(timer);
  }
}

/** A failed Packer run as the workflow sees it: broken templates and provisioners are final. */
function packerFailure(err: unknown): unknown {
  if (!(err instanceof PackerError)) return err;
  if (err.kind === 'cancelled') return err;
  const tail = err.lastLines.slice(-5).join(' | ');
  const message = `${err.message}${err.step ? ` (at "${err.step}")` : ''}${tail ? `: ${tail}` : ''}`;
  if (!err.retryable || err.kind === 'template' || err.kind === 'not-installed') return ApplicationFailure.nonRetryable(message, FailureType.ImageBuildFailed);
  return ApplicationFailure.retryable(message, FailureType.ImageBuildInterrupted);
}

/** A registry error as the workflow sees it: credentials and trust are final, outages are retried. */
export function registryFailure(err: unknown): unknown {
  if (err instanceof ImageCacheFullError) return ApplicationFailure.nonRetryable(err.message, FailureType.ImageCacheFull);
  if (!(err instanceof RegistryError)) return err;
  if (err.code === 'aborted') return err;
  if (err.code === 'unauthorized' || err.code === 'denied' || err.code === 'tls') return ApplicationFailure.nonRetryable(err.message, FailureType.RegistryAuth);
  if (err.code === 'not-found') return ApplicationFailure.nonRetryable(err.message, FailureType.ImageNotFound);
  if (err.retryable) return ApplicationFailure.retryable(err.message, FailureType.RegistryUnavailable);
  return ApplicationFailure.nonRetryable(err.message, FailureType.InvalidInput);
}

function registryOf(deps: ImageHostDeps, wanted: string): RegistryEndpoint {
  if (!deps.registry) {
    throw ApplicationFailure.nonRetryable(`host ${deps.hostId} has no registry configured; add registry: { url: https://${wanted} } to its fleet file`, FailureType.InvalidInput);
  }
  const host = new URL(deps.registry.url).host;
  if (host !== wanted) {
    throw ApplicationFailure.nonRetryable(`host ${deps.hostId} is configured for registry ${host}, the image wants ${wanted}`, FailureType.InvalidInput);
  }
  return deps.registry;
}

function listOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  if (typeof value === 'string') return value.split('\n').filter((l) => l.trim() !== '');
  return [];
}

export function createImageHostActivities(deps: ImageHostDeps) {
  const beat = deps.heartbeatMs ?? 5_000;
  const buildsDir = join(deps.dataDir, 'image-builds');

  return {
    async prepareImageBuild(args: { spec: ImageBuildSpec; workflowId: string; runId: string }): Promise<PreparedBuild> {
      const { spec } = args;
      if (spec.kind !== 'qemu') {
        throw ApplicationFailure.nonRetryable(`image ${spec.name}: ${spec.kind} images are built on a Mac build host with the tart-cli Packer plugin; host ${deps.hostId} builds qemu images`, FailureType.InvalidInput);
      }
      const ref = spec.base.ref;
      if (!ref || !ref.startsWith(QEMU_IMAGE_PREFIX)) {
        throw ApplicationFailure.nonRetryable(`image ${spec.name}: base.ref must name a local QEMU image (qemu:NAME) on build host ${deps.hostId}`, FailureType.InvalidInput);
      }
      const base = await loadQemuImage(deps.qemuImagesDir, ref);
      if (!base) throw ApplicationFailure.nonRetryable(`image ${spec.name}: base ${ref} is not in ${deps.qemuImagesDir} on host ${deps.hostId}`, FailureType.ImageNotFound);
      const baseDigest = await imageDigest(base);
      if (spec.base.digest && spec.base.digest !== baseDigest) {
        throw ApplicationFailure.nonRetryable(`image ${spec.name}: base ${ref} has digest ${baseDigest}, the definition pins ${spec.base.digest}`, FailureType.ImageNotFound);
      }
      const hash = await templateHash(spec.template).catch((err: unknown) => {
        throw ApplicationFailure.nonRetryable(`image ${spec.name}: cannot read the template ${spec.template}: ${errorMessage(err)}`, FailureType.ImageBuildFailed);
      });
      const buildDir = join(buildsDir, buildKey(args.workflowId, args.runId));
      await fs.mkdir(buildDir, { recursive: true });
      return { buildDir, baseDir: base.dir, baseDigest, templateHash: hash };
    },

    async buildImage(args: { spec: ImageBuildSpec; prepared: PreparedBuild }): Promise<{ imageDir: string; diskDigest: string; reused: boolean }> {
      const { spec, prepared } = args;
      const imageDir = join(prepared.buildDir, 'image');
      if (existsSync(join(imageDir, 'manifest.json'))) {
        const image = await loadQemuImage(prepared.buildDir, `${QEMU_IMAGE_PREFIX}image`);
        if (image) return { imageDir, diskDigest: await imageDigest(image), reused: true };
      }
      const attempt = Context.current().info.attempt;
      // What earlier attempts of this build left: their Packer and QEMU (if their worker died), their files.
      const killed = killAllMentioning(join(prepared.buildDir, 'attempt-'));
      if (killed > 0) log.warn('stopped processes an earlier attempt of this build left running', { image: spec.name, killed });
      for (const entry of await fs.readdir(prepared.buildDir)) {
        if (entry.startsWith('attempt-') || entry.startsWith('image.')) await fs.rm(join(prepared.buildDir, entry), { recursive: true, force: true });
      }
      const workDir = join(prepared.buildDir, `attempt-${attempt}`);
      const variables: Record<string, string | number | boolean | string[]> = { ...spec.variables };
      for (const [name, envName] of Object.entries(spec.variablesFromEnv)) {
        const value = deps.env[envName];
        if (value === undefined || value === '') {
          throw ApplicationFailure.nonRetryable(`image ${spec.name}: variable ${name} reads the environment variable ${envName}, which is empty on host ${deps.hostId}`, FailureType.InvalidInput);
        }
        variables[name] = value;
      }
      const inline = listOf(variables['inline']);
      const scripts = listOf(variables['scripts']);
      delete variables['inline'];
      delete variables['scripts'];
      const progress: ImageProgressDetails = {};
      try {
        const result = await beating(beat, () => progress, (signal) =>
          buildQemuRunnerImage({
            baseImageDir: prepared.baseDir,
            destDir: imageDir,
            buildDir: workDir,
            template: spec.template,
            variables,
            inline,
            scripts,
            ...(deps.accel && deps.accel !== 'auto' ? { accelerator: deps.accel } : {}),
            metadata: { name: spec.name, baseRef: spec.base.ref },
            signal,
            timeoutMs: spec.buildTimeoutMs,
            onStep: (s) => {
              progress.packerStep = s.step;
              log.info('packer step', { image: spec.name, step: s.step, index: s.index });
            },
            onLine: (line) => log.debug('packer', { image: spec.name, line }),
          }),
        );
        return { imageDir, diskDigest: result.image.digest, reused: false };
      } catch (err) {
        throw packerFailure(err);
      } finally {
        await fs.rm(workDir, { recursive: true, force: true });
      }
    },

    async smokeTestImage(args: { imageDir: string; prepared: PreparedBuild; timeoutMs: number }): Promise<{ runnerVersion: string; bootMs: number }> {
      const dataDir = join(args.prepared.buildDir, `smoke-${Context.current().info.attempt}`);
      killAllMentioning(join(args.prepared.buildDir, 'smoke-'));
      try {
        const r = await beating(beat, () => ({}), (signal) =>
          smokeTestQemuImage({ imageDir: args.imageDir, dataDir, signal, timeoutMs: args.timeoutMs, ...(deps.accel ? { accel: deps.accel } : {}) }),
        );
        if (!r.runnerVersion) throw ApplicationFailure.nonRetryable('the image booted but reports no runner version', FailureType.ImageBuildFailed);
        return { runnerVersion: r.runnerVersion, bootMs: r.bootMs };
      } catch (err) {
        if (err instanceof ApplicationFailure) throw err;
        if (Context.current().cancellationSignal.aborted) throw err;
        throw ApplicationFailure.retryable(`smoke test: ${errorMessage(err)}`, FailureType.ImageBuildInterrupted);
      } finally {
        killAllMentioning(dataDir);
        await fs.rm(dataDir, { recursive: true, force: true });
      }
    },

    async pushImage(args: { imageDir: string; registry: string; repository: string; annotations: Record<string, string> }): Promise<{ digest: string; bytes: number; uploaded: number }> {
      const client = new RegistryClient(registryOf(deps, args.registry));
      const progress: ImageProgressDetails = {};
      try {
        const r = await beating(beat, () => progress, (signal) =>
          pushQemuImage(client, args.repository, args.imageDir, {
            annotations: args.annotations,
            // Tagged with its own digest: the registry lists tags, never untagged manifests (retention, pruneRegistry).
            tagWithDigest: true,
            signal,
            onProgress: (p) => {
              if (p.phase !== 'push') return;
              progress.bytesDone = p.transferred;
            },
          }),
        );
        log.info('image pushed', { repository: args.repository, digest: r.digest, bytes: r.size, uploaded: r.uploaded });
        return { digest: r.digest, bytes: r.size, uploaded: r.uploaded };
      } catch (err) {
        throw registryFailure(err);
      } finally {
        client.close();
      }
    },

    async prefetchImage(args: { registry: string; repository: string; digest: string; referenced: string[]; inUse: string[] }): Promise<{ dir: string; fetched: boolean }> {
      if (!deps.cache) throw ApplicationFailure.nonRetryable(`host ${deps.hostId} has no image cache configured`, FailureType.InvalidInput);
      const cache = deps.cache;
      const client = new RegistryClient(registryOf(deps, args.registry));
      const inUse = await deps.inUse?.();
      const progress: ImageProgressDetails = {};
      try {
        const r = await beating(beat, () => progress, (signal) =>
          pullOciImageIntoCache({
            client,
            cache,
            repository: args.repository,
            digest: args.digest,
            referenced: new Set(args.referenced),
            inUse: new Set([...args.inUse, ...(inUse ?? [])]),
            signal,
            onProgress: (p) => {
              progress.bytesTotal = p.bytesTotal;
              progress.bytesDone = p.bytesDone;
            },
          }),
        );
        return { dir: r.dir, fetched: r.fetched };
      } catch (err) {
        throw registryFailure(err);
      } finally {
        client.close();
      }
    },

    /**
     * One GC round of the host's image cache, then what it holds: entries no pool or catalog
     * references (`referenced`, from referencedImages) and unused past the retention are
     * deleted, never one a VM on this host uses. Without `referenced` (the fleet's references
     * could not all be read) nothing is deleted: the round only reports.
     */
    async collectImages(args: { referenced?: string[] }): Promise<Omit<HostImages, 'at' | 'deletedTotal'>> {
      const cache = deps.cache;
      if (!cache) return { held: [], bytes: 0, budgetBytes: 0, retentionMs: 0, deleted: [] };
      let deleted: string[] = [];
      if (args.referenced) {
        const r = await cache.gc({ referenced: new Set(args.referenced), inUse: (await deps.inUse?.()) ?? new Set() });
        deleted = r.deleted;
        if (deleted.length > 0) log.info('image cache: collected', { host: deps.hostId, deleted, freedBytes: r.freedBytes });
      }
      const held = (await cache.list()).map((e) => ({ digest: e.digest, bytes: e.bytes, lastUsedMs: e.lastUsedMs }));
      return {
        held,
        bytes: held.reduce((n, e) => n + e.bytes, 0),
        budgetBytes: cache.budgetBytes,
        retentionMs: cache.retentionMs,
        deleted,
        ...(args.referenced ? {} : { gcSkipped: 'the fleet\'s image references could not all be read; nothing deleted this round' }),
      };
    },

    async removeImageBuild(args: { buildDir: string }): Promise<void> {
      if (!args.buildDir.startsWith(buildsDir)) return;
      killAllMentioning(args.buildDir);
      await fs.rm(args.buildDir, { recursive: true, force: true });
    },
  };
}

export interface ImageSharedDeps {
  client: Client;
  /** The fleet's registry (registry retention deletes pruned builds there); absent: retention is off. */
  registry?: RegistryEndpoint;
}

/** What registry retention did for one image of the fleet. */
export interface RegistryPrune {
  image: string;
  repository?: string;
  /** Manifest digests deleted this round. */
  deleted: string[];
  /** Why nothing (or not everything) was deleted. */
  skipped?: string;
}

/** A tag Ekiden's push gave a build: its manifest's sha256 in hex (registry/qemu-artifact.ts). */
const BUILD_TAG = /^[0-9a-f]{64}$/;

export function createImageSharedActivities(deps: ImageSharedDeps) {
  const catalog = (image: string, keep: number, promote: 'auto' | 'manual'): { workflowId: string; taskQueue: string; args: [ImageCatalogInput] } => ({
    workflowId: imageCatalogWorkflowId(image),
    taskQueue: Context.current().info.taskQueue,
    args: [{ image, keep, promote }],
  });
  /** Open pools whose config follows `image` (`image: catalog:NAME`), with their hosts. */
  const followers = async (image: string): Promise<Array<{ workflowId: string; hosts: string[] }>> => {
    const found: Array<{ workflowId: string; hosts: string[] }> = [];
    for await (const info of deps.client.workflow.list({ query: `WorkflowType = 'PoolWorkflow' AND ExecutionStatus = 'Running'` })) {
      try {
        const s = await deps.client.workflow.getHandle(info.workflowId).query(poolStatusQuery);
        if (catalogImageName(s.config.image) === image) found.push({ workflowId: info.workflowId, hosts: [...s.config.hosts] });
      } catch (err) {
        log.warn('pool did not answer; it asks the catalog itself when it starts runners', { workflowId: info.workflowId, message: errorMessage(err) });
      }
    }
    return found;
  };
  return {
    /** The current build of `image`, or undefined when it has none (or no catalog yet). */
    async currentImage(args: { image: string }): Promise<PoolImage | undefined> {
      let s: ImageCatalogStatus;
      try {
        s = await deps.client.workflow.getHandle(imageCatalogWorkflowId(args.image)).query(imageStatusQuery);
      } catch (err) {
        if ((err as { name?: string }).name === 'WorkflowNotFoundError') return undefined;
        throw err;
      }
      const build = s.builds.find((b) => b.digest === s.current);
      return build ? { ref: build.ref, digest: build.digest } : undefined;
    },
    imageFollowers: (args: { image: string }) => followers(args.image),
    /**
     * Every image digest the fleet (the workflows on this activity's task queue) may still start a runner on: each catalog's current,
     * previous and kept builds, each pool's current build, its runners' builds and a config
     * image pinned by digest. `complete` is false when a catalog or pool did not answer (its
     * references are unknown, so hosts must not collect on this answer).
     */
    async referencedImages(): Promise<{ digests: string[]; complete: boolean }> {
      const digests = new Set<string>();
      let complete = true;
      const add = (d: string | undefined) => {
        if (d && /^sha256:[0-9a-f]{64}$/.test(d)) digests.add(d);
      };
      // This fleet's workflows: those on the shared queue this activity runs on.
      const queue = Context.current().info.taskQueue;
      const open = async (type: string, each: (workflowId: string) => Promise<void>) => {
        for await (const info of deps.client.workflow.list({ query: `WorkflowType = '${type}' AND ExecutionStatus = 'Running' AND TaskQueue = '${queue}'` })) {
          try {
            await each(info.workflowId);
          } catch (err) {
            complete = false;
            log.warn('workflow did not answer; its images count as unknown', { workflowId: info.workflowId, message: errorMessage(err) });
          }
        }
      };
      await open('ImageCatalogWorkflow', async (id) => {
        const s = await deps.client.workflow.getHandle(id).query(imageStatusQuery);
        add(s.current);
        s.previous.forEach(add);
        s.builds.forEach((b) => add(b.digest));
        add(s.rollout?.digest);
      });
      await open('PoolWorkflow', async (id) => {
        const s = await deps.client.workflow.getHandle(id).query(poolStatusQuery);
        add(s.image?.digest);
        s.runners.forEach((r) => add(r.imageDigest));
        add(/@(sha256:[0-9a-f]{64})$/.exec(s.config.image)?.[1]);
      });
      return { digests: [...digests].sort(), complete };
    },
    /**
     * Registry retention, once per fleet round: for each image catalog of this fleet, the builds
     * Ekiden pushed to the fleet's registry (tags that are their manifest's own sha256) that
     * nothing in `referenced` (every catalog's kept builds, every pool's and runner's image)
     * names any more are deleted from the registry. Other tags are never touched. An image with
     * a build running is left for the next round (its push may not be recorded yet). The
     * registry frees the blobs at its own garbage collection.
     */
    async pruneRegistry(args: { referenced: string[] }): Promise<RegistryPrune[]> {
      const registry = deps.registry;
      if (!registry) return [];
      const referenced = new Set(args.referenced);
      const registryHost = new URL(registry.url).host;
      const queue = Context.current().info.taskQueue;
      const out: RegistryPrune[] = [];
      const client = new RegistryClient(registry);
      try {
        for await (const info of deps.client.workflow.list({ query: `WorkflowType = 'ImageCatalogWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '${queue}'` })) {
          const status = await deps.client.workflow.getHandle(info.workflowId).query(imageStatusQuery);
          const result: RegistryPrune = { image: status.image, deleted: [] };
          out.push(result);
          const ref = status.builds[0]?.ref;
          if (!ref) {
            result.skipped = 'no build recorded yet';
            continue;
          }
          let host: string;
          let repository: string;
          try {
            ({ host, repository } = parseOciImageRef(ref));
          } catch (err) {
            result.skipped = errorMessage(err);
            continue;
          }
          result.repository = repository;
          if (host !== registryHost) {
            result.skipped = `its builds are in ${host}, the fleet's registry is ${registryHost}`;
            continue;
          }
          let building = false;
          for await (const build of deps.client.workflow.list({ query: `WorkflowType = 'ImageBuildWorkflow' AND ExecutionStatus = 'Running' AND WorkflowId STARTS_WITH 'image-build/${status.image}/'` })) {
            building = Boolean(build);
            break;
          }
          if (building) {
            result.skipped = 'a build is running; its push may not be recorded yet';
            continue;
          }
          try {
            for (const tag of await client.listTags(repository)) {
              const digest = `sha256:${tag}`;
              if (!BUILD_TAG.test(tag) || referenced.has(digest)) continue;
              // Ekiden's only when the tag names its own manifest (a tag left by an earlier delete names none).
              if ((await client.manifestExists(repository, tag)) !== digest) continue;
              await client.deleteManifest(repository, digest);
              result.deleted.push(digest);
              Context.current().heartbeat();
            }
          } catch (err) {
            const message = errorMessage(err);
            result.skipped = /\b405\b|unsupported/i.test(message) ? `the registry refuses deletes (${message}); enable them (distribution: storage.delete.enabled: true)` : message;
          }
          if (result.deleted.length > 0) log.info('registry: deleted pruned builds', { image: status.image, repository, deleted: result.deleted });
        }
      } finally {
        client.close();
      }
      return out;
    },
    async recordImageBuild(args: { keep: number; promote: 'auto' | 'manual'; record: ImageBuildRecord }): Promise<void> {
      await deps.client.workflow.signalWithStart<typeof ImageCatalogWorkflow, [ImageBuildRecord]>('ImageCatalogWorkflow', {
        ...catalog(args.record.image, args.keep, args.promote),
        signal: imageBuiltSignal,
        signalArgs: [args.record],
      });
    },
    async recordImageBuildFailure(args: { image: string; keep: number; promote: 'auto' | 'manual'; failure: ImageBuildFailure }): Promise<void> {
      await deps.client.workflow.signalWithStart<typeof ImageCatalogWorkflow, [ImageBuildFailure]>('ImageCatalogWorkflow', {
        ...catalog(args.image, args.keep, args.promote),
        signal: imageBuildFailedSignal,
        signalArgs: [args.failure],
      });
    },
  };
}

export type ImageHostActivities = ReturnType<typeof createImageHostActivities>;
export type ImageSharedActivities = ReturnType<typeof createImageSharedActivities>;
