/**
 * TEST INFRASTRUCTURE — the OCI side of the tart double: a registry client that talks HTTP the
 * way Tart's Sources/tart/OCI/Registry.swift does, and Tart's VM image format
 * (Sources/tart/OCI/Manifest.swift, VMDirectory+OCI.swift, OCI/Layerizer/DiskV2.swift):
 *
 * - manifest `application/vnd.oci.image.manifest.v1+json`, encoded like Tart's
 *   Config.jsonEncoder() (Swift JSONEncoder, sorted keys, compact, `/` escaped as `\/`);
 *   annotations `org.cirruslabs.tart.uncompressed-disk-size` and `…upload-time` (ISO 8601,
 *   seconds); config descriptor `application/vnd.oci.image.config.v1+json` pointing at the stub
 *   `{"architecture","config":{"Labels":{"org.cirruslabs.tart.disk.format":…,--label…}},"os"}`;
 * - layers in order: `application/vnd.cirruslabs.tart.config.v1` (config.json re-encoded from
 *   VMConfig by a plain JSONEncoder: compact, VMConfig.encode(to:) key order, unknown keys
 *   dropped), one `…tart.disk.v2` per chunk of the disk (512 MiB uncompressed; the double-only
 *   TART_DOUBLE_CHUNK_BYTES sets a smaller size for tests), each chunk Apple-LZ4-framed
 *   (apple-lz4.ts) with `org.cirruslabs.tart.uncompressed-size` and
 *   `…uncompressed-content-digest` annotations, then `…tart.nvram.v1`; config and NVRAM layers
 *   carry `"annotations":{}` as Tart's initialiser always sets the dictionary;
 * - push: config, NVRAM and the stub are uploaded every time (Tart does not HEAD them); each
 *   disk layer is HEADed first and uploaded only when missing; uploads are monolithic
 *   (POST → PUT `?digest=` with the body) unless `--chunk-size` (PATCH…, last PUT);
 * - pull: GET the manifest with `Accept: <OCI manifest type>` only; blobs by GET, a disk layer
 *   that fails mid-way on a network error is resumed with `Range: bytes=N-` (206 required);
 *   like Tart, blob digests are not checked on pull; a resumed pull (disk.img already in the
 *   deterministic tmp dir) skips layers whose uncompressed-content digest matches the disk;
 * - auth: on 401 read WWW-Authenticate; Basic → credentials from TART_REGISTRY_USERNAME /
 *   TART_REGISTRY_PASSWORD (both set; TART_REGISTRY_HOSTNAME limits them to one host), Bearer →
 *   token from the realm with `scope`/`service`; the request is retried once, a second 401 goes
 *   to the caller, which fails with Tart's `UnexpectedHTTPStatusCode(when: …, code: 401, …)`;
 * - errors print as Swift describes them (`UnexpectedHTTPStatusCode(when: "pulling manifest",
 *   code: 404, details: "…")`, `LayerIsMissingUncompressedSizeAnnotation`, …); network failures
 *   as NSURLErrorDomain errors.
 *
 * Double-only (not in Tart): TLS trust is Node's roots plus the PEM in TART_DOUBLE_CA_FILE or
 * SSL_CERT_FILE (Tart uses the macOS trust store); ~/.docker/config.json and the Keychain are
 * never read.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { AppleLz4Decoder, Lz4FramingError, frameFileRange, framedSize } from './apple-lz4.js';

export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG_MEDIA_TYPE = 'application/vnd.oci.image.config.v1+json';
export const CONFIG_MEDIA_TYPE = 'application/vnd.cirruslabs.tart.config.v1';
export const DISK_V2_MEDIA_TYPE = 'application/vnd.cirruslabs.tart.disk.v2';
export const LEGACY_DISK_V1_MEDIA_TYPE = 'application/vnd.cirruslabs.tart.disk.v1';
export const NVRAM_MEDIA_TYPE = 'application/vnd.cirruslabs.tart.nvram.v1';
export const UNCOMPRESSED_DISK_SIZE = 'org.cirruslabs.tart.uncompressed-disk-size';
export const UPLOAD_TIME = 'org.cirruslabs.tart.upload-time';
export const DISK_FORMAT_LABEL = 'org.cirruslabs.tart.disk.format';
export const UNCOMPRESSED_SIZE = 'org.cirruslabs.tart.uncompressed-size';
export const UNCOMPRESSED_CONTENT_DIGEST = 'org.cirruslabs.tart.uncompressed-content-digest';
/** DiskV2.layerLimitBytes */
export const DEFAULT_CHUNK_BYTES = 512 * 1024 * 1024;

// ---------------------------------------------------------------- errors

/** A Tart RuntimeError (HasExitCode): printed as is. */
export class TartRuntimeError extends Error {
  constructor(
    message: string,
    readonly code = 1,
  ) {
    super(message);
  }
}

/** A URLError (NSURLErrorDomain): Tart retries these. Printed as `Error: <message>`. */
export class UrlError extends Error {
  constructor(
    message: string,
    /** localizedDescription, what Tart's retry messages show */
    readonly localized: string,
  ) {
    super(message);
  }
}

/** Swift's String(reflecting:) of a string. */
export function swiftQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c === 0) out += '\\0';
    else if (c < 0x20 || c === 0x7f) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

/** RegistryError.UnexpectedHTTPStatusCode as Swift prints it. */
function unexpectedStatus(when: string, code: number, details = ''): Error {
  return new Error(`UnexpectedHTTPStatusCode(when: ${swiftQuote(when)}, code: ${code}, details: ${swiftQuote(details)})`);
}

function authFailed(why: string, details = ''): Error {
  return new Error(`AuthFailed(why: ${swiftQuote(why)}, details: ${swiftQuote(details)})`);
}

/** Data.asTextPreview(limit: 1000) */
function preview(data: Buffer, limit = 1000): string {
  const text = data.toString('utf8');
  return text.length > limit ? `${text.slice(0, limit)}...` : text;
}

const TLS_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_SSL|ERR_TLS|EPROTO|HOSTNAME_MISMATCH|ERR_OSSL)/;

function urlError(err: unknown): Error {
  const code = String((err as NodeJS.ErrnoException)?.code ?? '');
  const ns = (n: number, text: string) => new UrlError(`Error Domain=NSURLErrorDomain Code=${n} ${swiftQuote(text)}`, text);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return ns(-1003, 'A server with the specified hostname could not be found.');
  if (code === 'ECONNREFUSED') return ns(-1004, 'Could not connect to the server.');
  if (TLS_CODES.test(code)) return ns(-1200, 'An SSL error has occurred and a secure connection to the server cannot be made.');
  if (code === 'ETIMEDOUT') return ns(-1001, 'The request timed out.');
  if (code === 'ECONNRESET' || code === 'EPIPE' || /socket hang up|aborted/i.test((err as Error)?.message ?? '')) return ns(-1005, 'The network connection was lost.');
  return ns(-1, 'unknown error');
}

// ---------------------------------------------------------------- JSON as Swift writes it

/** Swift JSONEncoder, compact; `sorted` = .sortedKeys. Keys keep insertion order otherwise. */
export function swiftCompactJson(value: unknown, sorted: boolean): string {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
      if (sorted) entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return Object.fromEntries(entries.map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return JSON.stringify(walk(value)).replace(/\//g, '\\/');
}

/** The config layer: VMConfig decoded and re-encoded by JSONEncoder() (VMDirectory+OCI.swift). */
export function tartConfigLayer(configJson: Buffer): { bytes: Buffer; os: string; arch: string; diskFormat: string } {
  const c = JSON.parse(configJson.toString('utf8')) as Record<string, unknown>;
  const os = typeof c.os === 'string' ? c.os : 'darwin';
  const arch = typeof c.arch === 'string' ? c.arch : 'arm64';
  const d = (c.display ?? {}) as Record<string, unknown>;
  const diskFormat = typeof c.diskFormat === 'string' ? c.diskFormat : 'raw';
  const out: Record<string, unknown> = { version: c.version, os, arch };
  if (os === 'darwin') {
    out.ecid = c.ecid;
    out.hardwareModel = c.hardwareModel;
  }
  Object.assign(out, {
    cpuCountMin: c.cpuCountMin,
    cpuCount: c.cpuCount,
    memorySizeMin: c.memorySizeMin,
    memorySize: c.memorySize,
    macAddress: c.macAddress,
    display: { width: d.width ?? 1024, height: d.height ?? 768, unit: d.unit },
    displayRefit: typeof c.displayRefit === 'boolean' ? c.displayRefit : undefined,
    diskFormat,
  });
  return { bytes: Buffer.from(swiftCompactJson(out, false)), os, arch, diskFormat };
}

export interface Layer {
  mediaType: string;
  size: number;
  digest: string;
  annotations?: Record<string, string>;
}

export interface TartManifest {
  schemaVersion: number;
  mediaType: string;
  config: { mediaType: string; size: number; digest: string };
  layers: Layer[];
  annotations?: Record<string, string>;
}

export function manifestJson(m: TartManifest): Buffer {
  return Buffer.from(swiftCompactJson(m, true));
}

/** Date.toISO(): `2023-11-28T12:18:38Z` */
function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** OCIManifest(fromJSON:) — the synthesized Decodable's required keys. */
export function decodeManifest(bytes: Buffer): TartManifest {
  let m: unknown;
  try {
    m = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Error('dataCorrupted(Swift.DecodingError.Context(codingPath: [], debugDescription: "The given data was not valid JSON.", underlyingError: nil))');
  }
  const missing = (key: string, path = '') =>
    new Error(`keyNotFound(CodingKeys(stringValue: ${swiftQuote(key)}, intValue: nil), Swift.DecodingError.Context(codingPath: [${path}], debugDescription: "No value associated with key CodingKeys(stringValue: \\"${key}\\", intValue: nil) (\\"${key}\\").", underlyingError: nil))`);
  const o = m as Record<string, unknown>;
  for (const k of ['schemaVersion', 'mediaType', 'config', 'layers']) if (o?.[k] === undefined) throw missing(k);
  for (const l of o.layers as Array<Record<string, unknown>>) for (const k of ['mediaType', 'size', 'digest']) if (l?.[k] === undefined) throw missing(k);
  return o as unknown as TartManifest;
}

// ---------------------------------------------------------------- the registry client

type Body = Buffer | { length: number; open: () => Readable };

interface Auth {
  header: string;
  expiresAt?: number;
}

function trustedCa(): string[] | undefined {
  const file = process.env.TART_DOUBLE_CA_FILE || process.env.SSL_CERT_FILE;
  if (!file) return undefined;
  return [...tls.rootCertificates, fs.readFileSync(file, 'utf8')];
}

function readAll(res: IncomingMessage, limit = Infinity): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    res.on('data', (d: Buffer) => {
      if (n <= limit) parts.push(d);
      n += d.length;
    });
    res.on('end', () => resolve(Buffer.concat(parts)));
    res.on('error', (e) => reject(urlError(e)));
    res.on('aborted', () => reject(urlError(new Error('aborted'))));
  });
}

function parseChallenge(raw: string): { scheme: string; kvs: Record<string, string> } {
  const m = /^\s*(\S+)\s*(.*)$/.exec(raw);
  const kvs: Record<string, string> = {};
  if (!m) return { scheme: '', kvs };
  for (const kv of m[2]!.matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) kvs[kv[1]!.toLowerCase()] = kv[2] ?? kv[3] ?? '';
  return { scheme: m[1]!, kvs };
}

export class Registry {
  readonly base: URL;
  private auth?: Auth;
  private readonly ca = trustedCa();
  private readonly agent: http.Agent;

  constructor(
    readonly host: string,
    readonly namespace: string,
    insecure: boolean,
  ) {
    this.base = new URL(`${insecure ? 'http' : 'https'}://${host}/v2/`);
    this.agent = insecure ? new http.Agent({ keepAlive: true }) : new https.Agent({ keepAlive: true, ca: this.ca });
  }

  close(): void {
    this.agent.destroy();
  }

  private endpoint(p: string): URL {
    return new URL(p, this.base);
  }

  private credentials(): [string, string] | undefined {
    const onlyFor = process.env.TART_REGISTRY_HOSTNAME;
    if (onlyFor !== undefined && onlyFor !== this.host) return undefined;
    const user = process.env.TART_REGISTRY_USERNAME;
    const password = process.env.TART_REGISTRY_PASSWORD;
    return user !== undefined && password !== undefined ? [user, password] : undefined;
  }

  private send(method: string, url: URL, headers: Record<string, string>, body: Body | undefined, withAuth: boolean): Promise<IncomingMessage> {
    const h: Record<string, string> = { ...headers, 'user-agent': 'Tart/double (Linux; tart-double)' };
    if (body !== undefined) h['content-length'] = String(Buffer.isBuffer(body) ? body.length : body.length);
    if (withAuth && this.auth && (this.auth.expiresAt === undefined || Date.now() < this.auth.expiresAt)) h.authorization = this.auth.header;
    const mod = url.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method, headers: h, agent: this.agent }, resolve);
      req.on('error', (e) => reject(urlError(e)));
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        const src = body.open();
        src.on('error', (e) => req.destroy(e));
        src.pipe(req);
      }
    });
  }

  /** Registry.channelRequest: one retry after answering a 401 challenge. */
  async request(method: string, url: URL, headers: Record<string, string> = {}, body?: Body, doAuth = true): Promise<IncomingMessage> {
    let res = await this.send(method, url, headers, body, doAuth);
    if (doAuth && res.statusCode === 401) {
      const challenge = res.headers['www-authenticate'];
      await readAll(res);
      await this.answer(typeof challenge === 'string' ? challenge : undefined);
      res = await this.send(method, url, headers, body, doAuth);
    }
    return res;
  }

  private async answer(raw: string | undefined): Promise<void> {
    if (raw === undefined) throw authFailed('got HTTP 401, but WWW-Authenticate header is missing');
    const { scheme, kvs } = parseChallenge(raw);
    const creds = this.credentials();
    if (scheme.toLowerCase() === 'basic') {
      if (creds) this.auth = { header: `Basic ${Buffer.from(`${creds[0]}:${creds[1]}`).toString('base64')}` };
      return;
    }
    if (scheme.toLowerCase() !== 'bearer') throw authFailed(`WWW-Authenticate header's authentication scheme "${scheme}" is unsupported, expected "Bearer" scheme`);
    const realm = kvs.realm;
    if (realm === undefined) throw authFailed('WWW-Authenticate header is missing a "realm" directive');
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw authFailed(`WWW-Authenticate header's realm directive "${realm}" doesn't look like URL`);
    }
    url.search = '';
    for (const k of ['scope', 'service']) if (kvs[k] !== undefined) url.searchParams.append(k, kvs[k]!);
    const headers: Record<string, string> = {};
    if (creds) headers.authorization = `Basic ${Buffer.from(`${creds[0]}:${creds[1]}`).toString('base64')}`;
    const res = await this.send('GET', url, headers, undefined, false);
    const data = await readAll(res);
    if (res.statusCode !== 200) throw authFailed(`received unexpected HTTP status code ${res.statusCode} while retrieving an authentication token`, preview(data));
    const t = JSON.parse(data.toString('utf8')) as { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    const token = t.token ?? t.access_token;
    if (token === undefined) throw new Error('keyNotFound(CodingKeys(stringValue: "token", intValue: nil), Swift.DecodingError.Context(codingPath: [], debugDescription: "Missing token or access_token. One must be present.", underlyingError: nil))');
    const issued = t.issued_at ? Date.parse(t.issued_at) || Date.now() : Date.now();
    this.auth = { header: `Bearer ${token}`, expiresAt: issued + (t.expires_in ?? 60) * 1000 };
  }

  async pushManifest(reference: string, bytes: Buffer): Promise<string> {
    const res = await this.request('PUT', this.endpoint(`${this.namespace}/manifests/${reference}`), { 'content-type': OCI_MANIFEST_MEDIA_TYPE }, bytes);
    const data = await readAll(res);
    if (res.statusCode !== 201) throw unexpectedStatus('pushing manifest', res.statusCode ?? 0, preview(data));
    return sha256(bytes);
  }

  async pullManifest(reference: string): Promise<{ manifest: TartManifest; bytes: Buffer }> {
    const res = await this.request('GET', this.endpoint(`${this.namespace}/manifests/${reference}`), { accept: OCI_MANIFEST_MEDIA_TYPE });
    const bytes = await readAll(res);
    if (res.statusCode !== 200) throw unexpectedStatus('pulling manifest', res.statusCode ?? 0, preview(bytes));
    return { manifest: decodeManifest(bytes), bytes };
  }

  private location(res: IncomingMessage): URL {
    const raw = res.headers.location;
    if (typeof raw !== 'string') throw new Error('MissingLocationHeader');
    try {
      return new URL(raw, this.base);
    } catch {
      throw new Error(`MalformedHeader(why: ${swiftQuote(`Location header contains invalid URL: "${raw}"`)})`);
    }
  }

  /** Registry.pushBlob: POST, then one PUT ?digest= with the body (or PATCHes when chunkBytes > 0). */
  async pushBlob(body: Body, digest: string, chunkBytes = 0): Promise<string> {
    const post = await this.request('POST', this.endpoint(`${this.namespace}/blobs/uploads/`), { 'content-length': '0' });
    const postData = await readAll(post);
    if (post.statusCode !== 202) throw unexpectedStatus('pushing blob (POST)', post.statusCode ?? 0, preview(postData));
    let location = this.location(post);
    if (chunkBytes === 0) {
      const url = new URL(location);
      url.searchParams.append('digest', digest);
      const res = await this.request('PUT', url, { 'content-type': 'application/octet-stream' }, body);
      const data = await readAll(res);
      if (res.statusCode !== 201) throw unexpectedStatus(`pushing blob (PUT) to ${location.href}`, res.statusCode ?? 0, preview(data));
      return digest;
    }
    const whole = Buffer.isBuffer(body) ? body : await readAllStream(body.open());
    const count = Math.max(1, Math.ceil(whole.length / chunkBytes));
    for (let i = 0, pos = 0; i < count; i++) {
      const chunk = whole.subarray(pos, pos + chunkBytes);
      const last = i === count - 1;
      const url = new URL(location);
      if (last) url.searchParams.append('digest', digest);
      const res = await this.request(last ? 'PUT' : 'PATCH', url, { 'content-type': 'application/octet-stream', 'content-range': `${pos}-${pos + chunk.length - 1}` }, chunk);
      const data = await readAll(res);
      if (res.statusCode !== 201 && res.statusCode !== 202) throw unexpectedStatus(`streaming blob to ${location.href}`, res.statusCode ?? 0, preview(data));
      pos += chunk.length;
      location = this.location(res);
    }
    return digest;
  }

  async blobExists(digest: string): Promise<boolean> {
    const res = await this.request('HEAD', this.endpoint(`${this.namespace}/blobs/${digest}`));
    const data = await readAll(res);
    if (res.statusCode === 200) return true;
    if (res.statusCode === 404) return false;
    throw unexpectedStatus('checking blob', res.statusCode ?? 0, preview(data));
  }

  /** Registry.pullBlob: the blob from `rangeStart` (then 206 is required), piece by piece. */
  async pullBlob(digest: string, rangeStart: number, onData: (data: Buffer) => void): Promise<void> {
    const headers: Record<string, string> = rangeStart !== 0 ? { range: `bytes=${rangeStart}-` } : {};
    const expected = rangeStart !== 0 ? 206 : 200;
    const res = await this.request('GET', this.endpoint(`${this.namespace}/blobs/${digest}`), headers);
    if (res.statusCode !== expected) {
      const body = await readAll(res, 4096);
      throw unexpectedStatus('pulling blob', res.statusCode ?? 0, preview(body));
    }
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      const fail = (e: unknown) => {
        if (failed) return;
        failed = true;
        res.destroy();
        reject(e instanceof UrlError || e instanceof Lz4FramingError || e instanceof TartRuntimeError ? e : urlError(e));
      };
      res.on('data', (d: Buffer) => {
        try {
          onData(d);
        } catch (e) {
          fail(e);
        }
      });
      res.on('end', () => (res.complete ? !failed && resolve() : fail(new Error('aborted'))));
      res.on('aborted', () => fail(new Error('aborted')));
      res.on('error', fail);
    });
  }
}

function readAllStream(s: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
}

/** retry(maxAttempts:) of Tart's Retry package, retrying URLErrors only. */
async function retryUrlErrors<T>(attempts: number, fn: () => Promise<T>, onRetry: (e: UrlError) => void): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof UrlError) || i >= attempts) throw e;
      onRetry(e);
    }
  }
}

/** Runs `jobs` with at most `limit` at once, failing with the first error. */
async function pool(limit: number, jobs: Array<() => Promise<void>>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]!();
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, jobs.length)) }, worker));
}

// ---------------------------------------------------------------- push (VMDirectory.pushToRegistry)

export interface PushOptions {
  concurrency: number;
  chunkSizeMb: number;
  labels: Record<string, string>;
  log: (line: string) => void;
}

export function chunkBytes(): number {
  const v = Number(process.env.TART_DOUBLE_CHUNK_BYTES ?? DEFAULT_CHUNK_BYTES);
  return Number.isInteger(v) && v > 0 ? v : DEFAULT_CHUNK_BYTES;
}

/** Pushes the VM in `dir` under every reference; resolves with the manifest digest. */
export async function pushVm(dir: string, registry: Registry, references: string[], opts: PushOptions): Promise<string> {
  const chunkMb = opts.chunkSizeMb * 1_000_000;
  const layers: Layer[] = [];
  const config = tartConfigLayer(fs.readFileSync(`${dir}/config.json`));
  opts.log('pushing config...');
  layers.push({ mediaType: CONFIG_MEDIA_TYPE, size: config.bytes.length, digest: await registry.pushBlob(config.bytes, sha256(config.bytes), chunkMb), annotations: {} });

  const diskFile = `${dir}/disk.img`;
  const diskSize = fs.statSync(diskFile).size;
  opts.log('pushing disk... this will take a while...');
  const chunk = chunkBytes();
  const diskLayers: Layer[] = [];
  const jobs: Array<() => Promise<void>> = [];
  for (let index = 0, offset = 0; offset < diskSize; index++, offset += chunk) {
    const at = offset;
    const length = Math.min(chunk, diskSize - offset);
    const i = index;
    jobs.push(async () => {
      const compressed = createHash('sha256');
      const uncompressed = createHash('sha256');
      for (const piece of frameFileRange(diskFile, at, length, (d) => uncompressed.update(d))) compressed.update(piece);
      const digest = `sha256:${compressed.digest('hex')}`;
      const size = framedSize(length);
      await retryUrlErrors(
        5,
        async () => {
          if (!(await registry.blobExists(digest))) await registry.pushBlob({ length: size, open: () => Readable.from(frameFileRange(diskFile, at, length)) }, digest, chunkMb);
        },
        (e) => {
          opts.log(`Error: ${e.localized}`);
          opts.log('Attempting to re-try...');
        },
      );
      diskLayers[i] = {
        mediaType: DISK_V2_MEDIA_TYPE,
        size,
        digest,
        annotations: { [UNCOMPRESSED_SIZE]: String(length), [UNCOMPRESSED_CONTENT_DIGEST]: `sha256:${uncompressed.digest('hex')}` },
      };
    });
  }
  await pool(opts.concurrency, jobs);
  layers.push(...diskLayers);

  opts.log('pushing NVRAM...');
  const nvram = fs.readFileSync(`${dir}/nvram.bin`);
  layers.push({ mediaType: NVRAM_MEDIA_TYPE, size: nvram.length, digest: await registry.pushBlob(nvram, sha256(nvram), chunkMb), annotations: {} });

  const stub = Buffer.from(swiftCompactJson({ architecture: config.arch, os: config.os, config: { Labels: { ...opts.labels, [DISK_FORMAT_LABEL]: config.diskFormat } } }, true));
  const stubDigest = await registry.pushBlob(stub, sha256(stub), chunkMb);
  const manifest: TartManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: { mediaType: OCI_CONFIG_MEDIA_TYPE, size: stub.length, digest: stubDigest },
    layers,
    annotations: { [UNCOMPRESSED_DISK_SIZE]: String(diskSize), [UPLOAD_TIME]: isoSeconds(new Date()) },
  };
  const bytes = manifestJson(manifest);
  for (const reference of references) {
    opts.log(`pushing manifest for ${reference}...`);
    await registry.pushManifest(reference, bytes);
  }
  return sha256(bytes);
}

// ---------------------------------------------------------------- pull (VMDirectory.pullFromRegistry, DiskV2.pull)

function fileDigest(file: string, offset: number, size: number): string | undefined {
  const st = fs.statSync(file);
  if (offset > st.size || offset + size > st.size) return undefined; // DigestError: treated as "not there"
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let pos = 0; pos < size; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - pos), offset + pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return `sha256:${h.digest('hex')}`;
}

async function pullBlobToFile(registry: Registry, digest: string, file: string): Promise<void> {
  const fd = fs.openSync(file, 'w');
  try {
    await registry.pullBlob(digest, 0, (d) => fs.writeSync(fd, d));
  } finally {
    fs.closeSync(fd);
  }
}

/** Pulls the VM of `manifest` into `dir` (Tart's deterministic tmp dir; resumable). */
export async function pullVm(dir: string, registry: Registry, manifest: TartManifest, opts: { concurrency: number; log: (line: string) => void }): Promise<void> {
  const configLayers = manifest.layers.filter((l) => l.mediaType === CONFIG_MEDIA_TYPE);
  if (configLayers.length !== 1) throw new Error('ShouldBeExactlyOneLayer');
  await pullBlobToFile(registry, configLayers[0]!.digest, `${dir}/config.json`);

  if (manifest.layers.some((l) => l.mediaType === LEGACY_DISK_V1_MEDIA_TYPE)) {
    throw new TartRuntimeError(`Pulling OCI images with legacy disk media type ${LEGACY_DISK_V1_MEDIA_TYPE} is no longer supported, please re-push the image using a current Tart version`);
  }
  const diskLayers = manifest.layers.filter((l) => l.mediaType === DISK_V2_MEDIA_TYPE);
  if (diskLayers.length === 0) throw new Error('ShouldBeAtLeastOneLayer');
  const compressed = diskLayers.reduce((n, l) => n + l.size, 0);
  opts.log(`pulling disk (${(compressed / 1e9).toFixed(1)} GB compressed)...`);

  const diskFile = `${dir}/disk.img`;
  const resumed = fs.existsSync(diskFile);
  if (!resumed) fs.writeFileSync(diskFile, '');
  let total = 0;
  for (const l of diskLayers) {
    const size = l.annotations?.[UNCOMPRESSED_SIZE];
    if (size === undefined || !/^\d+$/.test(size)) throw new Error('LayerIsMissingUncompressedSizeAnnotation');
    total += Number(size);
  }
  fs.truncateSync(diskFile, total);

  const jobs: Array<() => Promise<void>> = [];
  let offset = 0;
  for (const [index, layer] of diskLayers.entries()) {
    const size = Number(layer.annotations![UNCOMPRESSED_SIZE]);
    const contentDigest = layer.annotations?.[UNCOMPRESSED_CONTENT_DIGEST];
    if (contentDigest === undefined) throw new Error('LayerIsMissingUncompressedDigestAnnotation');
    const at = offset;
    jobs.push(async () => {
      if (resumed && fileDigest(diskFile, at, size) === contentDigest) return;
      const fd = fs.openSync(diskFile, 'r+');
      try {
        const decoder = new AppleLz4Decoder();
        let writeAt = at;
        let rangeStart = 0;
        await retryUrlErrors(
          5,
          () =>
            registry.pullBlob(layer.digest, rangeStart, (data) => {
              for (const out of decoder.write(data)) {
                fs.writeSync(fd, out, 0, out.length, writeAt);
                writeAt += out.length;
              }
              rangeStart += data.length;
            }),
          (e) => opts.log(`Error pulling disk layer ${index + 1}: "${e.localized}", attempting to re-try...`),
        );
        decoder.end();
      } catch (e) {
        if (e instanceof Lz4FramingError) throw new TartRuntimeError(`failed to decompress disk: ${e.message}`);
        throw e;
      } finally {
        fs.closeSync(fd);
      }
    });
    offset += size;
  }
  await pool(opts.concurrency, jobs);

  opts.log('pulling NVRAM...');
  const nvramLayers = manifest.layers.filter((l) => l.mediaType === NVRAM_MEDIA_TYPE);
  if (nvramLayers.length !== 1) throw new Error('ShouldBeExactlyOneLayer');
  await pullBlobToFile(registry, nvramLayers[0]!.digest, `${dir}/nvram.bin`);
  fs.writeFileSync(`${dir}/manifest.json`, manifestJson(manifest));
}
