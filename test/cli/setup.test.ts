/**
 * Namespace setup (`ekiden setup`, and the same check in `ekiden worker`): on a real Temporal
 * dev server started without Ekiden's search attributes — a cluster nobody set up — a pool start
 * says what is missing and the fix instead of "Failed to start Workflow"; `setup --check` names the
 * missing attributes; `setup` creates them and a rerun finds them; an attribute of another type and a
 * namespace that does not exist are one line each; a worker creates what is missing when it starts.
 * Where the server refuses creation (Temporal Cloud), the rules run on a refusing operator service.
 */
import { Connection } from '@temporalio/client';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { firstLine } from '../../cli/errors.js';
import { SEARCH_ATTRIBUTES } from '../../core/search-attributes.js';
import { startDevServer, type DevServer } from '../../temporal/dev-server.js';
import { compareSearchAttributes, createCommand, ensureNamespace, NamespaceSetupError, unknownSearchAttribute, type SearchAttributeOperator } from '../../temporal/namespace-setup.js';
import { temporalSkipReason } from '../support/harness.js';
import { finished, killAll, lines, startEkiden, tempDir } from './ekiden-process.js';
import { ekiden, oneLine } from './in-process.js';

const NAMES = SEARCH_ATTRIBUTES.map((a) => a.name);
const KEYWORD = 2;
const TEXT = 1;
/** google.protobuf.Duration's seconds are a Long in the generated types; a number goes over the wire the same. */
const DAY = 86400 as unknown as NonNullable<Parameters<Connection['workflowService']['registerNamespace']>[0]['workflowExecutionRetentionPeriod']>['seconds'];

/** An operator service holding `custom`, refusing additions with `refuse` (a gRPC code) when given. */
function operator(custom: Record<string, number>, refuse?: number): SearchAttributeOperator & { added: Array<Record<string, number>> } {
  const added: Array<Record<string, number>> = [];
  return {
    added,
    listSearchAttributes: async () => ({ customAttributes: { ...custom } }),
    addSearchAttributes: async ({ searchAttributes }) => {
      if (refuse !== undefined) throw Object.assign(new Error(`${refuse} PERMISSION_DENIED: Request unauthorized.`), { code: refuse, details: 'Request unauthorized.' });
      added.push(searchAttributes);
      Object.assign(custom, searchAttributes);
      return {};
    },
  };
}

describe('namespace setup rules', () => {
  it('compares what the namespace has with what Ekiden needs, by name and type', () => {
    expect(compareSearchAttributes({})).toEqual({ present: [], missing: NAMES, wrongType: [] });
    const all = Object.fromEntries(NAMES.map((n) => [n, KEYWORD]));
    expect(compareSearchAttributes(all)).toEqual({ present: NAMES, missing: [], wrongType: [] });
    // The enum may come by name too.
    expect(compareSearchAttributes({ ...all, EkidenHost: 'INDEXED_VALUE_TYPE_KEYWORD' }).present).toContain('EkidenHost');
    expect(compareSearchAttributes({ ...all, EkidenPool: TEXT, Unrelated: 3 })).toEqual({
      present: NAMES.filter((n) => n !== 'EkidenPool'),
      missing: [],
      wrongType: [{ name: 'EkidenPool', want: 'Keyword', have: 'Text' }],
    });
  });

  it('the command that creates them: tcld on Temporal Cloud, the Temporal CLI elsewhere', () => {
    expect(createCommand({ address: 'ci.a1b2c.tmprl.cloud:7233', namespace: 'ci.a1b2c' }, ['EkidenHost', 'EkidenPool'])).toBe(
      'tcld namespace search-attributes add --namespace ci.a1b2c --search-attribute EkidenHost=Keyword --search-attribute EkidenPool=Keyword',
    );
    expect(createCommand({ address: 'temporal.lan:7233', namespace: 'ci' }, ['EkidenJob'])).toBe(
      'temporal operator search-attribute create --address temporal.lan:7233 --namespace ci --name EkidenJob --type Keyword',
    );
  });

  it('where creation is refused, one line names every missing attribute and the command, and nothing is half-added', async () => {
    const op = operator({ EkidenHost: KEYWORD }, 7);
    const target = { address: 'us-east-1.aws.api.temporal.io:7233', namespace: 'ci.a1b2c' };
    const err = await ensureNamespace(op, target, { create: true }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(NamespaceSetupError);
    const missing = NAMES.filter((n) => n !== 'EkidenHost');
    expect((err as NamespaceSetupError).missing).toEqual(missing);
    expect((err as Error).message).toBe(
      `namespace ci.a1b2c lacks Ekiden's search attributes ${missing.join(', ')} and this connection may not create them (Request unauthorized.); create them with: ${createCommand(target, missing)}`,
    );
    expect((err as Error).message).not.toContain('\n');
    expect(op.added).toEqual([]);
  });

  it('adds only what is missing, all in one call, and reports what it did', async () => {
    const op = operator({ EkidenHost: KEYWORD, EkidenPool: KEYWORD });
    const report = await ensureNamespace(op, { address: 'a:1', namespace: 'ns' }, { create: true });
    const missing = NAMES.filter((n) => n !== 'EkidenHost' && n !== 'EkidenPool');
    expect(op.added).toEqual([Object.fromEntries(missing.map((n) => [n, KEYWORD]))]);
    expect(report).toMatchObject({ present: ['EkidenHost', 'EkidenPool'], created: missing, missing: [] });
    // With create false, nothing is added and the missing ones are reported.
    const looking = operator({});
    expect(await ensureNamespace(looking, { address: 'a:1', namespace: 'ns' }, { create: false })).toMatchObject({ missing: NAMES, created: [] });
    expect(looking.added).toEqual([]);
  });

  it('a refused start names the unknown attribute and the fix, not "Failed to start Workflow"', () => {
    const refused = Object.assign(new Error('Failed to start Workflow'), {
      name: 'ServiceError',
      cause: Object.assign(new Error('3 INVALID_ARGUMENT: Namespace ci has no mapping defined for search attribute EkidenPool'), { code: 3 }),
    });
    Object.defineProperty(refused, 'name', { value: 'ServiceError' });
    expect(unknownSearchAttribute(refused)).toBe('EkidenPool');
    expect(firstLine(refused)).toBe(
      "the namespace has no search attribute EkidenPool: Ekiden's search attributes are not set up there; run `ekiden setup` with the same --address/--namespace/--config",
    );
    // Any other ServiceError keeps its gRPC reason after the client's words.
    const other = Object.assign(new Error('Failed to start Workflow'), { cause: new Error('8 RESOURCE_EXHAUSTED: namespace rate limit exceeded') });
    Object.defineProperty(other, 'name', { value: 'ServiceError' });
    expect(firstLine(other)).toBe('Failed to start Workflow: 8 RESOURCE_EXHAUSTED: namespace rate limit exceeded');
  });
});

const skip = temporalSkipReason();

describe.skipIf(skip)('against a real server nobody set up', () => {
  let server: DevServer;
  let connection: Connection;
  let address: string;
  const customOf = async (namespace = 'default') => (await connection.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {};

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekiden-setup-'));
    server = await startDevServer({ cliPath: inject('temporalCli'), logFile: join(dir, 'temporal.log'), ui: false, searchAttributes: false, startTimeoutMs: 120_000 });
    address = server.address;
    connection = await Connection.connect({ address });
    expect(Object.keys(await customOf()).filter((n) => NAMES.includes(n)), 'the server starts without them').toEqual([]);
  }, 150_000);

  afterAll(async () => {
    await killAll();
    await connection?.close();
    await server?.stop();
  });

  it('a pool start says the namespace is not set up, and how to fix it', async () => {
    const r = await ekiden(['pool', 'create', 'setup-a', '--address', address, '--hosts', 'h1', '--image', 'img', '--labels', 'self-hosted', '--task-queue', 'ekiden-setup-test']);
    expect(r.code, r.err).toBe(1);
    expect(oneLine(r)).toBe(
      "ekiden: pool setup-a: the namespace has no search attribute EkidenPool: Ekiden's search attributes are not set up there; run `ekiden setup` with the same --address/--namespace/--config",
    );
  });

  it('setup --check names what is missing and changes nothing; setup creates them; a rerun finds them', async () => {
    const check = await ekiden(['setup', '--check', '--address', address]);
    expect(check.code, check.err).toBe(1);
    expect(oneLine(check)).toBe(`ekiden: namespace default on ${address} lacks Ekiden's search attributes ${NAMES.join(', ')}; run \`ekiden setup\` with the same connection settings`);
    const asJson = await ekiden(['setup', '--check', '--address', address, '--json']);
    expect(asJson.code).toBe(1);
    expect(JSON.parse(asJson.out)).toMatchObject({ address, namespace: 'default', missing: NAMES, created: [], ready: false });
    expect(Object.keys(await customOf()).filter((n) => NAMES.includes(n))).toEqual([]);

    const setup = await ekiden(['setup', '--address', address]);
    expect(setup.code, setup.err).toBe(0);
    expect(setup.out).toBe(`namespace default on ${address}: created search attributes ${NAMES.join(', ')}; ready for Ekiden`);
    const custom = await customOf();
    for (const n of NAMES) expect(custom[n], n).toBe(KEYWORD);

    const again = await ekiden(['setup', '--address', address]);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toBe(`namespace default on ${address}: search attributes ${NAMES.join(', ')} present; ready for Ekiden`);
    expect((await ekiden(['setup', '--check', '--address', address])).code).toBe(0);

    // The start that was refused now goes through.
    const created = await ekiden(['pool', 'create', 'setup-b', '--address', address, '--hosts', 'h1', '--image', 'img', '--labels', 'self-hosted', '--task-queue', 'ekiden-setup-test']);
    expect(created.code, created.err).toBe(0);
    const { Client } = await import('@temporalio/client');
    await new Client({ connection }).workflow.getHandle('pool/setup-b').terminate('test over');
  });

  it('an attribute of another type, and a namespace that does not exist, are one line each', async () => {
    await connection.workflowService.registerNamespace({ namespace: 'setup-typed', workflowExecutionRetentionPeriod: { seconds: DAY } });
    await connection.operatorService.addSearchAttributes({ namespace: 'setup-typed', searchAttributes: { EkidenHost: TEXT } });
    const typed = await ekiden(['setup', '--address', address, '--namespace', 'setup-typed']);
    expect(typed.code, typed.err).toBe(1);
    expect(oneLine(typed)).toBe(
      'ekiden: namespace setup-typed: search attribute EkidenHost is Text, Ekiden needs Keyword; a type cannot be changed in place: remove it (temporal operator search-attribute remove --namespace setup-typed --name EkidenHost) and run ekiden setup, or use another namespace',
    );
    expect(Object.keys(await customOf('setup-typed')).filter((n) => NAMES.includes(n)), 'nothing else was added').toEqual(['EkidenHost']);

    const none = await ekiden(['setup', '--address', address, '--namespace', 'setup-nowhere']);
    expect(none.code, none.err).toBe(1);
    expect(oneLine(none)).toBe(
      `ekiden: namespace setup-nowhere does not exist on ${address}; create it (temporal operator namespace create --address ${address} --namespace setup-nowhere) or name another with temporal.namespace / --namespace`,
    );
  });

  it('a host worker creates what is missing when it starts', { timeout: 120_000 }, async () => {
    await connection.workflowService.registerNamespace({ namespace: 'setup-worker', workflowExecutionRetentionPeriod: { seconds: DAY } });
    const dir = tempDir('ekiden-setup-worker-');
    const config = join(dir, 'worker.yaml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      config,
      `temporal: { address: "${address}", namespace: setup-worker, taskQueue: ekiden-setup-worker }
github: { scope: "repo:acme/app", apiUrl: "http://127.0.0.1:9", auth: { tokenEnv: GITHUB_TOKEN } }
host: { id: setup-w1, dataDir: "${join(dir, 'host')}" }
driver: { kind: fake, root: "${join(dir, 'vms')}", images: {} }
`,
    );
    const worker = startEkiden(['worker', '--config', config], { env: { GITHUB_TOKEN: 'ghp_setup_test' } });
    const deadline = Date.now() + 60_000;
    while (!worker.err().includes('"host worker running"') && worker.proc.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(worker.err(), 'the worker is running').toContain('"host worker running"');
    const created = lines(worker.err()).map((l) => { try { return JSON.parse(l) as { msg?: string; created?: string[] }; } catch { return {}; } }).find((l) => l.msg === 'created search attributes');
    expect(created?.created).toEqual(NAMES);
    const custom = await customOf('setup-worker');
    for (const n of NAMES) expect(custom[n], n).toBe(KEYWORD);
    worker.proc.kill('SIGTERM');
    const r = await finished(worker, 60_000);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
  });

  it('`ekiden up` pointed at this server sets the namespace up and runs its job', { timeout: 240_000 }, async () => {
    await connection.workflowService.registerNamespace({ namespace: 'setup-up', workflowExecutionRetentionPeriod: { seconds: DAY } });
    const dataDir = tempDir('ekiden-setup-up-');
    const up = startEkiden(['up', '--driver', 'fake', '--jobs', '1', '--data-dir', dataDir], { env: { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: 'setup-up' } });
    const r = await finished(up, 200_000);
    expect(r.code, r.stdout + r.stderr.slice(-2000)).toBe(0);
    expect(r.stdout).toContain(`temporal: created search attributes ${NAMES.join(', ')} on namespace setup-up`);
    expect(r.stdout).toMatch(/summary: 1\/1 job\(s\) succeeded/);
    expect(r.stdout).toMatch(/leftovers: 0 VM\(s\), 0 runner registration\(s\)/);
  });
});
