/**
 * TEST AND DEMO INFRASTRUCTURE — helpers for tests that drive the emulator: plain REST
 * calls, JIT config decoding, and an in-process client of the runner protocol.
 */
import type { GitHubEmulator } from './server.js';
import type { JitConfigFiles, RunnerCredentialsFile, RunnerMessage, RunnerRsaParamsFile, RunnerSettingsFile } from './protocol.js';

export interface Res {
  status: number;
  headers: Headers;
  body: unknown;
}

export async function api(
  baseUrl: string,
  method: string,
  path: string,
  opts: { token?: string | null; authorization?: string; body?: unknown; admin?: string } = {},
): Promise<Res> {
  const headers: Record<string, string> = { accept: 'application/vnd.github+json' };
  if (opts.admin) headers['x-emulator-admin'] = opts.admin;
  if (opts.authorization) headers['authorization'] = opts.authorization;
  else if (opts.token) headers['authorization'] = `token ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

export function decodeJit(encoded: string): { settings: RunnerSettingsFile; credentials: RunnerCredentialsFile; rsa: RunnerRsaParamsFile; files: JitConfigFiles } {
  const files = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) as JitConfigFiles;
  const file = <T>(name: keyof JitConfigFiles) => JSON.parse(Buffer.from(files[name], 'base64').toString('utf8')) as T;
  return { settings: file('.runner'), credentials: file('.credentials'), rsa: file('.credentials_rsaparams'), files };
}

/**
 * Speaks the emulator's runner protocol in-process (no stand-in process): authenticates with
 * a JIT config, opens a session and returns a poller.
 */
export async function connectRunner(encodedJit: string): Promise<{ token: string; sessionId: string; poll: (waitMs?: number) => Promise<RunnerMessage | null> }> {
  const { credentials, rsa, settings } = decodeJit(encodedJit);
  const tokenRes = await fetch(credentials.data.authorizationUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: credentials.data.clientId, client_secret: rsa.d }),
  });
  if (tokenRes.status !== 200) throw new Error(`token exchange: ${tokenRes.status}`);
  const { access_token: token } = (await tokenRes.json()) as { access_token: string };
  const base = `${settings.serverUrl}/_emulator/runner-api`;
  const sessionRes = await fetch(`${base}/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ os: 'Linux', arch: 'X64', version: 'test', hostname: 'test' }),
  });
  if (sessionRes.status !== 201) throw new Error(`session: ${sessionRes.status}`);
  const { session_id: sessionId } = (await sessionRes.json()) as { session_id: string };
  const poll = async (waitMs = 200) => {
    const r = await fetch(`${base}/sessions/${sessionId}/messages?wait_ms=${waitMs}`, { headers: { authorization: `Bearer ${token}` } });
    if (r.status === 204) return null;
    if (r.status !== 200) throw new Error(`poll: ${r.status}`);
    return (await r.json()) as RunnerMessage;
  };
  return { token, sessionId, poll };
}

/** Creates a JIT runner through the REST API and returns the response body. */
export async function createJit(
  emu: GitHubEmulator,
  token: string,
  scopePath: string,
  name: string,
  labels: string[] = ['self-hosted', 'linux'],
): Promise<{ runner: { id: number; name: string }; encoded_jit_config: string }> {
  const res = await api(emu.url, 'POST', `${scopePath}/actions/runners/generate-jitconfig`, {
    token,
    body: { name, runner_group_id: 1, labels },
  });
  if (res.status !== 201) throw new Error(`generate-jitconfig ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { runner: { id: number; name: string }; encoded_jit_config: string };
}
