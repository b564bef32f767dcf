/**
 * Plain-text output for the operator CLI: aligned columns, short human ages, and rendering
 * that survives a status of another version.
 */

/** Rows under a header, columns padded to their widest cell, two spaces apart; no trailing spaces. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    widths
      .map((w, i) => (cells[i] ?? '').padEnd(w))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** `45s`, `3m12s`, `2h05m`, `3d04h`; `-` for unknown or negative durations. */
export function formatAge(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  const d = Math.floor(h / 24);
  return `${d}d${String(h % 24).padStart(2, '0')}h`;
}

/** `render()`, or `fallback` when a status lacks fields this CLI expects (a pool or host of another version). */
export function tolerant<T>(render: () => T, fallback: T): T {
  try {
    return render();
  } catch {
    return fallback;
  }
}
