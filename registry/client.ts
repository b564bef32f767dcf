/**
 * Ekiden's registry client: blobs, manifests and tags over the Docker / OCI distribution HTTP
 * API, against one endpoint (transport.ts), authenticated from the registry's challenges
 * (auth.ts). Guarantees:
 * - bytes are checked against their digests: a pushed manifest's `Docker-Content-Digest` must
 *   be the sha256 of the bytes sent; a manifest fetched by digest, and every pulled blob, is
 *   hashed while it streams and kept only when it matches ('digest-mismatch' otherwise, and
 *   nothing is left behind);
 * - blobs stream from and to disk, never whole in memory; a push is skipped when the registry
 *   already has the blob (HEAD), else uploaded with POST, sequential PATCH chunks
 *   (Content-Range) and a closing PUT `?digest=`;
 * - a pull streams into `<dest>.partial`, resumes it with `Range` (re-hashing what is already
 *   there), starts over when the registry ignores the range, and renames to `<dest>` only once
 *   verified;
 * - the AbortSignal stops any call; afterwards there is a resumable `.partial` or nothing;
 * - every failure is a RegistryError (errors.ts) whose message holds no secret, and so does
 *   every line given to `log`.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Authorizer } from './auth.js';
import { checkDigest, commitFile, cutFile, digestOf, hashFileRange, isDigest, sha256 } from './digest.js';
import { RegistryError, fromResponse, fromTransportError } from './errors.js';
import { Transport, drain, readBody, type Body, type RegistryEndpoint, type TransportOptions } from './transport.js';

export type { RegistryEndpoint } from './transport.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const ANY_MANIFEST = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

/** Default size of one PATCH of a blob upload. */
export const DEFAULT_UPLOAD_CHUNK_BYTES = 64 * 1024 * 1024;
/** Default limit on a fetched manifest. */
export const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface RegistryClientOptions extends TransportOptions {
  /** One line per notable step (skipped/uploaded/resumed blobs); secrets are never in it. */
  log?: (line: string) => void;
}

export interface BlobProgress {
  digest: string;
  size: number;
  /** Bytes of the blob in place so far (on the registry for a push, on disk for a pull). */
  done: number;
  /** Bytes moved over the network by this call so far. */
  transferred: number;
}

/** What to upload: bytes, or a range of a file (default: the whole file). */
export type BlobSource = Buffer | { file: string; offset?: number; length?: number };

export interface PushBlobOptions {
  /** Digest of the bytes; computed (one read) when not given. The registry checks it. */
  digest?: string;
  /** Expected size; a source of another size is refused. */
  size?: number;
  /** Bytes per PATCH (default 64 MiB). */
  chunkBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: BlobProgress) => void;
}

export interface PushBlobResult {
  digest: string;
  size: number;
  /** Bytes sent (0 when skipped). */
  uploaded: number;
  /** The registry had the blob already. */
  skipped: boolean;
}

export interface PullBlobOptions {
  /** Expected size (from the descriptor): more or fewer bytes are a mismatch. */
  size?: number;
  /** Refuse a blob bigger than this. */
  maxBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: BlobProgress) => void;
}

export interface PullBlobResult {
  digest: string;
  size: number;
  /** Bytes fetched by this call (0 when `dest` was there already and verified). */
  downloaded: number;
  /** Bytes of an earlier `.partial` that were kept. */
  resumedFrom: number;
}

export interface BlobStream {
  stream: IncomingMessage;
  /** Offset of the stream's first byte in the blob: the asked offset, or 0 when the registry sent it whole. */
  offset: number;
  /** Size of the whole blob when the registry said. */
  total?: number;
}

export interface Manifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

interface CallArgs {
  method: string;
  url: URL;
  scope: string;
  ok: number[];
  headers?: Record<string, string>;
  body?: Body;
  signal?: AbortSignal;
}

const REPO = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export function checkRepository(repo: string): string {
  if (repo.length > 255 || !REPO.test(repo)) throw new RegistryError('invalid', `"${repo.slice(0, 80)}" is not a repository name (lower-case a-z 0-9 . _ - separated by /)`);
  return repo;
}

export function checkReference(ref: string): string {
  if (!TAG.test(ref) && !isDigest(ref)) throw new RegistryError('invalid', `"${ref.slice(0, 80)}" is neither a tag nor a sha256 digest`);
  return ref;
}

function shortDigest(d: string): string {
  return d.slice(0, 19);
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function fileSize(file: string): Promise<number | undefined> {
  try {
    return (await fs.stat(file)).size;
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw new RegistryError('io', `stat ${file} failed: ${(err as Error).message}`, { cause: err });
  }
}

export class RegistryClient {
  readonly transport: Transport;
  private readonly auth: Authorizer;
  private readonly logLine?: (line: string) => void;

  constructor(endpoint: RegistryEndpoint, options: RegistryClientOptions = {}) {
    this.transport = new Transport(endpoint, options);
    this.auth = new Authorizer(this.transport, endpoint);
    this.logLine = options.log;
  }

  /** `host:port` of the registry. */
  get host(): string {
    return this.transport.where;
  }

  /** Ends the client's keep-alive connections. */
  close(): void {
    this.transport.close();
  }

  /** Does the repository hold the blob? */
  async blobExists(repo: string, digest: string, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    return this.guard(() => this.headBlob(repo, digest, `repository:${checkRepository(repo)}:pull`, opts.signal));
  }

  async pushBlob(repo: string, source: BlobSource, opts: PushBlobOptions = {}): Promise<PushBlobResult> {
    return this.guard(async () => {
      checkRepository(repo);
      const { signal } = opts;
      let size: number;
      let read: (start: number, n: number) => Body;
      if (Buffer.isBuffer(source)) {
        size = source.length;
        read = (start, n) => source.subarray(start, start + n);
      } else {
        const total = await fileSize(source.file);
        if (total === undefined) throw new RegistryError('io', `push blob: ${source.file} does not exist`);
        const offset = source.offset ?? 0;
        size = source.length ?? total - offset;
        if (offset < 0 || size < 0 || offset + size > total) throw new RegistryError('invalid', `push blob: bytes ${offset}+${size} are outside ${source.file} (${total} bytes)`);
        read = (start, n) => () => createReadStream(source.file, { start: offset + start, end: offset + start + n - 1, highWaterMark: 1 << 20 });
      }
      if (opts.size !== undefined && opts.size !== size) throw new RegistryError('invalid', `push blob: the source is ${size} bytes, not the ${opts.size} announced`);
      let digest: string;
      if (opts.digest) digest = checkDigest(opts.digest);
      else if (Buffer.isBuffer(source)) digest = sha256(source);
      else {
        const h = createHash('sha256');
        await hashFileRange(source.file, source.offset ?? 0, size, [h], signal);
        digest = digestOf(h);
      }
      const scope = `repository:${repo}:pull,push`;
      const what = `push blob ${digest} to ${repo}`;
      const progress = (done: number, transferred: number) => opts.onProgress?.({ digest, size, done, transferred });
      if (await this.headBlob(repo, digest, scope, signal)) {
        this.log(`blob ${shortDigest(digest)} already in ${repo} (${size} bytes), skipped`);
        progress(size, 0);
        return { digest, size, uploaded: 0, skipped: true };
      }
      progress(0, 0);
      let res = await this.call(what, { method: 'POST', url: this.url(`/v2/${repo}/blobs/uploads/`), scope, ok: [202], headers: { 'content-length': '0' }, signal });
      let location = this.location(res, what, this.url(`/v2/${repo}/blobs/uploads/`));
      await drain(res);
      const chunk = Math.max(1, Math.floor(opts.chunkBytes ?? DEFAULT_UPLOAD_CHUNK_BYTES));
      let sent = 0;
      for (let pos = 0; pos < size; pos += chunk) {
        const n = Math.min(chunk, size - pos);
        const piece = read(pos, n);
        let current = 0;
        const body: Body = Buffer.isBuffer(piece)
          ? piece
          : () => {
              current = 0;
              const counter = new Transform({
                transform(data: Buffer, _enc, cb) {
                  current += data.length;
                  progress(sent + current, sent + current);
                  cb(null, data);
                },
              });
              return (piece() as Readable).on('error', (e) => counter.destroy(e)).pipe(counter);
            };
        res = await this.call(what, {
          method: 'PATCH',
          url: location,
          scope,
          ok: [202],
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(n), 'content-range': `${pos}-${pos + n - 1}` },
          body,
          signal,
        });
        location = this.location(res, what, location);
        const range = /^(?:bytes=)?0-(\d+)$/.exec(String(res.headers.range ?? ''));
        await drain(res);
        if (range && Number(range[1]) !== pos + n - 1) throw new RegistryError('protocol', `${what}: the registry holds bytes 0-${range[1]} of the upload after sending up to ${pos + n - 1}`);
        sent += n;
        progress(sent, sent);
      }
      const done = new URL(location);
      done.searchParams.set('digest', digest);
      res = await this.call(what, { method: 'PUT', url: done, scope, ok: [201], headers: { 'content-length': '0' }, signal });
      await drain(res);
      const echoed = res.headers['docker-content-digest'];
      if (typeof echoed === 'string' && echoed !== digest) throw new RegistryError('digest-mismatch', `${what}: the registry stored it as ${echoed}`);
      this.log(`blob ${shortDigest(digest)} uploaded to ${repo} (${size} bytes)`);
      return { digest, size, uploaded: sent, skipped: false };
    });
  }

  /**
   * A stream of the blob from `offset` (Range). The registry may answer with the whole blob
   * instead: then `offset` in the result is 0. The caller must consume or destroy the stream.
   */
  async openBlob(repo: string, digest: string, opts: { offset?: number; signal?: AbortSignal } = {}): Promise<BlobStream> {
    return this.guard(async () => {
      checkRepository(repo);
      checkDigest(digest);
      const offset = opts.offset ?? 0;
      const what = `pull blob ${digest} from ${repo}`;
      const scope = `repository:${repo}:pull`;
      const url = this.url(`/v2/${repo}/blobs/${digest}`);
      let res = await this.call(what, { method: 'GET', url, scope, ok: [200, 206, 416], headers: offset > 0 ? { range: `bytes=${offset}-` } : {}, signal: opts.signal });
      if (res.statusCode === 416) {
        await drain(res);
        this.log(`blob ${shortDigest(digest)}: the registry cannot serve from byte ${offset}, fetching it whole`);
        res = await this.call(what, { method: 'GET', url, scope, ok: [200], signal: opts.signal });
      }
      if (res.statusCode === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
        if (!m || Number(m[1]) !== offset) {
          res.destroy();
          throw new RegistryError('protocol', `${what}: asked for bytes from ${offset}, got Content-Range "${String(res.headers['content-range'] ?? '')}"`);
        }
        return { stream: res, offset, total: m[3] === '*' ? undefined : Number(m[3]) };
      }
      const len = Number(res.headers['content-length']);
      return { stream: res, offset: 0, total: Number.isFinite(len) ? len : undefined };
    });
  }

  async pullBlob(repo: string, digest: string, dest: string, opts: PullBlobOptions = {}): Promise<PullBlobResult> {
    return this.guard(async () => {
      checkRepository(repo);
      checkDigest(digest);
      const { signal, size } = opts;
      const what = `pull blob ${digest} from ${repo}`;
      const partial = `${dest}.partial`;
      const limit = size ?? opts.maxBytes;
      if (size !== undefined && opts.maxBytes !== undefined && size > opts.maxBytes) throw new RegistryError('too-large', `${what}: ${size} bytes is over the ${opts.maxBytes}-byte limit`);
      const existing = await fileSize(dest);
      if (existing !== undefined && (size === undefined || existing === size)) {
        const h = createHash('sha256');
        await hashFileRange(dest, 0, existing, [h], signal);
        if (digestOf(h) === digest) {
          opts.onProgress?.({ digest, size: existing, done: existing, transferred: 0 });
          return { digest, size: existing, downloaded: 0, resumedFrom: existing };
        }
      }
      let have = (await fileSize(partial)) ?? 0;
      if (limit !== undefined && have > limit) have = await cutFile(partial, 0);
      const hash = createHash('sha256');
      if (have > 0) {
        const read = await hashFileRange(partial, 0, have, [hash], signal);
        if (read !== have) throw new RegistryError('io', `${what}: ${partial} changed while it was read`);
      }
      if (size !== undefined && have === size) {
        if (digestOf(hash.copy()) === digest) {
          await commitFile(partial, dest);
          opts.onProgress?.({ digest, size, done: size, transferred: 0 });
          return { digest, size, downloaded: 0, resumedFrom: have };
        }
        await cutFile(partial, 0);
        return this.pullBlob(repo, digest, dest, opts);
      }
      const resumedFrom = have;
      if (have > 0) this.log(`blob ${shortDigest(digest)}: resuming at byte ${have}`);
      const got = await this.fetchInto(repo, digest, partial, have, [hash], () => [createHash('sha256')], { what, limit: opts.maxBytes, exact: size, signal, onProgress: opts.onProgress });
      const total = got.start + got.received;
      const actual = digestOf(got.hashes[0]);
      if (actual !== digest || (size !== undefined && total !== size)) {
        await fs.rm(partial, { force: true });
        throw new RegistryError('digest-mismatch', `${what}: the ${total} bytes received hash to ${actual}; nothing was kept`);
      }
      await commitFile(partial, dest);
      return { digest, size: total, downloaded: got.received, resumedFrom: got.start === 0 ? 0 : resumedFrom };
    });
  }

  /**
   * Appends the blob from byte `have` to `file`, feeding every byte to `hashes` (which have
   * seen bytes [0, have) already). `fileOffset` is where the blob starts in `file` (default 0:
   * the file is the blob). When the registry sends the blob whole instead of the range, the
   * file is cut back to `fileOffset`, `restart()` gives the hashes to use from byte 0, and the
   * result's `start` is 0. On failure the file keeps what was written (resumable), except when
   * the registry sent more than `exact` / `limit` bytes: then the file is removed.
   */
  async fetchInto(
    repo: string,
    digest: string,
    file: string,
    have: number,
    hashes: Hash[],
    restart: () => Hash[],
    opts: { what?: string; limit?: number; exact?: number; signal?: AbortSignal; onProgress?: (p: BlobProgress) => void; fileOffset?: number } = {},
  ): Promise<{ start: number; received: number; hashes: Hash[] }> {
    const what = opts.what ?? `pull blob ${digest} from ${repo}`;
    const base = opts.fileOffset ?? 0;
    const blob = await this.openBlob(repo, digest, { offset: have, signal: opts.signal });
    let start = blob.offset;
    let hs = hashes;
    if (start !== have) {
      blob.stream.pause();
      await cutFile(file, base);
      hs = restart();
      start = 0;
    }
    const limit = opts.exact ?? opts.limit;
    const size = opts.exact ?? blob.total ?? 0;
    let received = 0;
    const counter = new Transform({
      transform(data: Buffer, _enc, cb) {
        received += data.length;
        if (limit !== undefined && start + received > limit) {
          return cb(
            opts.exact !== undefined
              ? new RegistryError('digest-mismatch', `${what}: the registry sent more than the ${opts.exact} bytes announced; nothing was kept`)
              : new RegistryError('too-large', `${what}: over the ${limit}-byte limit; nothing was kept`),
          );
        }
        for (const h of hs) h.update(data);
        opts.onProgress?.({ digest, size, done: start + received, transferred: received });
        cb(null, data);
      },
    });
    try {
      await pipeline(blob.stream, counter, createWriteStream(file, { flags: base + start > 0 ? 'a' : 'w' }), { signal: opts.signal });
    } catch (err) {
      if (err instanceof RegistryError && (err.code === 'digest-mismatch' || err.code === 'too-large')) {
        await cutFile(file, base);
        throw err;
      }
      const e = fromTransportError(err, what, this.host, opts.signal);
      if (e.code === 'unavailable') throw new RegistryError('unavailable', `${e.message}; the bytes received so far are kept in ${file} to resume`, { cause: err });
      throw e;
    }
    return { start, received, hashes: hs };
  }

  /** Stores a manifest under a tag or its digest; resolves with its digest (checked against the registry's). */
  async putManifest(repo: string, reference: string, bytes: Buffer, mediaType: string, opts: { signal?: AbortSignal } = {}): Promise<string> {
    return this.guard(async () => {
      checkRepository(repo);
      checkReference(reference);
      const digest = sha256(bytes);
      if (isDigest(reference) && reference !== digest) throw new RegistryError('invalid', `put manifest: the bytes hash to ${digest}, not ${reference}`);
      const what = `push manifest ${reference} to ${repo}`;
      const res = await this.call(what, {
        method: 'PUT',
        url: this.url(`/v2/${repo}/manifests/${reference}`),
        scope: `repository:${repo}:pull,push`,
        ok: [201],
        headers: { 'content-type': mediaType },
        body: bytes,
        signal: opts.signal,
      });
      await drain(res);
      const echoed = res.headers['docker-content-digest'];
      if (typeof echoed === 'string' && echoed !== digest) throw new RegistryError('digest-mismatch', `${what}: the registry stored it as ${echoed}, the bytes hash to ${digest}`);
      this.log(`manifest ${shortDigest(digest)} stored in ${repo} as ${reference}`);
      return digest;
    });
  }

  async getManifest(repo: string, reference: string, accept: string[] = ANY_MANIFEST, opts: { signal?: AbortSignal; maxBytes?: number } = {}): Promise<Manifest> {
    return this.guard(async () => {
      checkRepository(repo);
      checkReference(reference);
      const what = `pull manifest ${reference} from ${repo}`;
      const res = await this.call(what, {
        method: 'GET',
        url: this.url(`/v2/${repo}/manifests/${reference}`),
        scope: `repository:${repo}:pull`,
        ok: [200],
        headers: { accept: accept.join(', ') },
        signal: opts.signal,
      });
      const bytes = await readBody(res, opts.maxBytes ?? DEFAULT_MAX_MANIFEST_BYTES, what, opts.signal);
      const digest = sha256(bytes);
      if (isDigest(reference) && digest !== reference) throw new RegistryError('digest-mismatch', `${what}: the manifest received hashes to ${digest}`);
      const echoed = res.headers['docker-content-digest'];
      if (typeof echoed === 'string' && echoed !== digest) throw new RegistryError('digest-mismatch', `${what}: the registry calls it ${echoed}, the bytes hash to ${digest}`);
      let mediaType = String(res.headers['content-type'] ?? '').split(';')[0].trim();
      try {
        const field = (JSON.parse(bytes.toString()) as { mediaType?: unknown }).mediaType;
        if (typeof field === 'string' && field) mediaType = field;
      } catch (err) {
        throw new RegistryError('protocol', `${what}: the manifest is not JSON`, { cause: err });
      }
      return { digest, mediaType, bytes };
    });
  }

  /** The manifest's digest, or undefined when the reference is unknown. */
  async manifestExists(repo: string, reference: string, opts: { signal?: AbortSignal; accept?: string[] } = {}): Promise<string | undefined> {
    return this.guard(async () => {
      checkRepository(repo);
      checkReference(reference);
      const what = `look up manifest ${reference} in ${repo}`;
      const accept = opts.accept ?? ANY_MANIFEST;
      const res = await this.call(what, {
        method: 'HEAD',
        url: this.url(`/v2/${repo}/manifests/${reference}`),
        scope: `repository:${repo}:pull`,
        ok: [200, 404],
        headers: { accept: accept.join(', ') },
        signal: opts.signal,
      });
      await drain(res);
      if (res.statusCode === 404) return undefined;
      const echoed = res.headers['docker-content-digest'];
      if (typeof echoed === 'string' && isDigest(echoed)) return echoed;
      return (await this.getManifest(repo, reference, accept, opts)).digest;
    });
  }

  async deleteManifest(repo: string, digest: string, opts: { signal?: AbortSignal } = {}): Promise<void> {
    return this.guard(async () => {
      checkRepository(repo);
      checkDigest(digest);
      const res = await this.call(`delete manifest ${digest} from ${repo}`, {
        method: 'DELETE',
        url: this.url(`/v2/${repo}/manifests/${digest}`),
        scope: `repository:${repo}:delete`,
        ok: [202, 200],
        signal: opts.signal,
      });
      await drain(res);
      this.log(`manifest ${shortDigest(digest)} deleted from ${repo}`);
    });
  }

  /** Every tag of the repository (following pagination). */
  async listTags(repo: string, opts: { signal?: AbortSignal } = {}): Promise<string[]> {
    return this.guard(async () => {
      checkRepository(repo);
      const what = `list tags of ${repo}`;
      const tags: string[] = [];
      let url: URL | undefined = this.url(`/v2/${repo}/tags/list?n=1000`);
      for (let page = 0; url && page < 1000; page++) {
        const res = await this.call(what, { method: 'GET', url, scope: `repository:${repo}:pull`, ok: [200], signal: opts.signal });
        const body = await readBody(res, 16 * 1024 * 1024, what, opts.signal);
        let parsed: { tags?: unknown };
        try {
          parsed = JSON.parse(body.toString()) as { tags?: unknown };
        } catch (err) {
          throw new RegistryError('protocol', `${what}: the answer is not JSON`, { cause: err });
        }
        if (Array.isArray(parsed.tags)) for (const t of parsed.tags) if (typeof t === 'string') tags.push(t);
        const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(String(res.headers.link ?? ''));
        url = next ? new URL(next[1], url) : undefined;
      }
      return tags;
    });
  }

  private url(path: string): URL {
    return this.transport.resolve(path);
  }

  private async headBlob(repo: string, digest: string, scope: string, signal?: AbortSignal): Promise<boolean> {
    checkDigest(digest);
    const res = await this.call(`look up blob ${digest} in ${repo}`, { method: 'HEAD', url: this.url(`/v2/${repo}/blobs/${digest}`), scope, ok: [200, 404], signal });
    await drain(res);
    return res.statusCode === 200;
  }

  private location(res: IncomingMessage, what: string, requested: URL): URL {
    const loc = res.headers.location;
    if (!loc) {
      res.destroy();
      throw new RegistryError('protocol', `${what}: the registry answered ${res.statusCode} without a Location`);
    }
    const url = new URL(loc, requested);
    this.transport.checkScheme(url, what);
    return url;
  }

  /** One request with authentication (answering up to two challenges) and GET/HEAD redirects. */
  private async call(what: string, args: CallArgs): Promise<IncomingMessage> {
    let url = args.url;
    let redirects = 0;
    for (let attempt = 0; ; ) {
      const own = url.origin === this.transport.base.origin;
      const auth = own ? await this.auth.header(args.scope, args.signal) : undefined;
      const headers = { ...args.headers };
      if (auth) headers.authorization = auth;
      const res = await this.transport.send({ method: args.method, url, headers, body: args.body, signal: args.signal }, what);
      const status = res.statusCode ?? 0;
      if (status === 401 && own) {
        await drain(res);
        if (attempt >= 2) throw this.auth.refused(what, this.host, args.scope);
        await this.auth.challenged(res.headers['www-authenticate'], args.scope, auth, what, args.signal);
        attempt++;
        continue;
      }
      if ([301, 302, 303, 307, 308].includes(status) && (args.method === 'GET' || args.method === 'HEAD') && res.headers.location) {
        await drain(res);
        if (++redirects > 5) throw new RegistryError('protocol', `${what}: more than 5 redirects`);
        url = new URL(res.headers.location, url);
        this.transport.checkScheme(url, what);
        continue;
      }
      if (args.ok.includes(status)) return res;
      const body = args.method === 'HEAD' ? undefined : await readBody(res, 64 * 1024, what, args.signal).catch(() => undefined);
      throw fromResponse(status, body, what, this.host);
    }
  }


  private log(line: string): void {
    this.logLine?.(this.auth.scrub(line));
  }

  /** Runs an operation so that whatever it throws is a RegistryError without secrets. */
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const e = err instanceof RegistryError ? err : fromTransportError(err, 'registry request', this.host);
      const clean = this.auth.scrub(e.message);
      if (clean === e.message) throw e;
      throw new RegistryError(e.code, clean, { cause: e.cause, status: e.status, registryCodes: e.registryCodes, retryable: e.retryable });
    }
  }
}
