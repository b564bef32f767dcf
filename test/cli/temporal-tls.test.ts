/**
 * One way to connect, over TLS: the fleet file's `temporal.tls` / `temporal.apiKeyEnv` and the
 * Temporal client-config environment (TEMPORAL_TLS_*, TEMPORAL_CONFIG_FILE + TEMPORAL_PROFILE),
 * against the run's real dev server behind HAProxy with client-certificate checks
 * (test/support/temporal-tls.ts). Right credentials connect (operator verbs and a real `ekiden
 * worker`); a wrong CA, a missing, foreign or expired client certificate, a key that is not the
 * certificate's, plain text to a TLS port, TLS to a plain port and a wrong API key each give one
 * line naming the setting. Secrets appear in no output and no argv.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseFleetConfig } from '../../config/fleet.js';
import { temporalSkipReason } from '../support/harness.js';
import { haproxyMissing, startTlsFront, type TlsFront } from '../support/temporal-tls.js';
import { finished, killAll, processesUnder, startEkiden, tempDir } from './ekiden-process.js';
import { ekiden, oneLine } from './in-process.js';

describe('temporal.tls and temporal.apiKeyEnv in the fleet file', () => {
  const parse = (temporal: unknown) => () => parseFleetConfig({ temporal }, {}, { configFile: '/etc/ekiden/fleet.yaml' });
  it.each([
    [{ tls: { certFile: 'w.pem' } }, 'temporal.tls.keyFile: missing; a client certificate (temporal.tls.certFile) needs its private key file too'],
    [{ tls: { keyFile: 'w.key' } }, 'temporal.tls.certFile: missing; a private key (temporal.tls.keyFile) needs its client certificate file too'],
    [{ tls: { caFile: 'ca.pem', cafile: 'x' } }, /^temporal\.tls\.cafile: /],
    [{ tls: 'yes' }, /^temporal\.tls: /],
    [{ tls: { serverName: 'not a name' } }, /^temporal\.tls\.serverName: "not a name" is not a host name/],
    [{ apiKey: 'sk-live-123' }, 'temporal.apiKey: an API key is a secret and is never written in the file; export it in an environment variable and name that with temporal.apiKeyEnv'],
    [{ apiKeyEnv: 'sk-live-123' }, /^temporal\.apiKeyEnv: not an environment variable name/],
  ])('%j is refused naming the field', (temporal, message) => {
    expect(parse(temporal)).toThrow(message);
    try {
      parse(temporal)();
    } catch (err) {
      expect((err as Error).message).not.toContain('sk-live-123');
    }
  });

  it('relative paths are read against the file, and tls: true is TLS with the system CAs', () => {
    const t = parseFleetConfig({ temporal: { address: 't.example.com:7233', tls: { caFile: 'tls/ca.pem', certFile: '/abs/w.pem', keyFile: 'w.key', serverName: 'temporal.lan' }, apiKeyEnv: 'TEMPORAL_KEY' } }, {}, { configFile: '/etc/ekiden/fleet.yaml' }).temporal;
    expect(t).toMatchObject({ tls: { caFile: '/etc/ekiden/tls/ca.pem', certFile: '/abs/w.pem', keyFile: '/etc/ekiden/w.key', serverName: 'temporal.lan' }, apiKeyEnv: 'TEMPORAL_KEY' });
    expect(parseFleetConfig({ temporal: { tls: true } }, {}).temporal.tls).toBe(true);
  });
});

const skip = temporalSkipReason() || haproxyMissing();

describe.skipIf(skip)('against a real TLS endpoint with client-certificate checks', () => {
  let front: TlsFront;
  let dir: string;
  const fleet = (name: string, temporal: string): string => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, `temporal: ${temporal}\n`);
    return file;
  };
  const status = (file: string, env: Record<string, string> = {}) => ekiden(['hosts', '--config', file, '--json'], env);

  beforeAll(async () => {
    front = await startTlsFront(inject('temporalAddress'));
    dir = tempDir('ekiden-tls-cli-');
  }, 60_000);
  afterAll(async () => {
    await killAll();
    await front?.stop();
  });

  it('the right CA and client certificate connect: operator verbs and setup', async () => {
    const file = fleet('mtls', `{ address: "${front.mtlsAddress}", tls: { caFile: "${front.ca}", certFile: "${front.client.cert}", keyFile: "${front.client.key}" } }`);
    const r = await status(file);
    expect(r.code, r.err).toBe(0);
    expect(Array.isArray(JSON.parse(r.out))).toBe(true);
    const setup = await ekiden(['setup', '--check', '--config', file]);
    expect(setup.code, setup.err).toBe(0);
  });

  it('a wrong CA names temporal.tls.caFile', async () => {
    const r = await status(fleet('wrong-ca', `{ address: "${front.mtlsAddress}", tls: { caFile: "${front.otherCa}", certFile: "${front.client.cert}", keyFile: "${front.client.key}" } }`));
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(
      new RegExp(`^ekiden: cannot reach Temporal at ${front.mtlsAddress}: TLS: the server's certificate is not signed by the CA in temporal\\.tls\\.caFile \\(${front.otherCa.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\) \\([A-Z_]+\\); give the CA that signed it$`),
    );
  });

  it('no client certificate names temporal.tls.certFile and keyFile', async () => {
    const r = await status(fleet('no-cert', `{ address: "${front.mtlsAddress}", tls: { caFile: "${front.ca}" } }`));
    expect(r.code).toBe(1);
    expect(oneLine(r)).toBe(`ekiden: cannot reach Temporal at ${front.mtlsAddress}: TLS: the server requires a client certificate; set temporal.tls.certFile and temporal.tls.keyFile`);
  });

  it('a client certificate from another CA is refused, naming temporal.tls.certFile', async () => {
    const r = await status(fleet('stranger', `{ address: "${front.mtlsAddress}", tls: { caFile: "${front.ca}", certFile: "${front.stranger.cert}", keyFile: "${front.stranger.key}" } }`));
    expect(r.code).toBe(1);
    expect(oneLine(r)).toMatch(new RegExp(`^ekiden: cannot reach Temporal at ${front.mtlsAddress}: TLS: the server refused the client certificate in temporal\\.tls\\.certFile \\([A-Z_0-9]+\\); give one signed by the CA the server trusts$`));
  });

  it('an expired client certificate, and a key that is not the certificate\'s, exit 2 before connecting', async () => {
    const expired = await status(fleet('expired', `{ address: "${front.mtlsAddress}", tls: { caFile: "${front.ca}", certFile: "${front.expired.cert}", keyFile: "${front.expired.key}" } }`));
    expect(expired.code).toBe(2);
    expect(oneLine(expired)).toBe(`ekiden: temporal.tls.certFile: the client certificate in ${front.expired.cert} expired on 2020-01-02T00:00:00.000Z; renew it (the server refuses an expired certificate)`);
    const mismatched = await status(fleet('mismatch', `{ address: "${front.mtlsAddress}", tls: { caFile: "${front.ca}", certFile: "${front.client.cert}", keyFile: "${front.stranger.key}" } }`));
    expect(mismatched.code).toBe(2);
    expect(oneLine(mismatched)).toBe(`ekiden: temporal.tls.keyFile: the private key in ${front.stranger.key} does not belong to the client certificate (temporal.tls.certFile); give the key the certificate was made for`);
    const missing = await status(fleet('missing', `{ address: "${front.mtlsAddress}", tls: { caFile: "${join(dir, 'nope.pem')}" } }`));
    expect(missing.code).toBe(2);
    expect(oneLine(missing)).toBe(`ekiden: temporal.tls.caFile: cannot read the CA certificate ${join(dir, 'nope.pem')}: no such file`);
  });

  it('plain text to the TLS port, and TLS to the plain port, say which side speaks TLS', async () => {
    const plain = await status(fleet('plain', `{ address: "${front.mtlsAddress}" }`));
    expect(plain.code).toBe(1);
    expect(oneLine(plain)).toBe(`ekiden: cannot reach Temporal at ${front.mtlsAddress}: the server at ${front.mtlsAddress} speaks TLS; set temporal.tls (true for a public CA, or caFile for your own) or TEMPORAL_TLS=true`);
    const tls = await status(fleet('tls-to-plain', `{ address: "${inject('temporalAddress')}", tls: { caFile: "${front.ca}" } }`));
    expect(tls.code).toBe(1);
    expect(oneLine(tls)).toMatch(/: TLS: the server at 127\.0\.0\.1:\d+ does not speak TLS \([A-Z_]+\); drop temporal\.tls \(and TEMPORAL_TLS\*\), or give the server's TLS port$/);
  });

  it('an API key from temporal.apiKeyEnv: the right one connects, a wrong one is one line, and neither is printed', async () => {
    const file = fleet('apikey', `{ address: "${front.apiKeyAddress}", tls: { caFile: "${front.ca}" }, apiKeyEnv: EKIDEN_TEST_TEMPORAL_KEY }`);
    const ok = await status(file, { EKIDEN_TEST_TEMPORAL_KEY: front.apiKey });
    expect(ok.code, ok.err).toBe(0);
    const wrong = await status(file, { EKIDEN_TEST_TEMPORAL_KEY: 'not-the-key-4711' });
    expect(wrong.code).toBe(1);
    expect(oneLine(wrong)).toBe(`ekiden: cannot reach Temporal at ${front.apiKeyAddress}: the server refused the API key (401 Unauthenticated); check the key in temporal.apiKeyEnv (EKIDEN_TEST_TEMPORAL_KEY)`);
    const unset = await status(file, {});
    expect(unset.code).toBe(2);
    expect(oneLine(unset)).toBe('ekiden: temporal.apiKeyEnv: environment variable EKIDEN_TEST_TEMPORAL_KEY is empty; export the Temporal API key there');
    for (const r of [ok, wrong, unset]) expect(r.out + r.err).not.toMatch(new RegExp(`${front.apiKey}|not-the-key-4711`));
  });

  it('the Temporal client-config environment and a profile file connect the same way', async () => {
    const env = {
      TEMPORAL_ADDRESS: front.mtlsAddress,
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: front.ca,
      TEMPORAL_TLS_CLIENT_CERT_PATH: front.client.cert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: front.client.key,
    };
    const r = await ekiden(['hosts', '--json'], env);
    expect(r.code, r.err).toBe(0);
    const noCert = await ekiden(['hosts', '--json'], { TEMPORAL_ADDRESS: front.mtlsAddress, TEMPORAL_TLS_SERVER_CA_CERT_PATH: front.ca });
    expect(oneLine(noCert)).toBe(`ekiden: cannot reach Temporal at ${front.mtlsAddress}: TLS: the server requires a client certificate; set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH`);
    const toml = join(dir, 'temporal.toml');
    writeFileSync(toml, `[profile.fleet]\naddress = "${front.apiKeyAddress}"\nnamespace = "default"\napi_key = "${front.apiKey}"\n[profile.fleet.tls]\nserver_ca_cert_path = "${front.ca}"\n`);
    const profile = await ekiden(['hosts', '--json'], { TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'fleet' });
    expect(profile.code, profile.err).toBe(0);
  });

  it('a host worker connects over mTLS, and stops with one line on a wrong CA', { timeout: 120_000 }, async () => {
    const worker = (name: string, tls: string) => {
      const file = join(dir, `${name}-worker.yaml`);
      writeFileSync(
        file,
        `temporal: { address: "${front.mtlsAddress}", taskQueue: ekiden-tls-${name}, tls: ${tls} }
github: { scope: "repo:acme/app", apiUrl: "http://127.0.0.1:9", auth: { tokenEnv: GITHUB_TOKEN } }
host: { id: tls-${name}, dataDir: "${join(dir, `${name}-host`)}" }
driver: { kind: fake, root: "${join(dir, `${name}-vms`)}", images: {} }
`,
      );
      return file;
    };
    const good = startEkiden(['worker', '--config', worker('good', `{ caFile: "${front.ca}", certFile: "${front.client.cert}", keyFile: "${front.client.key}" }`)], { env: { GITHUB_TOKEN: 'ghp_tls_test' } });
    const deadline = Date.now() + 60_000;
    while (!good.err().includes('"host worker running"') && good.proc.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(good.err(), 'the worker is running').toContain('"host worker running"');
    good.proc.kill('SIGTERM');
    const r = await finished(good, 60_000);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);

    const bad = startEkiden(['worker', '--config', worker('bad', `{ caFile: "${front.otherCa}", certFile: "${front.client.cert}", keyFile: "${front.client.key}" }`)], { env: { GITHUB_TOKEN: 'ghp_tls_test' } });
    const b = await finished(bad, 60_000);
    expect(b.code).toBe(1);
    expect(b.stderr.trim()).toMatch(/^ekiden: cannot reach Temporal at 127\.0\.0\.1:\d+: TLS: the server's certificate is not signed by the CA in temporal\.tls\.caFile/);
    expect(b.stderr.trim().split('\n')).toHaveLength(1);
    expect(processesUnder(dir)).toEqual([]);
  });
});
