/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * The admin API (`/_emulator/…`) tests, demos and `ekiden up` drive the emulator with over
 * HTTP: a state snapshot, runners, the leak-scan list of issued secrets, extra tokens, fault
 * injection, and queuing / reading / cancelling jobs. It is the HTTP face of GitHubEmulator's
 * in-process API, which it calls; bad requests answer 400 `{ message }`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GitHubEmulator } from '../server.js';
import type { EmulatorJob, JobSpec } from '../state.js';
import { HttpError, isRecord, readBody, sendJson } from '../http.js';
import { parseFault, type FaultView } from '../limits.js';

export const ADMIN_PREFIX = '/_emulator';
/** Header carrying the emulator's per-run admin token (GitHubEmulator.adminToken). */
export const ADMIN_HEADER = 'x-emulator-admin';

/** Validates an admin/in-process job request; throws Error naming the field. */
export function parseJobSpec(body: unknown): JobSpec {
  if (!isRecord(body)) throw new Error('body must be a JSON object');
  const { repo, labels, steps, name } = body;
  if (typeof repo !== 'string' || !/^[^/\s]+\/[^/\s]+$/.test(repo)) throw new Error('repo must be "owner/repo"');
  if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string' && l.length > 0)) {
    throw new Error('labels must be a non-empty array of strings');
  }
  if (!Array.isArray(steps) || steps.length === 0) throw new Error('steps must be a non-empty array');
  const parsedSteps = steps.map((s, i) => {
    if (!isRecord(s) || typeof s['run'] !== 'string') throw new Error(`steps[${i}].run must be a string`);
    if (s['name'] !== undefined && typeof s['name'] !== 'string') throw new Error(`steps[${i}].name must be a string`);
    return { run: s['run'], ...(typeof s['name'] === 'string' ? { name: s['name'] } : {}) };
  });
  if (name !== undefined && typeof name !== 'string') throw new Error('name must be a string');
  return { repo, labels: labels as string[], steps: parsedSteps, ...(name !== undefined ? { name } : {}) };
}

export async function adminApi(emu: GitHubEmulator, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const method = (req.method ?? 'GET').toUpperCase();
  const path = url.pathname.replace(/\/$/, '');
  const bad = (err: unknown): never => {
    throw new HttpError(400, err instanceof Error ? err.message : String(err));
  };
  if (path === '/_emulator/state' && method === 'GET') {
    return sendJson(res, 200, { url: emu.url, runnerBaseUrl: emu.runnerBaseUrl, runners: emu.runners(), jobs: emu.jobs(), faults: emu.faults() });
  }
  if (path === '/_emulator/runners' && method === 'GET') return sendJson(res, 200, emu.runners());
  if (path === '/_emulator/secrets' && method === 'GET') return sendJson(res, 200, emu.secrets());
  if (path === '/_emulator/tokens' && method === 'POST') {
    const body = await readBody(req);
    if (!isRecord(body) || typeof body['token'] !== 'string' || body['token'] === '') return bad('token must be a non-empty string');
    emu.addToken(body['token'] as string);
    return sendJson(res, 201, {});
  }
  if (path === '/_emulator/faults') {
    if (method === 'GET') return sendJson(res, 200, emu.faults());
    if (method === 'DELETE') {
      emu.clearFaults();
      return sendJson(res, 204);
    }
    if (method === 'POST') {
      const body = await readBody(req);
      let view: FaultView | undefined;
      try {
        view = emu.injectFault(parseFault(body));
      } catch (err) {
        bad(err);
      }
      return sendJson(res, 201, view);
    }
  }
  if (path === '/_emulator/jobs') {
    if (method === 'GET') return sendJson(res, 200, emu.jobs());
    if (method === 'POST') {
      const body = await readBody(req);
      let job: EmulatorJob | undefined;
      try {
        job = emu.queueJob(parseJobSpec(body));
      } catch (err) {
        bad(err);
      }
      return sendJson(res, 201, job);
    }
  }
  const m = /^\/_emulator\/jobs\/(\d+)(\/cancel)?$/.exec(path);
  if (m) {
    const id = Number(m[1]);
    if (!m[2] && method === 'GET') {
      const job = emu.job(id);
      if (!job) throw new HttpError(404, 'Not Found');
      return sendJson(res, 200, job);
    }
    if (m[2] && method === 'POST') {
      if (!emu.job(id)) throw new HttpError(404, 'Not Found');
      return sendJson(res, 200, emu.cancelJob(id));
    }
  }
  throw new HttpError(404, 'Not Found');
}
