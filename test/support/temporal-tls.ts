/**
 * A TLS endpoint in front of the run's real Temporal dev server: HAProxy (Debian `haproxy`)
 * terminates TLS with a certificate from a CA made here and passes gRPC on. Two frontends:
 * `mtls` demands a client certificate signed by that CA (checked in the TLS handshake), `apiKey`
 * demands `authorization: Bearer KEY` on every gRPC call (HTTP/2 mode) and answers 401 otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { freePort, makeCa, run } from './registry.js';

function haproxyBin(): string | undefined {
  const paths = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin'];
  return paths.map((p) => join(p, 'haproxy')).find((p) => existsSync(p));
}

export function haproxyMissing(): string {
  return haproxyBin() ? '' : 'no haproxy (Debian package haproxy)';
}

export interface TlsFront {
  dir: string;
  ca: string;
  otherCa: string;
  client: { cert: string; key: string };
  /** Signed by the other CA: the proxy refuses it. */
  stranger: { cert: string; key: string };
  /** Signed by the right CA, valid only in January 2020. */
  expired: { cert: string; key: string };
  mtlsAddress: string;
  apiKeyAddress: string;
  apiKey: string;
  stop(): Promise<void>;
}

async function leaf(dir: string, ca: string, name: string, ext: string): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', ca.replace(/\.pem$/, '.key'), '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', extFile]);
  return { cert, key };
}

/** A client certificate whose validity ended in 2020 (`openssl ca` can set the dates). */
async function expiredLeaf(dir: string, ca: string): Promise<{ cert: string; key: string }> {
  const db = join(dir, 'ca-db');
  mkdirSync(db, { recursive: true });
  writeFileSync(join(db, 'index.txt'), '');
  writeFileSync(join(db, 'serial'), '01\n');
  const cnf = join(dir, 'ca.cnf');
  writeFileSync(cnf, `[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = ${db}/index.txt\nserial = ${db}/serial\nnew_certs_dir = ${db}\ndefault_md = sha256\npolicy = p\nx509_extensions = ext\n[ p ]\ncommonName = supplied\n[ ext ]\nextendedKeyUsage = clientAuth\n`);
  const key = join(dir, 'expired.key');
  const csr = join(dir, 'expired.csr');
  const cert = join(dir, 'expired.pem');
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=expired-worker']);
  await run('openssl', ['ca', '-batch', '-config', cnf, '-cert', ca, '-keyfile', ca.replace(/\.pem$/, '.key'), '-in', csr, '-out', cert, '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-notext']);
  return { cert, key };
}

async function listening(port: number, deadline: number, child: ChildProcess, log: () => string): Promise<void> {
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`haproxy did not listen on ${port}: ${log()}`);
}

/** Starts the proxy in front of `temporalAddress` (HOST:PORT of a plain-text Temporal frontend). */
export async function startTlsFront(temporalAddress: string): Promise<TlsFront> {
  const dir = mkdtempSync(join(tmpdir(), 'ekiden-temporal-tls-'));
  const ca = await makeCa(dir, 'temporal-ca');
  const otherCa = await makeCa(dir, 'other-ca');
  const server = await leaf(dir, ca, 'server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  const client = await leaf(dir, ca, 'worker', 'extendedKeyUsage=clientAuth\n');
  const stranger = await leaf(dir, otherCa, 'stranger', 'extendedKeyUsage=clientAuth\n');
  const expired = await expiredLeaf(dir, ca);
  const bundle = join(dir, 'server-bundle.pem');
  writeFileSync(bundle, readFileSync(server.cert, 'utf8') + readFileSync(server.key, 'utf8'), { mode: 0o600 });
  const apiKey = `ek-test-${Math.random().toString(36).slice(2)}`;
  const [mtlsPort, apiPort] = [await freePort(), await freePort()];
  const cfg = join(dir, 'haproxy.cfg');
  // The key is in the proxy's config file (mode 600), never on its command line.
  writeFileSync(
    cfg,
    `global
  log stderr format raw local0 warning
defaults
  timeout connect 5s
  timeout client 120s
  timeout server 120s
frontend mtls
  mode tcp
  bind 127.0.0.1:${mtlsPort} ssl crt ${bundle} ca-file ${ca} verify required alpn h2
  default_backend plain
frontend apikey
  mode http
  bind 127.0.0.1:${apiPort} ssl crt ${bundle} alpn h2
  http-request deny deny_status 401 unless { req.hdr(authorization) -m str "Bearer ${apiKey}" }
  default_backend h2
backend plain
  mode tcp
  server temporal ${temporalAddress}
backend h2
  mode http
  server temporal ${temporalAddress} proto h2
`,
    { mode: 0o600 },
  );
  const child = spawn(haproxyBin() ?? 'haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const deadline = Date.now() + 20_000;
  await listening(mtlsPort, deadline, child, () => log);
  await listening(apiPort, deadline, child, () => log);
  return {
    dir,
    ca,
    otherCa,
    client,
    stranger,
    expired,
    mtlsAddress: `127.0.0.1:${mtlsPort}`,
    apiKeyAddress: `127.0.0.1:${apiPort}`,
    apiKey,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
  };
}
