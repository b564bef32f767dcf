/**
 * A QEMU guest image directory (drivers/qemu-image.ts: manifest.json, the qcow2 disk, kernel,
 * initrd) as an OCI artifact, pushed and pulled with the registry client. Layout, media types
 * and annotations: docs/images-oci.md. Guarantees:
 * - the OCI manifest is a pure function of the image's bytes, the chunk size and the caller's
 *   annotations (sorted keys, no clock), so pushing the same directory twice gives the same
 *   digest, and the second push uploads nothing (every blob is HEAD-checked first);
 * - the disk travels in fixed-size chunks, one blob each, read from and written to disk as
 *   streams: no image is ever held in memory;
 * - a pull writes only inside `destDir`: every file is verified against its digest, the disk
 *   against each chunk's digest as it streams in (one hash pass; the chunks are named by the
 *   manifest, fetched by digest, so they bind every byte); the disk is assembled in
 *   `<disk>.partial` and renamed when it all matches, `manifest.json` comes last, so a
 *   directory that `loadQemuImage` accepts is a complete, verified image;
 * - a pull resumes: files already there and verified are not fetched again, chunks of the
 *   disk partial are re-hashed and kept when they match (a bad one cuts the partial back to
 *   its start), a chunk cut short resumes with a Range request;
 * - a manifest over the size limit, of another artifact type, or of an inconsistent shape is
 *   refused before any blob is fetched.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { loadQemuImage } from '../drivers/qemu-image.js';
import { OCI_MANIFEST, type RegistryClient } from './client.js';
import { checkDigest, commitFile, cutFile, digestOf, hashFileRange, isDigest, sha256 } from './digest.js';
import { RegistryError } from './errors.js';

export const QEMU_ARTIFACT_TYPE = 'application/vnd.ekiden.qemu.image.v1';
export const OCI_EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';
const EMPTY_CONFIG_BYTES = Buffer.from('{}');

export const QEMU_MEDIA_TYPES = {
  manifest: 'application/vnd.ekiden.qemu.image.manifest.v1+json',
  kernel: 'application/vnd.ekiden.qemu.kernel.v1',
  initrd: 'application/vnd.ekiden.qemu.initrd.v1',
  diskChunk: 'application/vnd.ekiden.qemu.disk.qcow2.chunk.v1',
} as const;

export const QEMU_ANNOTATIONS = {
  title: 'org.opencontainers.image.title',
  diskName: 'io.ekiden.image.disk.name',
  diskDigest: 'io.ekiden.image.disk.digest',
  diskSize: 'io.ekiden.image.disk.size',
  diskChunkBytes: 'io.ekiden.image.disk.chunk-bytes',
  chunkIndex: 'io.ekiden.image.disk.chunk.index',
  chunkOffset: 'io.ekiden.image.disk.chunk.offset',
  chunkSize: 'io.ekiden.image.disk.chunk.size',
  /** Caller-supplied, documented keys. */
  runnerVersion: 'io.ekiden.image.runner-version',
  baseDigest: 'io.ekiden.image.base-digest',
  templateHash: 'io.ekiden.image.template-hash',
  builtAt: 'io.ekiden.image.built-at',
} as const;

export const DEFAULT_DISK_CHUNK_BYTES = 256 * 1024 * 1024;
/** Largest manifest a pull accepts (a 50 GB disk in 256 MiB chunks is ~100 KiB). */
export const DEFAULT_MAX_QEMU_MANIFEST_BYTES = 1024 * 1024;
const MAX_CHUNK_BYTES = 16 * 1024 * 1024 * 1024;
const MAX_IMAGE_MANIFEST_JSON = 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ImageProgress {
  phase: 'hash' | 'push' | 'pull';
  /** Title of the layer being worked on. */
  layer: string;
  /** Bytes of the image hashed / on the registry / verified on disk so far. */
  done: number;
  total: number;
  /** Bytes moved over the network by this call so far. */
  transferred: number;
}

export interface PushQemuImageOptions {
  /** Tag to store the manifest under; without it the manifest is stored by digest only. */
  tag?: string;
  /** Without `tag`: tag the manifest with its own sha256 in hex (how Ekiden's builds are pushed, so retention can list them). */
  tagWithDigest?: boolean;
  /** Extra manifest annotations (`io.ekiden.image.*` keys, see QEMU_ANNOTATIONS and docs/images-oci.md). */
  annotations?: Record<string, string>;
  /** Size of the disk's chunks (default 256 MiB). Changing it changes every chunk blob. */
  chunkBytes?: number;
  /** Bytes per PATCH of a blob upload (client default when not given). */
  uploadChunkBytes?: number;
  onProgress?: (p: ImageProgress) => void;
  signal?: AbortSignal;
}

export interface PushQemuImageResult {
  /** Digest of the OCI manifest. */
  digest: string;
  /** Bytes of all layers. */
  size: number;
  layers: Descriptor[];
  /** Bytes uploaded by this push (0 when the registry had everything). */
  uploaded: number;
}

export interface PullQemuImageOptions {
  onProgress?: (p: ImageProgress) => void;
  signal?: AbortSignal;
  /** Refuse an image whose layers add up to more. */
  maxBytes?: number;
  maxManifestBytes?: number;
}

export interface PullQemuImageResult {
  digest: string;
  size: number;
  /** Bytes fetched by this pull. */
  downloaded: number;
  /** The manifest's annotations. */
  annotations: Record<string, string>;
  dir: string;
}

/** What a validated artifact manifest holds. */
export interface QemuArtifact {
  manifest: { kind: 'manifest' | 'kernel' | 'initrd'; title: string; layer: Descriptor }[];
  disk: { name: string; digest: string; size: number; chunkBytes: number; chunks: Descriptor[] };
  annotations: Record<string, string>;
}

const TITLE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ANNOTATION_KEY = /^[a-z0-9]+(?:[.-][a-z0-9]+)*(?:\.[a-z0-9][a-z0-9-]*)+$/;

function sorted(record: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(record).sort()) out[k] = record[k];
  return out;
}

function checkAnnotations(extra: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (!ANNOTATION_KEY.test(k)) throw new RegistryError('invalid', `annotation key "${k.slice(0, 80)}" is not a reverse-domain key such as ${QEMU_ANNOTATIONS.runnerVersion}`);
    if (k.startsWith('io.ekiden.image.disk.') || k === QEMU_ANNOTATIONS.title) throw new RegistryError('invalid', `annotation "${k}" is set by the push itself`);
    if (typeof v !== 'string' || v.length > 4096) throw new RegistryError('invalid', `annotation "${k}" must be a string of at most 4096 characters`);
    out[k] = v;
  }
  return out;
}

/** The manifest bytes for these layers (deterministic: fixed field order, sorted annotations). */
export function qemuManifestBytes(layers: Descriptor[], annotations: Record<string, string>): Buffer {
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: QEMU_ARTIFACT_TYPE,
    config: { mediaType: OCI_EMPTY_CONFIG, digest: sha256(EMPTY_CONFIG_BYTES), size: EMPTY_CONFIG_BYTES.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, ...(l.annotations ? { annotations: sorted(l.annotations) } : {}) })),
    annotations: sorted(annotations),
  };
  return Buffer.from(JSON.stringify(manifest));
}

function emit(opts: { onProgress?: (p: ImageProgress) => void }, p: ImageProgress): void {
  opts.onProgress?.(p);
}

export async function pushQemuImage(client: RegistryClient, repo: string, imageDir: string, opts: PushQemuImageOptions = {}): Promise<PushQemuImageResult> {
  const { signal } = opts;
  const dir = path.resolve(imageDir);
  let image;
  try {
    image = await loadQemuImage(dir, `qemu:${dir}`);
  } catch (err) {
    throw new RegistryError('invalid', `push image: ${(err as Error).message}`, { cause: err });
  }
  if (!image) throw new RegistryError('invalid', `push image: ${dir} is not a QEMU image directory (manifest.json, disk.qcow2, vmlinuz, initrd.img)`);
  const chunkBytes = Math.floor(opts.chunkBytes ?? DEFAULT_DISK_CHUNK_BYTES);
  if (!(chunkBytes > 0 && chunkBytes <= MAX_CHUNK_BYTES)) throw new RegistryError('invalid', `push image: chunkBytes must be between 1 and ${MAX_CHUNK_BYTES}`);
  const extra = checkAnnotations(opts.annotations);
  const manifestFile = path.join(image.dir, 'manifest.json');
  const manifestJson = await readSmall(manifestFile, MAX_IMAGE_MANIFEST_JSON);
  const [kernelSize, initrdSize, diskSize] = await Promise.all([image.kernel, image.initrd, image.disk].map((f) => statSize(f)));
  const total = manifestJson.length + kernelSize + initrdSize + diskSize;

  // Hash pass: each file, and the disk chunk by chunk plus whole.
  let hashed = 0;
  const hashProgress = (layer: string) => (n: number) => {
    hashed += n;
    emit(opts, { phase: 'hash', layer, done: hashed, total, transferred: 0 });
  };
  hashed += manifestJson.length;
  const hashWhole = async (file: string, size: number, layer: string) => {
    const h = createHash('sha256');
    await hashFileRange(file, 0, size, [h], signal, hashProgress(layer));
    return digestOf(h);
  };
  const kernelTitle = path.basename(image.kernel);
  const initrdTitle = path.basename(image.initrd);
  const diskName = path.basename(image.disk);
  const layers: Descriptor[] = [
    { mediaType: QEMU_MEDIA_TYPES.manifest, digest: sha256(manifestJson), size: manifestJson.length, annotations: { [QEMU_ANNOTATIONS.title]: 'manifest.json' } },
    { mediaType: QEMU_MEDIA_TYPES.kernel, digest: await hashWhole(image.kernel, kernelSize, kernelTitle), size: kernelSize, annotations: { [QEMU_ANNOTATIONS.title]: kernelTitle } },
    { mediaType: QEMU_MEDIA_TYPES.initrd, digest: await hashWhole(image.initrd, initrdSize, initrdTitle), size: initrdSize, annotations: { [QEMU_ANNOTATIONS.title]: initrdTitle } },
  ];
  const sources: Array<{ file: string; offset: number; length: number } | Buffer> = [manifestJson, { file: image.kernel, offset: 0, length: kernelSize }, { file: image.initrd, offset: 0, length: initrdSize }];
  const whole = createHash('sha256');
  for (let index = 0, offset = 0; offset < diskSize; index++, offset += chunkBytes) {
    const size = Math.min(chunkBytes, diskSize - offset);
    const title = `${diskName}.chunk-${String(index).padStart(5, '0')}`;
    const h = createHash('sha256');
    const read = await hashFileRange(image.disk, offset, size, [h, whole], signal, hashProgress(title));
    if (read !== size) throw new RegistryError('io', `push image: ${image.disk} changed while it was read`);
    layers.push({
      mediaType: QEMU_MEDIA_TYPES.diskChunk,
      digest: digestOf(h),
      size,
      annotations: { [QEMU_ANNOTATIONS.title]: title, [QEMU_ANNOTATIONS.chunkIndex]: String(index), [QEMU_ANNOTATIONS.chunkOffset]: String(offset), [QEMU_ANNOTATIONS.chunkSize]: String(size) },
    });
    sources.push({ file: image.disk, offset, length: size });
  }
  const diskDigest = digestOf(whole);
  const declared = image.manifest.digest;
  if (typeof declared === 'string' && declared && declared !== diskDigest) {
    throw new RegistryError('invalid', `push image: ${manifestFile} says the disk is ${declared} but ${image.disk} hashes to ${diskDigest}`);
  }
  const annotations = {
    ...extra,
    [QEMU_ANNOTATIONS.diskName]: diskName,
    [QEMU_ANNOTATIONS.diskDigest]: diskDigest,
    [QEMU_ANNOTATIONS.diskSize]: String(diskSize),
    [QEMU_ANNOTATIONS.diskChunkBytes]: String(chunkBytes),
  };
  const bytes = qemuManifestBytes(layers, annotations);

  // Upload pass.
  let done = 0;
  let uploaded = 0;
  await client.pushBlob(repo, EMPTY_CONFIG_BYTES, { digest: sha256(EMPTY_CONFIG_BYTES), signal });
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i];
    const title = layer.annotations?.[QEMU_ANNOTATIONS.title] ?? layer.digest;
    const r = await client.pushBlob(repo, sources[i], {
      digest: layer.digest,
      size: layer.size,
      chunkBytes: opts.uploadChunkBytes,
      signal,
      onProgress: (p) => emit(opts, { phase: 'push', layer: title, done: done + p.done, total, transferred: uploaded + p.transferred }),
    });
    done += layer.size;
    uploaded += r.uploaded;
  }
  const own = sha256(bytes);
  const digest = await client.putManifest(repo, opts.tag ?? (opts.tagWithDigest ? own.slice('sha256:'.length) : own), bytes, OCI_MANIFEST, { signal });
  return { digest, size: total, layers, uploaded };
}

function num(text: string | undefined, what: string): number {
  const n = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw new RegistryError('protocol', `image manifest: ${what} is ${text === undefined ? 'missing' : `"${text.slice(0, 40)}"`}, not a byte count`);
  return n;
}

function descriptor(raw: unknown, what: string): Descriptor {
  const d = raw as Partial<Descriptor> | null;
  if (!d || typeof d !== 'object' || typeof d.mediaType !== 'string' || typeof d.digest !== 'string' || typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new RegistryError('protocol', `image manifest: ${what} is not a descriptor (mediaType, digest, size)`);
  }
  if (!isDigest(d.digest)) throw new RegistryError('unsupported', `image manifest: ${what} has digest "${d.digest.slice(0, 80)}"; only sha256 is supported`);
  const annotations: Record<string, string> = {};
  if (d.annotations && typeof d.annotations === 'object') for (const [k, v] of Object.entries(d.annotations)) if (typeof v === 'string') annotations[k] = v;
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, annotations };
}

/** Validates an artifact manifest and returns what it holds, or throws ('unsupported' / 'protocol'). */
export function parseQemuManifest(bytes: Buffer): QemuArtifact {
  let m: { schemaVersion?: unknown; mediaType?: unknown; artifactType?: unknown; config?: unknown; layers?: unknown; annotations?: unknown };
  try {
    m = JSON.parse(bytes.toString()) as typeof m;
  } catch (err) {
    throw new RegistryError('protocol', 'image manifest: not JSON', { cause: err });
  }
  if (m.mediaType !== OCI_MANIFEST || m.schemaVersion !== 2) throw new RegistryError('unsupported', `image manifest: media type ${JSON.stringify(m.mediaType)} is not an OCI image manifest (${OCI_MANIFEST})`);
  if (m.artifactType !== QEMU_ARTIFACT_TYPE) throw new RegistryError('unsupported', `image manifest: artifact type ${JSON.stringify(m.artifactType)} is not an Ekiden QEMU image (${QEMU_ARTIFACT_TYPE})`);
  const config = descriptor(m.config, 'config');
  if (config.mediaType !== OCI_EMPTY_CONFIG || config.digest !== sha256(EMPTY_CONFIG_BYTES)) throw new RegistryError('unsupported', `image manifest: config is ${config.mediaType}, expected the empty config ${OCI_EMPTY_CONFIG}`);
  if (!Array.isArray(m.layers)) throw new RegistryError('protocol', 'image manifest: no layers');
  const annotations: Record<string, string> = {};
  if (m.annotations && typeof m.annotations === 'object') for (const [k, v] of Object.entries(m.annotations)) if (typeof v === 'string') annotations[k] = v;
  const files: QemuArtifact['manifest'] = [];
  const chunks: Descriptor[] = [];
  const kinds: Record<string, 'manifest' | 'kernel' | 'initrd'> = { [QEMU_MEDIA_TYPES.manifest]: 'manifest', [QEMU_MEDIA_TYPES.kernel]: 'kernel', [QEMU_MEDIA_TYPES.initrd]: 'initrd' };
  (m.layers as unknown[]).forEach((raw, i) => {
    const d = descriptor(raw, `layer ${i}`);
    if (d.mediaType === QEMU_MEDIA_TYPES.diskChunk) return void chunks.push(d);
    const kind = kinds[d.mediaType];
    if (!kind) throw new RegistryError('unsupported', `image manifest: layer ${i} has unknown media type ${d.mediaType}`);
    const title = d.annotations?.[QEMU_ANNOTATIONS.title] ?? '';
    if (!TITLE.test(title) || title.endsWith('.partial')) throw new RegistryError('protocol', `image manifest: layer ${i} (${kind}) has no usable file name (${QEMU_ANNOTATIONS.title} "${title.slice(0, 80)}")`);
    if (kind === 'manifest' && title !== 'manifest.json') throw new RegistryError('protocol', `image manifest: the image manifest layer must be titled manifest.json, not "${title}"`);
    if (files.some((f) => f.kind === kind)) throw new RegistryError('protocol', `image manifest: more than one ${kind} layer`);
    files.push({ kind, title, layer: d });
  });
  for (const kind of ['manifest', 'kernel', 'initrd'] as const) if (!files.some((f) => f.kind === kind)) throw new RegistryError('protocol', `image manifest: no ${kind} layer`);
  const name = annotations[QEMU_ANNOTATIONS.diskName] ?? '';
  if (!TITLE.test(name)) throw new RegistryError('protocol', `image manifest: ${QEMU_ANNOTATIONS.diskName} "${name.slice(0, 80)}" is not a file name`);
  const titles = new Set([...files.map((f) => f.title), name]);
  if (titles.size !== files.length + 1) throw new RegistryError('protocol', 'image manifest: two layers have the same file name');
  const digest = checkDigestAs(annotations[QEMU_ANNOTATIONS.diskDigest], QEMU_ANNOTATIONS.diskDigest);
  const size = num(annotations[QEMU_ANNOTATIONS.diskSize], QEMU_ANNOTATIONS.diskSize);
  const chunkBytes = num(annotations[QEMU_ANNOTATIONS.diskChunkBytes], QEMU_ANNOTATIONS.diskChunkBytes);
  if (chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) throw new RegistryError('protocol', `image manifest: chunk size ${chunkBytes} is out of range`);
  let offset = 0;
  chunks.forEach((c, i) => {
    const a = c.annotations ?? {};
    const index = num(a[QEMU_ANNOTATIONS.chunkIndex], `chunk ${i} index`);
    const off = num(a[QEMU_ANNOTATIONS.chunkOffset], `chunk ${i} offset`);
    const sz = num(a[QEMU_ANNOTATIONS.chunkSize], `chunk ${i} size`);
    const last = i === chunks.length - 1;
    if (index !== i || off !== offset || sz !== c.size || c.size === 0 || c.size > chunkBytes || (!last && c.size !== chunkBytes)) {
      throw new RegistryError('protocol', `image manifest: disk chunk ${i} (index ${index}, offset ${off}, size ${c.size}) does not follow chunk ${i - 1} in ${chunkBytes}-byte chunks`);
    }
    offset += c.size;
  });
  if (offset !== size) throw new RegistryError('protocol', `image manifest: the disk chunks add up to ${offset} bytes, the manifest says ${size}`);
  return { manifest: files, disk: { name, digest, size, chunkBytes, chunks }, annotations };
}

function checkDigestAs(text: string | undefined, what: string): string {
  if (text === undefined) throw new RegistryError('protocol', `image manifest: ${what} is missing`);
  return checkDigest(text, what);
}

export async function pullQemuImage(client: RegistryClient, repo: string, digestOrTag: string, destDir: string, opts: PullQemuImageOptions = {}): Promise<PullQemuImageResult> {
  const { signal } = opts;
  const m = await client.getManifest(repo, digestOrTag, [OCI_MANIFEST], { signal, maxBytes: opts.maxManifestBytes ?? DEFAULT_MAX_QEMU_MANIFEST_BYTES });
  const art = parseQemuManifest(m.bytes);
  const total = art.manifest.reduce((n, f) => n + f.layer.size, 0) + art.disk.size;
  if (opts.maxBytes !== undefined && total > opts.maxBytes) throw new RegistryError('too-large', `pull image ${repo}@${m.digest}: ${total} bytes is over the ${opts.maxBytes}-byte limit`);
  const dir = path.resolve(destDir);
  try {
    await fs.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new RegistryError('io', `pull image: cannot create ${dir}: ${(err as Error).message}`, { cause: err });
  }
  let done = 0;
  let downloaded = 0;
  const progress = (layer: string, d: number, t: number) => emit(opts, { phase: 'pull', layer, done: done + d, total, transferred: downloaded + t });

  // Small files first; the image manifest under a temporary name until the disk is in place.
  const byKind = (k: 'manifest' | 'kernel' | 'initrd') => art.manifest.find((f) => f.kind === k)!;
  const final = path.join(dir, 'manifest.json');
  const staged = (await fileMatches(final, byKind('manifest').layer, signal)) ? final : path.join(dir, '.manifest.json.pulling');
  for (const kind of ['manifest', 'kernel', 'initrd'] as const) {
    const f = byKind(kind);
    const dest = kind === 'manifest' ? staged : path.join(dir, f.title);
    const r = await client.pullBlob(repo, f.layer.digest, dest, { size: f.layer.size, signal, onProgress: (p) => progress(f.title, p.done, p.transferred) });
    done += f.layer.size;
    downloaded += r.downloaded;
  }
  checkImageManifest(await readSmall(staged, MAX_IMAGE_MANIFEST_JSON), art, byKind('kernel').title, byKind('initrd').title);
  downloaded += await pullDisk(client, repo, art.disk, path.join(dir, art.disk.name), signal, (d, t) => progress(art.disk.name, d, t));
  done += art.disk.size;
  try {
    if (staged !== final) await fs.rename(staged, final);
  } catch (err) {
    throw new RegistryError('io', `pull image: moving manifest.json into place failed: ${(err as Error).message}`, { cause: err });
  }
  emit(opts, { phase: 'pull', layer: 'manifest.json', done: total, total, transferred: downloaded });
  return { digest: m.digest, size: total, downloaded, annotations: art.annotations, dir };
}

/** The image's manifest.json must name the files the artifact carries. */
function checkImageManifest(bytes: Buffer, art: QemuArtifact, kernel: string, initrd: string): void {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(bytes.toString()) as Record<string, unknown>;
  } catch (err) {
    throw new RegistryError('protocol', 'pull image: the image manifest.json is not JSON', { cause: err });
  }
  const expect: Array<[string, string, string]> = [['disk', art.disk.name, 'disk.qcow2'], ['kernel', kernel, 'vmlinuz'], ['initrd', initrd, 'initrd.img']];
  for (const [field, title, fallback] of expect) {
    const named = typeof parsed[field] === 'string' && parsed[field] ? (parsed[field] as string) : fallback;
    if (named !== title) throw new RegistryError('protocol', `pull image: manifest.json names the ${field} "${named}" but the artifact carries "${title}"`);
  }
  if (typeof parsed.digest === 'string' && parsed.digest && parsed.digest !== art.disk.digest) {
    throw new RegistryError('protocol', `pull image: manifest.json says the disk is ${parsed.digest}, the artifact says ${art.disk.digest}`);
  }
}

/** Fetches the disk chunk by chunk into `<dest>.partial`; resolves with the bytes fetched. */
async function pullDisk(client: RegistryClient, repo: string, disk: QemuArtifact['disk'], dest: string, signal: AbortSignal | undefined, progress: (done: number, transferred: number) => void): Promise<number> {
  const what = `pull image disk ${disk.name} (${disk.digest}) from ${repo}`;
  const existing = await statSize(dest).catch(() => undefined);
  if (existing === disk.size) {
    const h = createHash('sha256');
    await hashFileRange(dest, 0, existing, [h], signal);
    if (digestOf(h) === disk.digest) {
      progress(disk.size, 0);
      return 0;
    }
  }
  const partial = `${dest}.partial`;
  let have = (await statSize(partial).catch(() => undefined)) ?? 0;
  if (have > disk.size) have = await cutFile(partial, 0);
  let fetched = 0;
  for (const chunk of disk.chunks) {
    const offset = num(chunk.annotations?.[QEMU_ANNOTATIONS.chunkOffset], 'chunk offset');
    let ch = createHash('sha256');
    const prefix = Math.max(0, Math.min(have - offset, chunk.size));
    if (prefix > 0) {
      const read = await hashFileRange(partial, offset, prefix, [ch], signal);
      if (read !== prefix) throw new RegistryError('io', `${what}: ${partial} changed while it was read`);
    }
    if (prefix === chunk.size) {
      if (digestOf(ch.copy()) === chunk.digest) {
        progress(offset + prefix, fetched);
        continue;
      }
      // A complete chunk of an earlier pull that does not verify: fetch it again.
      have = await cutFile(partial, offset);
      ch = createHash('sha256');
    }
    const fromByte = have - offset > 0 ? have - offset : 0;
    const got = await client.fetchInto(repo, chunk.digest, partial, fromByte, [ch], () => [createHash('sha256')], {
      what: `${what}, chunk ${chunk.annotations?.[QEMU_ANNOTATIONS.chunkIndex]}`,
      exact: chunk.size,
      fileOffset: offset,
      signal,
      onProgress: (p) => progress(offset + p.done, fetched + p.transferred),
    });
    [ch] = got.hashes;
    fetched += got.received;
    const actual = digestOf(ch);
    if (got.start + got.received !== chunk.size || actual !== chunk.digest) {
      await cutFile(partial, offset);
      throw new RegistryError('digest-mismatch', `${what}: chunk ${chunk.annotations?.[QEMU_ANNOTATIONS.chunkIndex]} (${chunk.size} bytes) hashes to ${actual}, not ${chunk.digest}; the disk was kept only up to byte ${offset}`);
    }
    have = offset + chunk.size;
  }
  // Every byte of the disk was checked against its chunk's digest, and the chunks are named by
  // the manifest, itself fetched by digest: hashing the whole disk again would add a second
  // SHA-256 over the same bytes and prove nothing more. (The disk digest annotation identifies
  // the disk for a later re-verification of a complete file, below and in a resumed pull.)
  if (disk.size === 0) await fs.writeFile(partial, '');
  await commitFile(partial, dest, what);
  return fetched;
}

/** Is `file` there with exactly the descriptor's bytes? */
async function fileMatches(file: string, d: Descriptor, signal?: AbortSignal): Promise<boolean> {
  const size = await statSize(file).catch(() => undefined);
  if (size !== d.size) return false;
  const h = createHash('sha256');
  await hashFileRange(file, 0, size, [h], signal);
  return digestOf(h) === d.digest;
}

async function statSize(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch (err) {
    throw new RegistryError('io', `stat ${file} failed: ${(err as Error).message}`, { cause: err });
  }
}

async function readSmall(file: string, max: number): Promise<Buffer> {
  const size = await statSize(file);
  if (size > max) throw new RegistryError('too-large', `${file} is ${size} bytes, over the ${max}-byte limit`);
  try {
    return await fs.readFile(file);
  } catch (err) {
    throw new RegistryError('io', `reading ${file} failed: ${(err as Error).message}`, { cause: err });
  }
}

