/**
 * The one polling helper of the test suites: ask until the answer is acceptable or time runs
 * out, then fail naming what was awaited and the last answer (or error) seen. Usable in hooks,
 * where expect.poll is not.
 */

export async function waitUntil<T>(fn: () => Promise<T> | T, accept: (v: T) => boolean, timeoutMs = 60_000, what = 'condition', intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (accept(v)) return v;
      last = v;
    } catch (err) {
      last = err; // not ready yet (e.g. a query before the first workflow task)
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(1, deadline - Date.now()))));
  }
  const seen = last instanceof Error ? last.message : JSON.stringify(last);
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last ${last instanceof Error ? 'error' : 'value'} ${seen}`);
}

/** waitUntil for a value that is there once it is neither undefined nor false. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  return (await waitUntil(fn, (v) => v !== undefined && v !== false, timeoutMs, what, 50)) as T;
}
