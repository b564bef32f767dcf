/**
 * A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) over TLS with a
 * CA made for the run, and either htpasswd (bcrypt) Basic auth or token auth, where a token
 * server in this process signs ES256 JWTs with an `x5c` certificate the registry trusts
 * (distribution's token spec). Everything lives in a temporary `ekiden-registry-…` directory,
 * which the registry's command line names (the suite's stray-process check). The password is
 * random per start, reaches `htpasswd` on stdin only, and no key or secret is ever on a
 * command line: `spawned` records every argv started here so tests can check that.
 */
import { RegistryError } from '../../registry/errors.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { accessSync, constants, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { waitUntil } from './wait.js';

export const REGISTRY_BIN = process.env.EKIDEN_DOCKER_REGISTRY ?? 'docker-registry';

function onPath(bin: string): boolean {
  if (bin.includes('/')) {
    try {
      accessSync(bin, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  }
  return (process.env.PATH ?? '').split(delimiter).some((d) => {
    try {
      accessSync(join(d, bin), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why the registry tests cannot run here ('' when they can). */
export function registryMissing(): string {
  const missing = [REGISTRY_BIN, 'openssl', 'htpasswd'].filter((b) => !onPath(b));
  return missing.length ? `missing ${missing.join(', ')} (Debian packages docker-registry, openssl, apache2-utils)` : '';
}

/** argv of every process started by this module (for "no secret on a command line" checks). */
export const spawned: string[][] = [];

export function run(cmd: string, args: string[], input?: string): Promise<string> {
  spawned.push([cmd, ...args]);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args[0] ?? ''} exited ${code}: ${err.trim()}`))));
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // a tool that exits without reading: its exit code tells
      child.stdin.end(input);
    }
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A CA (key + self-signed certificate) in `dir`; returns the certificate's path. */
export async function makeCa(dir: string, name: string): Promise<string> {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature']);
  return cert;
}

async function makeServerCert(dir: string, caCert: string): Promise<{ cert: string; key: string }> {
  const key = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const cert = join(dir, 'server.pem');
  const ext = join(dir, 'server.ext');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=127.0.0.1']);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caCert.replace(/\.pem$/, '.key'), '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext]);
  return { cert, key };
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export interface TokenServer {
  realm: string;
  service: string;
  /** Tokens issued so far, with the scope each was asked for. */
  issued: string[];
  /** How many of the next tokens to issue already expired (the registry rejects them). */
  expireNext: number;
  close(): Promise<void>;
}

async function startTokenServer(dir: string, tls: { cert: string; key: string }, username: string, password: string): Promise<{ server: TokenServer; signerCert: string }> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signerKey = join(dir, 'token-signer.key');
  const signerCert = join(dir, 'token-signer.pem');
  writeFileSync(signerKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await run('openssl', ['req', '-x509', '-new', '-key', signerKey, '-out', signerCert, '-days', '2', '-subj', '/CN=ekiden-test-token-signer',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,digitalSignature,keyCertSign']);
  const x5c = new X509Certificate(readFileSync(signerCert)).raw.toString('base64');
  const service = 'ekiden-test-registry';
  const expected = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const state: TokenServer = { realm: '', service, issued: [], expireNext: 0, close: async () => undefined };
  const srv = https.createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    if (url.pathname !== '/token') return void res.writeHead(404).end();
    if (req.headers.authorization !== expected) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
    const scopes = url.searchParams.getAll('scope');
    const access = scopes.flatMap((s) => {
      const m = /^([a-z]+):(.+):([a-z*,]+)$/.exec(s);
      return m ? [{ type: m[1], name: m[2], actions: m[3].split(',') }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const expired = state.expireNext > 0;
    if (expired) state.expireNext--;
    const exp = expired ? now - 600 : now + 300;
    const header = { typ: 'JWT', alg: 'ES256', x5c: [x5c] };
    const claims = { iss: 'ekiden-test-issuer', sub: username, aud: url.searchParams.get('service') ?? '', exp, nbf: expired ? now - 900 : now - 10, iat: expired ? now - 900 : now, jti: randomBytes(8).toString('hex'), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    const token = `${input}.${b64url(sig)}`;
    state.issued.push(scopes.join(' '));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  state.realm = `https://127.0.0.1:${(srv.address() as net.AddressInfo).port}/token`;
  state.close = () => new Promise((resolve) => { srv.closeAllConnections(); srv.close(() => resolve()); });
  return { server: state, signerCert };
}

export interface TestRegistry {
  /** `https://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>` */
  host: string;
  caFile: string;
  caPem: string;
  username: string;
  password: string;
  /** The registry's storage root. */
  rootDir: string;
  /** The temporary directory holding everything. */
  dir: string;
  /** Present with `auth: 'token'`. */
  tokens?: TokenServer;
  /** Path of a blob's data file in the registry's storage. */
  blobFile(digest: string): string;
  /** SIGTERM, wait for the exit, remove the directory. */
  stop(): Promise<void>;
  /** SIGKILL (a registry that is down); the storage stays. */
  kill(): Promise<void>;
  /** Start again on the same port and storage. */
  restart(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function probe(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.get(`${url}/v2/`, { ca, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', reject);
  });
}

export async function startRegistry(opts: { auth?: 'htpasswd' | 'token' } = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'ekiden-registry-'));
  const username = 'ekiden';
  const password = randomBytes(18).toString('base64url');
  const caFile = await makeCa(dir, 'ca');
  const tls = await makeServerCert(dir, caFile);
  const rootDir = join(dir, 'storage');
  const port = await freePort();
  let tokens: TokenServer | undefined;
  let authYaml: string;
  if (opts.auth === 'token') {
    const t = await startTokenServer(dir, tls, username, password);
    tokens = t.server;
    authYaml = `  token:\n    realm: ${tokens.realm}\n    service: ${tokens.service}\n    issuer: ekiden-test-issuer\n    rootcertbundle: ${t.signerCert}\n`;
  } else {
    const htpasswdFile = join(dir, 'htpasswd');
    await run('htpasswd', ['-B', '-i', '-c', htpasswdFile, username], password);
    authYaml = `  htpasswd:\n    realm: ekiden-test\n    path: ${htpasswdFile}\n`;
  }
  const config = join(dir, 'config.yml');
  writeFileSync(config, [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${rootDir}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
    '  tls:',
    `    certificate: ${tls.cert}`,
    `    key: ${tls.key}`,
    'auth:',
    authYaml,
  ].join('\n'), { mode: 0o600 });
  const caPem = readFileSync(caFile, 'utf8');
  const url = `https://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let stderr = '';

  const launch = async () => {
    stderr = '';
    spawned.push([REGISTRY_BIN, 'serve', config]);
    const c = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    await waitUntil(
      async () => {
        if (c.exitCode !== null || c.signalCode !== null) throw Object.assign(new Error(`docker-registry exited: ${stderr.trim()}`), { fatal: true });
        return probe(url, caPem);
      },
      (status) => status === 401,
      20_000,
      `docker-registry on ${url} to answer 401`,
      50,
    );
  };
  const kill = async () => {
    if (!child) return;
    const c = child;
    child = undefined;
    c.kill('SIGKILL');
    await exited(c);
  };
  try {
    await launch();
  } catch (err) {
    await kill();
    await tokens?.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    caFile,
    caPem,
    username,
    password,
    rootDir,
    dir,
    tokens,
    blobFile: (digest) => {
      const hex = digest.replace(/^sha256:/, '');
      return join(rootDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    },
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    stop: async () => {
      if (child) {
        const c = child;
        child = undefined;
        c.kill('SIGTERM');
        const t = setTimeout(() => c.kill('SIGKILL'), 5000);
        await exited(c);
        clearTimeout(t);
      }
      await tokens?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A synthetic QEMU image directory (manifest.json, disk.qcow2, vmlinuz, initrd.img) with
 * random contents: `diskBytes` of disk, small kernel and initrd.
 */
export function makeImageDir(dir: string, diskBytes: number, name = 'test-image'): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'disk.qcow2'), randomBytes(diskBytes));
  writeFileSync(join(dir, 'vmlinuz'), randomBytes(96 * 1024 + 7));
  writeFileSync(join(dir, 'initrd.img'), randomBytes(160 * 1024 + 3));
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify({ format: 1, name, kernel: 'vmlinuz', initrd: 'initrd.img', disk: 'disk.qcow2', append: 'root=/dev/vda rw console=ttyS0', username: 'runner' }, null, 2)}\n`);
  return dir;
}

/** Live processes whose command line contains `text` (read from /proc/<pid>/cmdline). */
export function processesWithArgv(text: string): Array<{ pid: number; cmdline: string }> {
  const out: Array<{ pid: number; cmdline: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(text)) out.push({ pid: Number(name), cmdline });
    } catch {
      // ended meanwhile, or not ours to read
    }
  }
  return out;
}

/** The RegistryError `p` rejects with (any other outcome fails the test). */
export async function caughtRegistryError(p: Promise<unknown>): Promise<RegistryError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RegistryError) return err;
    throw err;
  }
  throw new Error('expected a RegistryError, the call succeeded');
}
