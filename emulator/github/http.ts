/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * The HTTP plumbing every emulator route shares, so each answers the same way: GitHub's error
 * bodies (`message`, `documentation_url`, `status`) thrown as HttpError and written by the
 * server, JSON replies, bounded JSON request bodies, `Authorization` parsing and GitHub's
 * page/per_page pagination with its `link` header. Also the context a route gets from the
 * emulator (its state and own URL).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EmulatorState } from './state.js';

export const DOCS = {
  root: 'https://docs.github.com/rest',
  runners: 'https://docs.github.com/rest/actions/self-hosted-runners',
  groups: 'https://docs.github.com/rest/actions/self-hosted-runner-groups',
  apps: 'https://docs.github.com/rest/apps/apps',
  rate: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api',
  secondary: 'https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits',
};

const MAX_BODY = 1 << 20;

/** What every route gets from the emulator. */
export interface RouteContext {
  readonly state: EmulatorState;
  /** The emulator's own URL (it listens by the time a route runs). */
  url(): string;
}

/** An error answer: thrown by routes, written by the server as `{ message, ...extra }`. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function githubError(status: number, message: string, documentationUrl: string, extra: Record<string, unknown> = {}): HttpError {
  return new HttpError(status, message, { documentation_url: documentationUrl, status: String(status), ...extra });
}

export function notFound(doc = DOCS.root): HttpError {
  return githubError(404, 'Not Found', doc);
}

/** GitHub's 422 for a body that fails validation. */
export function invalid(detail: string, doc: string): HttpError {
  return githubError(422, `Invalid request.\n\n${detail}`, doc, { errors: [detail] });
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function sendJson(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  if (status === 204 || body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.setHeader('content-length', Buffer.byteLength(text));
  res.writeHead(status);
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { message: err.message, ...err.extra }, err.headers);
}

/** The JSON body (undefined when empty); 413 past 1 MiB, 400 when it does not parse. */
export async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw githubError(413, 'Payload too large', DOCS.root);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw githubError(400, 'Problems parsing JSON', DOCS.root);
  }
}

/** `Authorization: <scheme> <token>`, scheme lower-cased; both undefined when absent or malformed. */
export function parseAuthorization(req: IncomingMessage): { token: string | undefined; scheme: string | undefined } {
  const header = req.headers.authorization;
  const m = header ? /^(\S+)\s+(\S+)\s*$/.exec(header) : null;
  if (!m) return { token: undefined, scheme: undefined };
  return { scheme: m[1]!.toLowerCase(), token: m[2]! };
}

/**
 * One page of `items` by the request's `page` / `per_page` (default 30, at most 100), and the
 * `link` header (prev, next, last, first) GitHub sends with it; none when there is one page.
 */
export function paginate<T>(req: IncomingMessage, url: URL, items: T[], ownUrl: () => string): { items: T[]; headers: Record<string, string> } {
  const q = url.searchParams;
  const perPageRaw = Number(q.get('per_page') ?? 30);
  const perPage = Number.isInteger(perPageRaw) && perPageRaw > 0 ? Math.min(perPageRaw, 100) : 30;
  const pageRaw = Number(q.get('page') ?? 1);
  const page = Number.isInteger(pageRaw) && pageRaw > 0 ? pageRaw : 1;
  const lastPage = Math.max(1, Math.ceil(items.length / perPage));
  const slice = items.slice((page - 1) * perPage, page * perPage);
  const links: string[] = [];
  const base = `http://${req.headers.host ?? new URL(ownUrl()).host}${url.pathname}`;
  const link = (p: number, rel: string) => {
    const params = new URLSearchParams(q);
    params.set('per_page', String(perPage));
    params.set('page', String(p));
    links.push(`<${base}?${params.toString()}>; rel="${rel}"`);
  };
  if (page > 1) link(Math.min(page - 1, lastPage), 'prev');
  if (page < lastPage) link(page + 1, 'next');
  if (page < lastPage) link(lastPage, 'last');
  if (page > 1) link(1, 'first');
  return { items: slice, headers: links.length ? { link: links.join(', ') } : {} };
}
