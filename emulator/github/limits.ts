/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * What can fail a REST request before its route runs: per-credential rate-limit buckets (with
 * GitHub's `x-ratelimit-*` headers and "API rate limit exceeded" message) and the injected
 * faults of `/_emulator/faults` — a status, a primary or secondary rate limit, or a delay —
 * matched by method and path regex, each for a number of requests or until cleared.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { DOCS, HttpError, githubError, isRecord } from './http.js';
import type { TokenInfo } from './state.js';

export type FaultKind = 'status' | 'primary-rate-limit' | 'secondary-rate-limit' | 'delay';

export interface FaultSpec {
  /** HTTP method to match (any when absent). */
  method?: string;
  /** Regular expression source matched against the URL path (any when absent). */
  path?: string;
  kind: FaultKind;
  /** For `status` (default 500); for rate limits 403 (default) or 429. */
  status?: number;
  delayMs?: number;
  /** How many requests it hits; default 1; -1 = until cleared. */
  times?: number;
  /** Secondary: `retry-after` (default 1). Primary: seconds until `x-ratelimit-reset` (default 1). */
  retryAfterSeconds?: number;
}

export interface FaultView extends FaultSpec {
  id: number;
  remaining: number;
}

export interface Fault extends FaultView {
  re: RegExp | undefined;
}

export interface RateBucket {
  limit: number;
  used: number;
  resetAt: number;
}

/** Validates a fault request; throws Error naming the field. */
export function parseFault(body: unknown): FaultSpec {
  if (!isRecord(body)) throw new Error('body must be a JSON object');
  const kinds: FaultKind[] = ['status', 'primary-rate-limit', 'secondary-rate-limit', 'delay'];
  if (!kinds.includes(body['kind'] as FaultKind)) throw new Error(`kind must be one of ${kinds.join(', ')}`);
  const num = (k: string) => {
    const v = body[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) throw new Error(`${k} must be a number`);
    return v as number | undefined;
  };
  const str = (k: string) => {
    const v = body[k];
    if (v !== undefined && typeof v !== 'string') throw new Error(`${k} must be a string`);
    return v as string | undefined;
  };
  const times = num('times');
  if (times !== undefined && (!Number.isInteger(times) || times === 0 || times < -1)) throw new Error('times must be a positive integer, or -1 for unlimited');
  const path = str('path');
  if (path !== undefined) {
    try {
      new RegExp(path);
    } catch {
      throw new Error(`path is not a valid regular expression: ${path}`);
    }
  }
  return {
    kind: body['kind'] as FaultKind,
    method: str('method'),
    path,
    status: num('status'),
    delayMs: num('delayMs'),
    times,
    retryAfterSeconds: num('retryAfterSeconds'),
  };
}

/** The injected faults, first match wins. */
export class Faults {
  private list: Fault[] = [];
  private seq = 0;

  inject(spec: FaultSpec): FaultView {
    const parsed = parseFault(spec);
    const fault: Fault = {
      ...parsed,
      id: ++this.seq,
      remaining: parsed.times === undefined ? 1 : parsed.times < 0 ? Infinity : parsed.times,
      re: parsed.path === undefined ? undefined : new RegExp(parsed.path),
    };
    this.list.push(fault);
    return this.view(fault);
  }

  clear(): void {
    this.list = [];
  }

  views(): FaultView[] {
    return this.list.map((f) => this.view(f));
  }

  /** The first fault matching this request, counted down (and dropped when used up). */
  take(method: string, path: string): Fault | undefined {
    const f = this.list.find((x) => (!x.method || x.method.toUpperCase() === method) && (!x.re || x.re.test(path)));
    if (!f) return undefined;
    f.remaining--;
    if (f.remaining <= 0) this.list = this.list.filter((x) => x !== f);
    return f;
  }

  private view(f: Fault): FaultView {
    const { re: _re, ...view } = f;
    return { ...view, remaining: Number.isFinite(view.remaining) ? view.remaining : -1 };
  }
}

/** Hourly rate-limit buckets by key (a credential, or an anonymous caller). */
export class RateLimits {
  private readonly buckets = new Map<string, RateBucket>();

  bucket(key: string, limit: number): RateBucket {
    const now = Date.now();
    let b = this.buckets.get(key);
    if (!b || b.resetAt <= now) {
      b = { limit, used: 0, resetAt: now + 3600_000 };
      this.buckets.set(key, b);
    }
    return b;
  }
}

export function setRateHeaders(res: ServerResponse, b: RateBucket, override: Partial<{ remaining: number; reset: number }> = {}): void {
  res.setHeader('x-ratelimit-limit', String(b.limit));
  res.setHeader('x-ratelimit-remaining', String(override.remaining ?? Math.max(0, b.limit - b.used)));
  res.setHeader('x-ratelimit-used', String(override.remaining === 0 ? b.limit : b.used));
  res.setHeader('x-ratelimit-reset', String(override.reset ?? Math.ceil(b.resetAt / 1000)));
  res.setHeader('x-ratelimit-resource', 'core');
}

export function rateLimitedMessage(info: TokenInfo | undefined, req: IncomingMessage, requestId: string): string {
  const who =
    info?.kind === 'installation'
      ? `installation ID ${info.installationId}`
      : info?.kind === 'pat'
        ? 'user ID 1'
        : (req.socket.remoteAddress ?? '127.0.0.1');
  return `API rate limit exceeded for ${who}. If you reach out to GitHub Support for help, please include the request ID ${requestId} and timestamp ${new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}.`;
}

/** Sets the headers and throws the error answer of a non-delay fault. */
export function failWith(f: Fault, res: ServerResponse, bucket: RateBucket, info: TokenInfo | undefined, req: IncomingMessage, requestId: string): never {
  if (f.kind === 'primary-rate-limit') {
    const reset = Math.ceil(Date.now() / 1000) + (f.retryAfterSeconds ?? 1);
    setRateHeaders(res, bucket, { remaining: 0, reset });
    throw githubError(f.status ?? 403, rateLimitedMessage(info, req, requestId), DOCS.rate);
  }
  setRateHeaders(res, bucket);
  if (f.kind === 'secondary-rate-limit') {
    throw new HttpError(
      f.status ?? 403,
      `You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID ${requestId}.`,
      { documentation_url: DOCS.secondary, status: String(f.status ?? 403) },
      { 'retry-after': String(f.retryAfterSeconds ?? 1) },
    );
  }
  const status = f.status ?? 500;
  throw githubError(status, STATUS_CODES[status] ?? 'Error', DOCS.root);
}
