/**
 * The host's image cache (host/image-cache.ts) on real files: one fill per digest however many
 * callers (and caches on the same root) ask at once; a failed fill or a process SIGKILLed
 * mid-fill leaves no entry, and the next ensure cleans up and fills; admission refuses with the
 * numbers and leaves nothing; eviction and GC delete only what the policy allows.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageCache, ImageCacheFullError, type ImageCacheOptions } from '../../host/image-cache.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const base = mkdtempSync(join(tmpdir(), 'ekiden-image-cache-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

let n = 0;
const freshRoot = () => join(base, `c${n++}`);
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const HOUR = 3_600_000;
const KiB = 1024;

/** A fill that writes `bytes` of data into the image dir. */
const writeBytes = (bytes: number) => async (dir: string) => {
  writeFileSync(join(dir, 'disk.img'), Buffer.alloc(bytes, 7));
};

const use = (inUse: string[] = [], referenced: string[] = []) => ({ inUse: new Set(inUse), referenced: new Set(referenced) });

function cache(root: string, opts: Partial<ImageCacheOptions> = {}): ImageCache {
  return new ImageCache({ root, budgetBytes: 1024 * 1024 * 1024, retentionMs: HOUR, freeBytes: async () => 1024 ** 4, ...opts });
}

/** Everything left under the cache's scratch directories (tmp, trash, locks). */
function scratch(root: string): string[] {
  return ['tmp', 'trash', 'locks'].flatMap((sub) => readdirSync(join(root, sub)).map((name) => `${sub}/${name}`));
}

/** Polls `check` until it holds, for at most `ms`. */
async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('image cache', () => {
  it('names entries by digest and refuses what is not one', () => {
    const c = cache('/var/cache/ekiden');
    expect(c.dir(digest('a'))).toBe(`/var/cache/ekiden/sha256/${'a'.repeat(64)}`);
    expect(() => c.dir('sha256:ABC')).toThrow(/is not a digest; give sha256: and 64 lower-case hex digits/);
    expect(() => c.dir(`${'a'.repeat(64)}`)).toThrow(TypeError);
  });

  it('concurrent ensures of one digest, from one cache and from a second one on the same root, fill once', async () => {
    const root = freshRoot();
    const [a, b] = [cache(root), cache(root)];
    let fills = 0;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const fill = async (dir: string) => {
      fills++;
      await gate;
      await writeBytes(4 * KiB)(dir);
    };
    const calls = [a.ensure(digest('a'), 4 * KiB, fill, use()), a.ensure(digest('a'), 4 * KiB, fill, use()), b.ensure(digest('a'), 4 * KiB, fill, use())];
    await until(() => fills === 1, 'the first fill');
    open();
    const results = await Promise.all(calls);
    expect(fills).toBe(1);
    expect(results.filter((r) => r.fetched)).toHaveLength(1);
    expect(results.map((r) => r.dir)).toEqual(Array(3).fill(a.dir(digest('a'))));
    expect(readFileSync(join(a.dir(digest('a')), 'disk.img')).length).toBe(4 * KiB);
    expect(await a.has(digest('a'))).toBe(true);
    expect(scratch(root)).toEqual([]);
  });

  it('a fill that throws leaves no entry, no tmp and no lock, and its error propagates unchanged', async () => {
    const root = freshRoot();
    const c = cache(root);
    const boom = new Error('registry said 500');
    let tmp = '';
    const failing = async (dir: string) => {
      tmp = dir;
      writeFileSync(join(dir, 'half.img'), 'partial');
      throw boom;
    };
    await expect(c.ensure(digest('b'), 1 * KiB, failing, use())).rejects.toBe(boom);
    expect(tmp).toMatch(new RegExp(`/tmp/${'b'.repeat(64)}\\.${process.pid}\\.[0-9a-f]+$`));
    expect(await c.has(digest('b'))).toBe(false);
    expect(await c.list()).toEqual([]);
    expect(scratch(root)).toEqual([]);
    expect(readdirSync(join(root, 'meta'))).toEqual([]);
    // And the next ensure fills.
    expect(await c.ensure(digest('b'), 1 * KiB, writeBytes(KiB), use())).toMatchObject({ fetched: true });
  });

  it('a process SIGKILLed mid-fill leaves no entry; the next ensure takes over its lock, removes its tmp and fills', async () => {
    const root = freshRoot();
    const mods = compiledModules();
    const script = `
      const { ImageCache } = await import(${JSON.stringify(`file://${join(mods, 'host', 'image-cache.js')}`)});
      const c = new ImageCache({ root: ${JSON.stringify(root)}, budgetBytes: 1e9, retentionMs: 1, freeBytes: async () => 1e12 });
      setInterval(() => {}, 60_000);
      await c.ensure(${JSON.stringify(digest('c'))}, 1024, async (dir) => {
        const fs = await import('node:fs');
        fs.writeFileSync(dir + '/half.img', 'partial');
        process.stdout.write('filling ' + dir + '\\n');
        await new Promise(() => {});
      }, { inUse: new Set(), referenced: new Set() });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    await until(() => out.includes('\n') || child.exitCode !== null, 'the child to start filling');
    expect(out).toMatch(new RegExp(`^filling ${root}/tmp/${'c'.repeat(64)}\\.${child.pid}\\.[0-9a-f]+\n$`));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const c = cache(root);
    expect(await c.has(digest('c'))).toBe(false);
    expect(scratch(root).sort()).toEqual([`locks/${'c'.repeat(64)}.lock`, `tmp/${basename(out.trim().slice('filling '.length))}`].sort());
    const log: string[] = [];
    const next = cache(root, { log: (msg) => log.push(msg) });
    expect(await next.ensure(digest('c'), 1 * KiB, writeBytes(KiB), use())).toMatchObject({ fetched: true });
    expect(readdirSync(next.dir(digest('c')))).toEqual(['disk.img']);
    expect(scratch(root)).toEqual([]);
    expect(log).toContain('image cache: removed a leftover tmp');
    expect(log).toContain('image cache: took over the lock of a dead process');
  });

  it('refuses an image over the budget or the disk with the numbers, and leaves nothing', async () => {
    const root = freshRoot();
    let fills = 0;
    const counting = async (dir: string) => {
      fills++;
      await writeBytes(KiB)(dir);
    };
    const small = cache(root, { budgetBytes: 10 * KiB });
    const err = await small.ensure(digest('d'), 20 * KiB, counting, use()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageCacheFullError);
    expect((err as ImageCacheFullError).retryable).toBe(false);
    expect((err as Error).message).toBe(
      `image ${digest('d')}: image cache full: need 20.0 KiB, budget 10.0 KiB, used 0 B (0 B evictable in 0 entries), free disk 1.0 TiB (reserve 0 B): ` +
        "10.0 KiB over the budget even after evicting everything allowed; raise the host's image budget, free disk, or retire images (drop them from pools and the catalog's kept builds)",
    );
    const fullDisk = cache(root, { freeBytes: async () => 30 * KiB, reserveBytes: 16 * KiB });
    await expect(fullDisk.ensure(digest('d'), 20 * KiB, counting, use())).rejects.toThrow(/free disk 30\.0 KiB \(reserve 16\.0 KiB\): 6\.0 KiB short of disk/);
    expect(fills).toBe(0);
    expect(await small.has(digest('d'))).toBe(false);
    expect(scratch(root)).toEqual([]);
  });

  it('evicts an unreferenced entry unused past the retention to admit a new one; a referenced one stays and the new one is refused', async () => {
    let now = 1_000_000;
    const root = freshRoot();
    const probe = cache(root, { now: () => now });
    await probe.ensure(digest('1'), 16 * KiB, writeBytes(16 * KiB), use());
    const [old] = await probe.list();
    expect(old).toEqual({ digest: digest('1'), bytes: expect.any(Number), createdMs: now, lastUsedMs: now });
    expect(old!.bytes).toBeGreaterThanOrEqual(16 * KiB);

    const c = cache(root, { now: () => now, budgetBytes: old!.bytes + 20 * KiB });
    now += HOUR + 1;
    await expect(c.ensure(digest('2'), 24 * KiB, writeBytes(KiB), use([], [digest('1')]))).rejects.toBeInstanceOf(ImageCacheFullError);
    await expect(c.ensure(digest('2'), 24 * KiB, writeBytes(KiB), use([digest('1')]))).rejects.toThrow(/0 B evictable in 0 entries/);
    expect(await c.has(digest('1'))).toBe(true);

    const admitted = await c.ensure(digest('2'), 24 * KiB, writeBytes(KiB), use());
    expect(admitted).toMatchObject({ fetched: true, evicted: [digest('1')] });
    expect(await c.has(digest('1'))).toBe(false);
    expect((await c.list()).map((e) => e.digest)).toEqual([digest('2')]);
    expect(scratch(root)).toEqual([]);
  });

  it('a fill in progress counts against the budget of the next admission; a caller waiting for a fill can be aborted', async () => {
    const root = freshRoot();
    const c = cache(root, { budgetBytes: 30 * KiB });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let fills = 0;
    const slow = async (dir: string) => {
      fills++;
      await gate;
      await writeBytes(KiB)(dir);
    };
    const first = c.ensure(digest('5'), 20 * KiB, slow, use());
    await until(() => fills === 1, 'the first fill');
    await expect(c.ensure(digest('6'), 20 * KiB, writeBytes(KiB), use())).rejects.toThrow(/need 20\.0 KiB, budget 30\.0 KiB, used 20\.0 KiB \(0 B evictable in 0 entries\)/);
    const waiting = new AbortController();
    const second = cache(root).ensure(digest('5'), 20 * KiB, slow, { ...use(), signal: waiting.signal });
    waiting.abort(new Error('activity cancelled'));
    await expect(second).rejects.toThrow('activity cancelled');
    open();
    expect(await first).toMatchObject({ fetched: true });
    expect(fills).toBe(1);
    expect(scratch(root)).toEqual([]);
  });

  it('GC deletes only unreferenced entries unused past the retention, never one in use or referenced; a touch keeps one', async () => {
    let now = 5_000_000;
    const root = freshRoot();
    const c = cache(root, { now: () => now });
    for (const x of ['a', 'b', 'c', 'd', 'e']) await c.ensure(digest(x), KiB, writeBytes(KiB), use());
    now += 2 * HOUR;
    await c.touch(digest('d'));
    const second = await c.ensure(digest('e'), KiB, writeBytes(KiB), use());
    expect(second).toMatchObject({ fetched: false, evicted: [] }); // a hit is a use, too
    now += HOUR - 1;
    const sizes = new Map((await c.list()).map((e) => [e.digest, e.bytes]));
    const result = await c.gc(use([digest('a')], [digest('b')]));
    expect(result).toEqual({ deleted: [digest('c')], freedBytes: sizes.get(digest('c')) });
    expect((await c.list()).map((e) => e.digest)).toEqual([digest('a'), digest('b'), digest('d'), digest('e')]);
    now += 2;
    expect((await c.gc(use([digest('a')], [digest('b')]))).deleted).toEqual([digest('d'), digest('e')]);
    expect((await c.gc(use())).deleted).toEqual([digest('a'), digest('b')]);
    expect(await c.list()).toEqual([]);
    expect(scratch(root)).toEqual([]);
  });
});

/** host/image-cache.ts and its imports, compiled to plain ESM for a child process (once per run). */
let compiled: string | undefined;
function compiledModules(): string {
  if (compiled) return compiled;
  const out = join(base, 'mods');
  for (const file of ['host/image-cache.ts', 'core/image-policy.ts', 'core/keyed-lock.ts', 'core/pool-policy.ts']) {
    const source = readFileSync(join(ROOT, file), 'utf8');
    const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false } }).outputText;
    const target = join(out, file.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, js);
  }
  writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n');
  compiled = out;
  return out;
}
