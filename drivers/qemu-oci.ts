/**
 * QEMU images from an OCI registry, pinned by digest: the image refs that name them, and the
 * one way an image gets from the registry into the host's content-addressed cache
 * (host/image-cache.ts), shared by the QEMU driver's pullImage and the prefetchImage activity.
 *
 * Image ref: `HOST[:PORT]/REPO@sha256:<64 hex>` (a `:tag` before the `@` is allowed and
 * ignored; the digest decides). The digest is the OCI manifest's; the image lives in
 * `<cache>/sha256/<hex>/` as a complete, verified image directory (registry/qemu-artifact.ts).
 * A ref without a digest is refused: a tag can move, a runner must get the image the pool pinned.
 */
import { ImageCacheFullError, type ImageCache } from '../host/image-cache.js';
import type { RegistryClient, RegistryEndpoint } from '../registry/client.js';
import { RegistryError } from '../registry/errors.js';
import { pullQemuImage } from '../registry/qemu-artifact.js';
import { QEMU_IMAGE_PREFIX } from './qemu-image.js';
import { DriverError } from './types.js';

export interface OciImageRef {
  /** The ref as given. */
  ref: string;
  /** `host[:port]` of the registry. */
  host: string;
  repository: string;
  /** `sha256:<hex>` of the OCI manifest. */
  digest: string;
  /** A tag given next to the digest (informational only). */
  tag?: string;
}

const HOST = String.raw`(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?`;
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const OCI_REF = new RegExp(`^(${HOST})/(${COMPONENT}(?:/${COMPONENT})*)(?::([A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$`);
const EXAMPLE = 'registry.example.com:5000/ekiden/runner@sha256:<64 hex digits>';

/** Whether the ref names a registry image (anything that is not a `qemu:` ref is taken for one). */
export function isOciImageRef(ref: string): boolean {
  return !ref.startsWith(QEMU_IMAGE_PREFIX);
}

/** The parts of a registry image ref; a DriverError 'invalid' when it is malformed or not pinned by digest. */
export function parseOciImageRef(ref: string): OciImageRef {
  const m = OCI_REF.exec(ref);
  if (!m) {
    throw new DriverError('invalid', `image "${ref.slice(0, 200)}" is neither a QEMU image ref (qemu:NAME, qemu:/absolute/dir) nor a registry ref pinned by digest (${EXAMPLE})`);
  }
  const [, host, repository, tag, digest] = m;
  if (!/[.:[]/.test(host!) && host !== 'localhost') {
    throw new DriverError('invalid', `image "${ref}" does not start with a registry host; write HOST[:PORT]/REPO@sha256:<digest> (e.g. ${EXAMPLE})`);
  }
  if (!digest) {
    throw new DriverError(
      'invalid',
      `image "${ref}" names ${tag ? `the tag "${tag}"` : 'no digest'}; registry images must be pinned by digest: use ${host}/${repository}@sha256:<digest> (the digest \`ekiden image\` or the push printed)`,
    );
  }
  return { ref, host: host!, repository: repository!, digest, ...(tag ? { tag } : {}) };
}

/** `host[:port]` as the URL parser normalises it for this scheme (default ports dropped, lower case). */
function normalHost(host: string, protocol: string): string {
  try {
    return new URL(`${protocol}//${host}`).host;
  } catch {
    return host.toLowerCase();
  }
}

/**
 * The endpoint for the ref: the configured registry, when it is the ref's host; a DriverError
 * 'invalid' naming the fix otherwise.
 */
export function endpointFor(ref: OciImageRef, registry: RegistryEndpoint | undefined, where = 'this host'): RegistryEndpoint {
  if (!registry) {
    throw new DriverError('invalid', `image ${ref.ref} is not cached on ${where} and no registry is configured to pull it from; add registry: { url: https://${ref.host} } to the fleet file`);
  }
  let url: URL;
  try {
    url = new URL(registry.url);
  } catch (err) {
    throw new DriverError('invalid', `registry URL "${registry.url}" is not a URL`, { cause: err });
  }
  if (normalHost(ref.host, url.protocol) !== url.host) {
    throw new DriverError('invalid', `image ${ref.ref} is on registry ${ref.host}, but ${where} is configured for registry ${url.host}; push the image there or point registry.url at ${ref.host}`);
  }
  return registry;
}

export interface OciPullProgress {
  /** Layer being fetched (manifest.json, vmlinuz, initrd.img, disk.qcow2). */
  layer: string;
  bytesDone: number;
  bytesTotal: number;
}

export interface PullIntoCacheArgs {
  client: RegistryClient;
  cache: ImageCache;
  repository: string;
  /** `sha256:<hex>` of the OCI manifest. */
  digest: string;
  /** Digests pools reference (never evicted to make room). */
  referenced: Set<string>;
  /** Digests VMs on this host use (never evicted). */
  inUse: Set<string>;
  signal?: AbortSignal;
  onProgress?: (p: OciPullProgress) => void;
}

/**
 * The image in the cache: at once when it is there (no registry request), else admitted by
 * the cache against its budget (ImageCacheFullError when it does not fit) and pulled into it,
 * one fill per digest across processes. Registry failures are RegistryErrors.
 */
export async function pullOciImageIntoCache(args: PullIntoCacheArgs): Promise<{ dir: string; fetched: boolean; bytes?: number }> {
  const { cache, client, repository, digest, signal } = args;
  if (await cache.has(digest)) {
    await cache.touch(digest);
    return { dir: cache.dir(digest), fetched: false };
  }
  const manifest = await client.getManifest(repository, digest, undefined, { signal });
  const need = manifestBytes(manifest.bytes);
  args.onProgress?.({ layer: '', bytesDone: 0, bytesTotal: need });
  const r = await cache.ensure(
    digest,
    need,
    async (tmp, fillSignal) => {
      await pullQemuImage(client, repository, digest, tmp, {
        signal: fillSignal ?? signal,
        onProgress: (p) => args.onProgress?.({ layer: p.layer, bytesDone: p.transferred, bytesTotal: need }),
      });
    },
    { referenced: args.referenced, inUse: args.inUse, signal },
  );
  return { dir: r.dir, fetched: r.fetched, bytes: need };
}

/** Bytes an artifact's layers add up to (what the cache must admit before pulling). */
export function manifestBytes(bytes: Buffer): number {
  let m: { layers?: Array<{ size?: number }> };
  try {
    m = JSON.parse(bytes.toString('utf8')) as { layers?: Array<{ size?: number }> };
  } catch (err) {
    throw new RegistryError('protocol', 'image manifest is not JSON', { cause: err });
  }
  return (m.layers ?? []).reduce((n, l) => n + (typeof l.size === 'number' && Number.isSafeInteger(l.size) && l.size > 0 ? l.size : 0), 0);
}

/**
 * A failure of a registry pull as a DriverError whose code activities/failures.ts maps to the
 * right failure type: refused credentials and untrusted certificates are 'auth' (final; the
 * message names the setting), a full cache is 'cache-full' (final; the cache's numbers), a
 * missing image is 'not-found', an unreachable registry, a 5xx or a transfer cut short is
 * 'unavailable' (retried with backoff), a request the registry refuses for good is 'invalid'.
 * Anything else passes through.
 */
export function ociPullError(image: string, err: unknown): unknown {
  if (err instanceof DriverError) return err;
  if (err instanceof ImageCacheFullError) {
    return new DriverError('cache-full', `image ${image} does not fit in this host's image cache: ${err.reason}`, { cause: err });
  }
  if (!(err instanceof RegistryError)) return err;
  const message = `image ${image}: ${err.message}`;
  switch (err.code) {
    case 'not-found':
      return new DriverError('not-found', message, { cause: err });
    case 'unauthorized':
    case 'denied':
    case 'tls':
      return new DriverError('auth', message, { cause: err });
    case 'invalid':
    case 'protocol':
    case 'unsupported':
    case 'too-large':
    case 'rejected':
      return new DriverError(err.retryable ? 'unavailable' : 'invalid', message, { cause: err });
    default:
      // unavailable, digest-mismatch (bytes spoiled on the way), io, aborted
      return new DriverError('unavailable', message, { cause: err });
  }
}
