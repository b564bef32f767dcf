/**
 * TEST AND DEMO INFRASTRUCTURE — not a VM. The "guest" of a fake VM: a detached Node process
 * started by drivers/fake.ts as `node fake-guest.js --ekiden-fake-guest <vmDir>`, serving SSH
 * (ssh2 Server) on 127.0.0.1 with a random port. Commands run as real host processes with
 * cwd = HOME = <vmDir>.
 *
 * Inputs (all in <vmDir>/.fake/, written by the driver, 0600; nothing secret on argv):
 *   guest.json      { username, bootDelayMs, instanceId }
 *   host_key        the guest's SSH host key (private)
 *   client_key.pub  the only public key accepted
 *   password        optional accepted password
 *   faults/<name>   fault hooks, read once at startup (see FakeFault in fake.ts)
 * Output: merges { pid } into <vmDir>/vm.json at start, { port } as soon as the port is bound
 * (connections are closed until "booted"), { bootedAt } once SSH answers, bootDelayMs later.
 *
 * Imports Node built-ins, ssh2, ./fake-procs.js and ./guest-exec.js only: it may run from a
 * transpiled copy (the list is GUEST_SOURCES in fake.ts).
 */
import { spawn } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { AuthContext, ServerChannel } from 'ssh2';
import { GUEST_FLAG, MARKER_ENV, killVmProcesses } from './fake-procs.js';
import { bridgeExec } from './guest-exec.js';

interface GuestConfig {
  username: string;
  bootDelayMs: number;
  instanceId: string;
}

const flagAt = process.argv.indexOf(GUEST_FLAG);
const vmDirArg = flagAt >= 0 ? process.argv[flagAt + 1] : undefined;
if (!vmDirArg || !path.isAbsolute(vmDirArg)) {
  console.error(`usage: fake-guest ${GUEST_FLAG} <absolute vm dir>`);
  process.exit(64);
}
const vmDir: string = vmDirArg;
const fakeDir = path.join(vmDir, '.fake');
const vmJson = path.join(vmDir, 'vm.json');
const pgidsFile = path.join(fakeDir, 'pgids');

function log(msg: string): void {
  console.log(`${new Date().toISOString()} ${msg}`);
}

/** Read-merge-write of vm.json; atomic rename. While the guest runs it is the only writer. */
function updateVm(patch: Record<string, unknown>): void {
  const current = JSON.parse(readFileSync(vmJson, 'utf8')) as Record<string, unknown>;
  const next = { ...current, ...patch };
  for (const [k, v] of Object.entries(patch)) if (v === undefined) delete next[k];
  const tmp = `${vmJson}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(next, null, 2)}\n`);
  renameSync(tmp, vmJson);
}

const config = JSON.parse(readFileSync(path.join(fakeDir, 'guest.json'), 'utf8')) as GuestConfig;
const hostKey = readFileSync(path.join(fakeDir, 'host_key'));
const parsedClientKey = ssh2.utils.parseKey(readFileSync(path.join(fakeDir, 'client_key.pub')));
if (parsedClientKey instanceof Error) throw parsedClientKey;
const clientKey = parsedClientKey;
const passwordFile = path.join(fakeDir, 'password');
const password = existsSync(passwordFile) ? readFileSync(passwordFile) : undefined;
const faultsDir = path.join(fakeDir, 'faults');
const faults = new Map<string, string>(
  existsSync(faultsDir) ? readdirSync(faultsDir).map((f) => [f, readFileSync(path.join(faultsDir, f), 'utf8').trim()]) : [],
);

process.on('SIGTERM', () => {
  log('SIGTERM: shutting down');
  process.exit(0);
});
process.on('SIGINT', () => process.exit(0));
process.on('SIGHUP', () => {}); // a VM does not care about its launcher's terminal
// A fake VM that dies of one bad client is a worse fake than one that logs and carries on.
process.on('uncaughtException', (err) => log(`uncaught: ${err.stack ?? String(err)}`));

updateVm({ pid: process.pid, port: undefined, bootedAt: undefined });
log(`guest ${process.pid} up for ${vmDir}; faults: ${[...faults.keys()].join(', ') || 'none'}`);

const bootDelayMs = faults.has('boot-delay-ms') ? Number(faults.get('boot-delay-ms')) : config.bootDelayMs;
const sshServer = new ssh2.Server({ hostKeys: [hostKey] }, onClient);
let sshUp = false;

if (faults.has('no-address')) {
  log('fault no-address: never publishing an SSH port');
  setInterval(() => {}, 1 << 30);
} else {
  // Like a VM: the address is known early, sshd answers only once booted. Until then (and
  // forever with never-boot) connections are closed at once.
  const listener = net.createServer((sock) => {
    sock.setNoDelay(true);
    if (sshUp) sshServer.injectSocket(sock);
    else sock.destroy();
  });
  listener.listen(0, '127.0.0.1', () => {
    const addr = listener.address();
    const port = typeof addr === 'object' && addr ? addr.port : undefined;
    updateVm({ port });
    log(`port 127.0.0.1:${port} published`);
  });
  if (faults.has('never-boot')) log('fault never-boot: SSH never comes up');
  else setTimeout(boot, Math.max(0, bootDelayMs || 0));
}

function boot(): void {
  sshUp = true;
  updateVm({ bootedAt: new Date().toISOString() });
  log('ssh up');
  const crashAfter = faults.get('crash-after-ms');
  if (crashAfter !== undefined) {
    setTimeout(() => {
      log('fault crash-after-ms: crashing with every process of the VM');
      killVmProcesses({ vmDir, instanceId: config.instanceId, pgidsFile }, { graceMs: 0 })
        .catch((err: unknown) => log(`crash: ${String(err)}`))
        .finally(() => process.exit(1));
    }, Number(crashAfter) || 0);
  }
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function authenticate(ctx: AuthContext): void {
  if (faults.has('reject-auth') || ctx.username !== config.username) {
    ctx.reject();
    return;
  }
  const methods: Array<'publickey' | 'password'> = password ? ['publickey', 'password'] : ['publickey'];
  if (ctx.method === 'publickey') {
    const ok =
      ctx.key.algo === clientKey.type &&
      sameBytes(ctx.key.data, clientKey.getPublicSSH()) &&
      (!ctx.signature || (ctx.blob !== undefined && clientKey.verify(ctx.blob, ctx.signature, ctx.hashAlgo)));
    if (ok) ctx.accept();
    else ctx.reject(methods);
    return;
  }
  if (ctx.method === 'password' && password && sameBytes(Buffer.from(ctx.password), password)) {
    ctx.accept();
    return;
  }
  ctx.reject(methods);
}

function onClient(client: ssh2.Connection): void {
  client.on('error', (err) => log(`client error: ${err.message}`));
  client.on('authentication', authenticate);
  client.on('ready', () => {
    client.on('session', (accept) => {
      const session = accept();
      const env: Record<string, string> = {};
      let running: ReturnType<typeof spawn> | undefined;
      session.on('env', (ok, no, info) => {
        if (info.key === MARKER_ENV || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(info.key)) return no?.();
        env[info.key] = info.val;
        ok?.();
      });
      session.on('pty', (_ok, no) => no?.());
      session.on('shell', (_ok, no) => no?.());
      session.on('subsystem', (_ok, no) => no?.());
      session.on('sftp', (_ok, no) => no?.());
      session.on('signal', (ok, _no, info) => {
        if (running?.pid) {
          try {
            process.kill(-running.pid, `SIG${info.name.replace(/^SIG/, '')}` as NodeJS.Signals);
          } catch (err) {
            log(`signal ${info.name}: ${(err as Error).message}`);
          }
        }
        ok?.();
      });
      // ssh2's Server ignores every request after the client's EOF; OpenSSH still takes
      // "signal" then (clients send EOF as soon as stdin is done). Undo ssh2's flag to match.
      session.on('eof', () => {
        (session as unknown as { _ending: boolean })._ending = false;
      });
      session.on('exec', (ok, _no, info) => {
        running = runCommand(ok(), info.command, env);
      });
    });
  });
}

// Commands run as this host user whatever the SSH username; say so, as `id` would.
const hostUser = userInfo().username;

function runCommand(channel: ServerChannel, command: string, sessionEnv: Record<string, string>) {
  const child = spawn('bash', ['-c', command], {
    cwd: vmDir,
    // process.env is the minimal environment the driver gave the guest (PATH, locale, marker).
    env: { ...process.env, ...sessionEnv, HOME: vmDir, USER: hostUser, LOGNAME: hostUser, SHELL: '/bin/bash', [MARKER_ENV]: config.instanceId },
    // Own process group per command, like a login session.
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (child.pid && process.platform !== 'linux') appendFileSync(pgidsFile, `${child.pid}\n`);
  // As with sshd: once the channel is gone the command keeps running without its pipes.
  bridgeExec(channel, child, { errorPrefix: 'fake-guest: ', destroyPipesOnClose: true });
  return child;
}
