/**
 * The Temporal Web UI served by the test run's dev server, driven in a real headless Chromium:
 * the filtered runners link (temporal/web-ui.ts) lists an idle runner of one pool and not the
 * runner of another pool, and the runner's page shows its search attributes. Runners use the
 * fake driver; both are cancelled and cleaned up afterwards.
 */
import type { WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it, type TestContext } from 'vitest';
import { runnerStatusQuery } from '../../workflows/api.js';
import { runnerWorkflowId } from '../../core/names.js';
import { RunnerPhase, SA_HOST, SA_PHASE, SA_POOL } from '../../core/search-attributes.js';
import { runnersQuery, webUiRunnersLink, webUiWorkflowLink } from '../../temporal/web-ui.js';
import type { RunnerWorkflow } from '../../workflows/runner.js';
import { createHarness, temporalSkipReason, waitUntil, type Harness } from '../support/harness.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/**
 * Playwright adds `--headless` (Chromium's only headless mode since 132), `--no-sandbox`,
 * `--disable-dev-shm-usage` and more itself; these keep working if its defaults change.
 * No GPU here, and Debian's wrapper turns GPU rasterization on.
 */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update'];
const NAMESPACE = 'default';

function skipReason(): string | undefined {
  const temporal = temporalSkipReason();
  if (temporal) return temporal;
  if (!inject('temporalUiUrl')) return 'the Temporal dev server runs without its Web UI';
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`;
  return undefined;
}

const skip = skipReason();

type Runner = WorkflowHandleWithFirstExecutionRunId<typeof RunnerWorkflow>;

describe.skipIf(skip)(`Temporal Web UI finds runners by their search attributes${skip ? ` — skipped: ${skip}` : ''}`, () => {
  const uiUrl = inject('temporalUiUrl');
  const suffix = Math.random().toString(36).slice(2, 8);
  const pool = `webui-${suffix}`;
  const otherPool = `webui-other-${suffix}`;
  let h: Harness;
  let browser: Browser | undefined;
  const runners: Runner[] = [];
  let runner: Runner;
  let other: Runner;

  async function startRunner(forPool: string): Promise<Runner> {
    const handle = await h.client.workflow.start<typeof RunnerWorkflow>('RunnerWorkflow', {
      workflowId: runnerWorkflowId(forPool, 1),
      taskQueue: `ekiden-${h.hostId}`,
      args: [{ spec: h.spec({ pool: forPool }), timing: h.timing({ idleTimeoutMs: 600_000 }) }],
      typedSearchAttributes: [
        { key: SA_POOL, value: forPool },
        { key: SA_HOST, value: h.hostId },
        { key: SA_PHASE, value: RunnerPhase.Pulling },
      ],
    });
    runners.push(handle);
    return handle;
  }

  async function listIds(query: string): Promise<string[]> {
    const ids: string[] = [];
    for await (const w of h.client.workflow.list({ query })) ids.push(w.workflowId);
    return ids;
  }

  beforeAll(async () => {
    h = await createHarness('webui');
    await h.startWorker();
    runner = await startRunner(pool);
    other = await startRunner(otherPool);
    for (const handle of [runner, other]) {
      await waitUntil(
        async () => (await handle.query(runnerStatusQuery)).phase,
        (phase) => phase === RunnerPhase.Idle,
        60_000,
        `${handle.workflowId} to be idle`,
      );
    }
    // The visibility store lags the workflow a little; the UI reads the same store.
    for (const [handle, p] of [[runner, pool], [other, otherPool]] as const) {
      await waitUntil(() => listIds(runnersQuery({ pool: p, phase: RunnerPhase.Idle })), (ids) => ids.includes(handle.workflowId), 30_000, `${handle.workflowId} in visibility`);
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
    if (!h) return;
    try {
      for (const handle of runners) await handle.cancel().catch(() => {});
      // A cancelled runner ends (as failed) only after its cleanup: VM destroyed, runner removed.
      for (const handle of runners) await handle.result().catch(() => {});
      expect(await h.driver.list()).toEqual([]);
      expect(h.emulator.runners()).toEqual([]);
    } finally {
      await h.close();
    }
  });

  /** A fresh page; on failure its screenshot goes to a temp dir whose path is printed. */
  async function newPage(ctx: TestContext, name: string): Promise<Page> {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    ctx.onTestFinished(async ({ task }) => {
      if (task.result?.state === 'fail') {
        const path = join(mkdtempSync(join(tmpdir(), 'ekiden-webui-')), `${name}.png`);
        await page
          .screenshot({ path, fullPage: true })
          .then(() => console.error(`webui: screenshot of ${page.url()} at ${path}`))
          .catch((err: unknown) => console.error(`webui: no screenshot of ${page.url()}: ${String(err)}`));
      }
      await page.close();
    });
    return page;
  }

  /** Opens `url` until `target` shows (the SPA renders once per load; visibility may lag). */
  async function openUntilVisible(page: Page, url: string, target: Locator, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await page.goto(url);
      try {
        await target.waitFor({ state: 'visible', timeout: Math.max(1_000, Math.min(15_000, deadline - Date.now())) });
        return;
      } catch (err) {
        if (Date.now() >= deadline) throw err;
      }
    }
  }

  /** The workflow ids the list page links to (each row links its id, run id and type). */
  async function listedWorkflowIds(page: Page): Promise<string[]> {
    const prefix = `/namespaces/${NAMESPACE}/workflows/`;
    const ids = new Set<string>();
    for (const link of await page.locator(`a[href^="${prefix}"]`).all()) {
      const segment = ((await link.getAttribute('href')) ?? '').slice(prefix.length).split(/[/?]/)[0] ?? '';
      if (segment && segment !== 'start-workflow') ids.add(decodeURIComponent(segment));
    }
    return [...ids].sort();
  }

  it('the server parses the link query, quotes escaped', async () => {
    expect(await listIds(runnersQuery({ pool, phase: RunnerPhase.Idle }))).toEqual([runner.workflowId]);
    expect(await listIds(runnersQuery({ pool: 'no "such" \\ pool', phase: RunnerPhase.Idle }))).toEqual([]);
  });

  it('the filtered runners link lists the pool\'s idle runner and not another pool\'s', async (ctx) => {
    const page = await newPage(ctx, 'runners-list');
    const link = webUiRunnersLink(uiUrl, NAMESPACE, { pool, phase: RunnerPhase.Idle });
    await openUntilVisible(page, link, page.getByRole('link', { name: runner.workflowId, exact: true }));
    // The UI parsed the link's query into its filter chips.
    await page.getByText(`"${pool}"`, { exact: true }).first().waitFor();
    await page.getByText('"idle"', { exact: true }).first().waitFor();
    expect(await listedWorkflowIds(page)).toEqual([runner.workflowId]);
    expect(await page.getByText(other.workflowId).count()).toBe(0);

    // The other pool's link shows its runner and not this one: the filter is what hides it.
    const otherLink = webUiRunnersLink(uiUrl, NAMESPACE, { pool: otherPool, phase: RunnerPhase.Idle, host: h.hostId });
    await openUntilVisible(page, otherLink, page.getByRole('link', { name: other.workflowId, exact: true }));
    expect(await listedWorkflowIds(page)).toEqual([other.workflowId]);

    // No runner of this pool is busy.
    await openUntilVisible(page, webUiRunnersLink(uiUrl, NAMESPACE, { pool, phase: RunnerPhase.Busy }), page.getByText(/no results/i).first());
    expect(await listedWorkflowIds(page)).toEqual([]);
  });

  it('the runner\'s page shows its workflow id and search attributes', async (ctx) => {
    const page = await newPage(ctx, 'runner-page');
    const status = await runner.query(runnerStatusQuery);
    const row = page.getByRole('link', { name: runner.workflowId, exact: true });
    await openUntilVisible(page, webUiRunnersLink(uiUrl, NAMESPACE, { pool }), row);
    await row.click();
    await page.waitForURL(webUiWorkflowLink(uiUrl, NAMESPACE, runner.workflowId, runner.firstExecutionRunId), { timeout: 30_000 });
    await page.getByText(runner.workflowId, { exact: true }).first().waitFor({ timeout: 30_000 });

    await page.locator('a[href$="/search-attributes"]').first().click();
    await page.waitForURL(/\/search-attributes$/, { timeout: 30_000 });
    await expect
      .poll(() => page.locator('body').innerText(), { timeout: 30_000, interval: 500 })
      .toMatch(new RegExp(`"EkidenPool":\\s*"${pool}"`));
    const text = await page.locator('body').innerText();
    expect(text).toMatch(/"EkidenPhase":\s*"idle"/);
    expect(text).toMatch(new RegExp(`"EkidenRunner":\\s*"${status.runnerName}"`));
    expect(text).toMatch(new RegExp(`"EkidenHost":\\s*"${h.hostId}"`));
  });
});
