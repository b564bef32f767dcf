/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * Runs the GitHub emulator standalone:
 *   node dist/emulator/github/main.js [--port N] [--host H] [--token T]... [--repo o/r]... [--org O]...
 *     [--runner-base-url URL] [--offline-after-ms N]
 * Prints one JSON line `{"url": ..., "adminToken": ..., "token"?: ...}` on stdout once it listens
 * (`adminToken` for the `/_emulator` admin API, header X-Emulator-Admin; `token` only
 * when none was given and one was generated), then serves until SIGINT/SIGTERM.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { GitHubEmulator } from './server.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      token: { type: 'string', multiple: true },
      repo: { type: 'string', multiple: true },
      org: { type: 'string', multiple: true },
      'runner-base-url': { type: 'string' },
      'offline-after-ms': { type: 'string' },
    },
    strict: true,
  });
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: "${values.port}" is not a port number`);
  const offline = values['offline-after-ms'] === undefined ? undefined : Number(values['offline-after-ms']);
  if (offline !== undefined && !(offline > 0)) throw new Error(`--offline-after-ms: "${values['offline-after-ms']}" is not a positive number`);
  const generated = values.token?.length ? undefined : `ghp_${randomBytes(18).toString('hex')}`;
  const emu = new GitHubEmulator({
    port,
    host: values.host,
    tokens: values.token ?? [generated!],
    repos: values.repo,
    orgs: values.org,
    runnerBaseUrl: values['runner-base-url'],
    offlineAfterMs: offline,
  });
  const { url } = await emu.start();
  process.stdout.write(`${JSON.stringify({ url, adminToken: emu.adminToken, ...(generated ? { token: generated } : {}) })}\n`);
  const shutdown = () => {
    emu.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((err: unknown) => {
  process.stderr.write(`github emulator: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
