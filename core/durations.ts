/**
 * Durations as the SDK's duration strings. Pure module: safe in workflow code.
 */

/** `n` milliseconds as a duration string the SDK accepts (at least 1 ms, whole ms). */
export function ms(n: number): string {
  return `${Math.max(1, Math.round(n))} ms`;
}
