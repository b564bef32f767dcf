/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * Job dispatch: the runner-facing protocol (`/_emulator/runner-api/…`, described in
 * protocol.ts) the runner stand-in speaks — exchange a runner's credentials for an access
 * token, open and close a session, long-poll it for the next job message, report steps and
 * complete the job. Everything but the token exchange needs `Bearer <access token>`; errors
 * are plain `{ message }` bodies, not GitHub's REST shapes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { StateError } from '../state.js';
import type {
  CompleteRequest,
  CompleteResponse,
  JobConclusion,
  SessionRequest,
  SessionResponse,
  StepReport,
  TokenRequest,
  TokenResponse,
} from '../protocol.js';
import { HttpError, isRecord, readBody, sendJson, type RouteContext } from '../http.js';

export const RUNNER_API_PREFIX = '/_emulator/runner-api';

export interface RunnerApiContext extends RouteContext {
  /** Longest message poll. */
  readonly pollTimeoutMs: number;
}

function bearerRunner(ctx: RunnerApiContext, req: IncomingMessage): number {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  const id = m ? ctx.state.runnerIdForAccessToken(m[1]!) : undefined;
  if (id === undefined) throw new HttpError(401, 'The runner registration has been deleted from the server, or the access token is invalid.');
  return id;
}

/** Runs a state call, answering its StateError with the matching status. */
function stateCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StateError) {
      const status = { 'not-found': 404, conflict: 409, busy: 422, invalid: 400, forbidden: 403 }[err.code];
      throw new HttpError(status, err.message);
    }
    throw err;
  }
}

export async function runnerApi(ctx: RunnerApiContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const method = (req.method ?? 'GET').toUpperCase();
  const path = url.pathname.slice(RUNNER_API_PREFIX.length);

  if (path === '/oauth2/token' && method === 'POST') {
    const body = (await readBody(req)) as Partial<TokenRequest> | undefined;
    const token =
      isRecord(body) && typeof body.client_id === 'string' && typeof body.client_secret === 'string'
        ? ctx.state.exchangeCredential(body.client_id, body.client_secret)
        : undefined;
    if (!token) throw new HttpError(401, 'The runner registration has been deleted from the server, or the credentials are invalid.');
    const response: TokenResponse = { access_token: token, token_type: 'Bearer', expires_in: 3600 };
    return sendJson(res, 200, response);
  }

  const runnerId = bearerRunner(ctx, req);
  if (path === '/sessions' && method === 'POST') {
    const body = (await readBody(req)) as Partial<SessionRequest> | undefined;
    const info = {
      os: isRecord(body) && typeof body.os === 'string' ? body.os : 'Linux',
      arch: isRecord(body) && typeof body.arch === 'string' ? body.arch : 'X64',
      version: isRecord(body) && typeof body.version === 'string' ? body.version : 'unknown',
    };
    const sessionId = stateCall(() => ctx.state.createSession(runnerId, info));
    const r = ctx.state.runnerById(runnerId)!;
    const response: SessionResponse = {
      session_id: sessionId,
      runner: { id: r.id, name: r.name, ephemeral: r.ephemeral },
      poll_timeout_ms: ctx.pollTimeoutMs,
    };
    return sendJson(res, 201, response);
  }

  let m = /^\/sessions\/([^/]+)(\/messages)?$/.exec(path);
  if (m) {
    const sessionId = decodeURIComponent(m[1]!);
    if (!m[2] && method === 'DELETE') {
      ctx.state.deleteSession(runnerId, sessionId);
      return sendJson(res, 204);
    }
    if (m[2] && method === 'GET') {
      if (!ctx.state.hasSession(runnerId, sessionId)) throw new HttpError(404, 'Session not found.');
      const requested = Number(url.searchParams.get('wait_ms') ?? ctx.pollTimeoutMs);
      const waitMs = Number.isFinite(requested) ? Math.max(0, Math.min(requested, ctx.pollTimeoutMs)) : ctx.pollTimeoutMs;
      const ac = new AbortController();
      const onClose = () => ac.abort();
      res.on('close', onClose);
      const msg = await ctx.state.poll(runnerId, waitMs, ac.signal);
      res.off('close', onClose);
      if (!ctx.state.runnerById(runnerId)) throw new HttpError(401, 'The runner registration has been deleted from the server.');
      if (!msg) return sendJson(res, 204);
      return sendJson(res, 200, msg);
    }
    throw new HttpError(404, 'Not Found');
  }

  m = /^\/jobs\/(\d+)\/(steps|complete)$/.exec(path);
  if (m && method === 'POST') {
    const jobId = Number(m[1]);
    const body = await readBody(req);
    if (!isRecord(body)) throw new HttpError(400, 'body must be a JSON object');
    if (m[2] === 'steps') {
      const report = body as unknown as StepReport;
      if (!Number.isInteger(report.number) || (report.status !== 'in_progress' && report.status !== 'completed')) {
        throw new HttpError(400, 'number and status are required');
      }
      stateCall(() => ctx.state.reportStep(runnerId, jobId, report));
      return sendJson(res, 204);
    }
    const conclusion = (body as Partial<CompleteRequest>).conclusion;
    const valid: JobConclusion[] = ['success', 'failure', 'cancelled'];
    if (!valid.includes(conclusion as JobConclusion)) throw new HttpError(400, `conclusion must be one of ${valid.join(', ')}`);
    const deleted = stateCall(() => ctx.state.completeJob(runnerId, jobId, conclusion as JobConclusion));
    const response: CompleteResponse = { runner_deleted: deleted };
    return sendJson(res, 200, response);
  }
  throw new HttpError(404, 'Not Found');
}
