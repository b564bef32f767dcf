/**
 * HTTP(S) to one registry endpoint. Guarantees: https with certificate verification always
 * (against the endpoint's CA when given, else the system roots); plain http only when the
 * endpoint says `insecure: true`; keep-alive connections; a request that fails on a reused
 * keep-alive connection before any answer is sent once more on a fresh one (every body here can
 * be replayed); a connection idle past the timeout is 'unavailable'; the AbortSignal ends the
 * request and its response. Errors are RegistryErrors (errors.ts). Credentials are not this
 * module's business: it sends the headers it is given and never logs them.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { RegistryError, fromTransportError, isAbort } from './errors.js';

export interface RegistryEndpoint {
  /** `https://host[:port]`, or `http://…` together with `insecure: true`. */
  url: string;
  /** PEM of the CA(s) to trust for the registry's certificate (instead of the system roots). */
  ca?: string | Buffer;
  /** File holding that PEM. */
  caFile?: string;
  /** Allow plain http. TLS verification is never switched off. */
  insecure?: boolean;
  username?: string;
  /** Held in memory only; never logged, never in a message. */
  password?: string;
  /** How the operator sets the credentials, for messages, e.g. `registry.passwordEnv EKIDEN_REGISTRY_PASSWORD`. */
  credentialSource?: string;
}

/** A request body: bytes, or a factory for a fresh stream of them (so a request can be resent). */
export type Body = Buffer | (() => Readable);

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: Body;
  signal?: AbortSignal;
}

export interface TransportOptions {
  /** Socket idle timeout (ms), default 60 s. */
  timeoutMs?: number;
}

export class Transport {
  readonly base: URL;
  /** Path the registry API lives under ('' for the host's root). */
  private readonly prefix: string;
  /** `host:port` as used in messages. */
  readonly where: string;
  private readonly httpsAgent: https.Agent;
  private readonly httpAgent: http.Agent;
  private readonly insecure: boolean;
  private readonly timeoutMs: number;

  constructor(endpoint: RegistryEndpoint, options: TransportOptions = {}) {
    let base: URL;
    try {
      base = new URL(endpoint.url);
    } catch (err) {
      throw new RegistryError('invalid', `registry URL "${endpoint.url}" is not a URL`, { cause: err });
    }
    if (base.username || base.password) throw new RegistryError('invalid', 'the registry URL must not carry credentials; pass username/password separately');
    if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new RegistryError('invalid', `registry URL ${base.origin}: only https (or http with insecure) is supported`);
    if (base.protocol === 'http:' && !endpoint.insecure) {
      throw new RegistryError('invalid', `registry ${base.host} is plain http; that is allowed only with insecure: true`);
    }
    this.prefix = base.pathname.replace(/\/+$/, '');
    this.base = base;
    this.where = base.host;
    this.insecure = endpoint.insecure === true;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    let ca: string | Buffer | undefined = endpoint.ca;
    if (ca === undefined && endpoint.caFile) {
      try {
        ca = readFileSync(endpoint.caFile);
      } catch (err) {
        throw new RegistryError('invalid', `registry CA file ${endpoint.caFile} is unreadable: ${(err as Error).message}`, { cause: err });
      }
    }
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 8, ca });
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  }

  /** `base` + path (a registry path such as `/v2/…`), or an absolute/relative Location. */
  resolve(pathOrUrl: string): URL {
    if (/^https?:\/\//i.test(pathOrUrl)) return new URL(pathOrUrl);
    if (pathOrUrl.startsWith('/')) return new URL(this.prefix + pathOrUrl, this.base.origin);
    return new URL(pathOrUrl, `${this.base.origin}${this.prefix}/`);
  }

  /** May a request (e.g. a token fetch or redirect) go to this URL? */
  checkScheme(url: URL, what: string): void {
    if (url.protocol === 'https:') return;
    if (url.protocol === 'http:' && this.insecure) return;
    throw new RegistryError('protocol', `${what}: refusing ${url.protocol}//${url.host} (plain http is allowed only with insecure: true)`);
  }

  /** Sends the request; resolves with the response (whatever its status) once its headers arrive. */
  async send(req: HttpRequest, what: string): Promise<http.IncomingMessage> {
    this.checkScheme(req.url, what);
    try {
      return await this.once(req);
    } catch (err) {
      if ((err as { reusedSocket?: boolean }).reusedSocket && !isAbort(err, req.signal) && !(err instanceof RegistryError)) {
        try {
          return await this.once(req);
        } catch (again) {
          throw fromTransportError(again, what, this.where, req.signal);
        }
      }
      throw fromTransportError(err, what, this.where, req.signal);
    }
  }

  private once(req: HttpRequest): Promise<http.IncomingMessage> {
    const secure = req.url.protocol === 'https:';
    const mod = secure ? https : http;
    const headers: Record<string, string> = { 'user-agent': 'ekiden-registry-client', ...req.headers };
    if (Buffer.isBuffer(req.body)) headers['content-length'] = String(req.body.length);
    return new Promise((resolve, reject) => {
      const r = mod.request(req.url, { method: req.method, headers, agent: secure ? this.httpsAgent : this.httpAgent, signal: req.signal, timeout: this.timeoutMs }, (res) => {
        res.on('error', () => undefined); // consumers attach their own handlers; never crash on a late reset
        resolve(res);
      });
      r.on('error', (err) => {
        if (r.reusedSocket) Object.assign(err, { reusedSocket: true });
        reject(err);
      });
      r.on('timeout', () => r.destroy(Object.assign(new Error(`no data for ${this.timeoutMs} ms (timed out)`), { code: 'ETIMEDOUT' })));
      if (req.body === undefined) {
        r.end();
      } else if (Buffer.isBuffer(req.body)) {
        r.end(req.body);
      } else {
        const src = req.body();
        src.on('error', (err) => r.destroy(new RegistryError('io', `reading the upload source failed: ${err.message}`, { cause: err })));
        r.on('close', () => src.destroy());
        src.pipe(r);
      }
    });
  }

  close(): void {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }
}

/** Reads a whole (small) response body, failing past `max` bytes. */
export async function readBody(res: http.IncomingMessage, max: number, what: string, signal?: AbortSignal): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    res.destroy();
    throw new RegistryError('too-large', `${what}: the response is ${declared} bytes, over the ${max}-byte limit`);
  }
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of res) {
      n += (chunk as Buffer).length;
      if (n > max) {
        res.destroy();
        throw new RegistryError('too-large', `${what}: the response is over the ${max}-byte limit`);
      }
      parts.push(chunk as Buffer);
    }
  } catch (err) {
    throw fromTransportError(err, what, 'the registry', signal);
  }
  return Buffer.concat(parts);
}

/** Reads and drops what is left of a response (so its connection can be reused). */
export async function drain(res: http.IncomingMessage): Promise<void> {
  try {
    for await (const _ of res) void _;
  } catch {
    // the connection went away; nothing to reuse
  }
}
