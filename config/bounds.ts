/**
 * What Ekiden accepts at its edges, in one place: the range of every count and duration and
 * the shape of every name, image reference and path an operator writes — in the fleet config
 * file (config/fleet.ts) or as a flag (cli/). Both check against this module and so give the
 * same rule in the same words; only the field differs (`pools[0].max` in a file, `--max` on a
 * command line). Each check returns the one-line problem (field, rule, fix) or undefined; the
 * caller throws it as its own error type (ConfigError, UsageError).
 *
 * | value | range |
 * |---|---|
 * | pool `size`, `minIdle` | 0–1000 runners |
 * | pool `max` | 1–1000 runners |
 * | pool `maxRunners` | 1–10⁹ runner lives |
 * | host `capacity`, driver `maxRunning` | 1–256 VMs |
 * | `cpu` | 1–256 vCPUs |
 * | `memoryMb` | 1–1 048 576 MiB (1 TiB) |
 * | `runnerGroupId` | 1–2³¹−1 |
 * | every `timing.*Ms`, host `pollIntervalMs` | 1 ms – 30 days |
 * | `timing.bootAttempts` | 1–10 |
 * | `backoff.initialMs`, `backoff.maxMs` | 1 ms – 1 day |
 * | host `shutdownGraceMs` | 0 – 30 days |
 * | fake driver `bootDelayMs` | 0 – 1 day |
 * | `github.writeSpacingMs` | 0 – 60 000 ms |
 * | `github.auth.appId`, `installationId` | 1–2⁵³−1 |
 * | `webhook.port` | 1–65535 |
 * | `webhook.maxBodyBytes` | 1 – 64 MiB |
 * | `ekiden up --jobs`, `--pool-size` | 1–1000 |
 * | `ekiden up --idle-timeout` | 1 s – 30 days |
 * | image `keep` | 1–100 old builds |
 * | image `buildTimeout` | 1 minute – 2 days (default 2h) |
 * | image `smokeTest.timeout` | 1 s – 1 day (default 10m) |
 * | image `schedule.catchupWindow` | 1 minute – 30 days (default 1h) |
 *
 * Whole numbers are JSON/YAML numbers in a file; on a command line they are decimal digits
 * only (no exponent, hex, sign other than a leading `-`, or surrounding whitespace). A
 * duration (the image fields above) is a string of whole numbers with units — `ms`, `s`, `m`,
 * `h`, `d` — such as `90s`, `2h` or `1h30m`; its rule is the same table's, in milliseconds.
 *
 * Names of pools and hosts are slugs (core/names.ts). An image reference is either
 * - `qemu:NAME` (NAME: lower-case letters, digits, `.`, `_`, `-`, starting with a letter or
 *   digit, no `..`) or `qemu:/ABSOLUTE/DIR` (segments of letters, digits, `.`, `_`, `+`, `-`;
 *   no `.` or `..` segment), for the QEMU driver; or
 * - an OCI-style reference `[REGISTRY[:PORT]/]PATH[:TAG][@sha256:DIGEST]` — PATH is
 *   lower-case components (`[a-z0-9]+` joined by `.`, `_`, `__` or dashes) separated by `/`,
 *   TAG is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, DIGEST 64 lower-case hex digits — which also
 *   covers a local Tart VM name written in lower case;
 * at most 255 characters, never whitespace, control characters or a `..` path segment.
 */
import { at, ConfigError, describe, type Obj } from './fields.js';
import { assertSlug } from '../core/names.js';
import { errorMessage } from '../core/failures.js';
import { MAX_POOL_RUNNERS } from '../core/pool-policy.js';

const DAY_MS = 24 * 60 * 60_000;

export interface IntRule {
  min: number;
  max: number;
  /** What the number counts, shown after the range: "runners", "ms, at most 30 days". */
  unit: string;
  /** A value to suggest in the fix. */
  example: number;
}

export const BOUNDS = {
  poolSize: { min: 0, max: MAX_POOL_RUNNERS, unit: 'runners', example: 2 },
  poolMinIdle: { min: 0, max: MAX_POOL_RUNNERS, unit: 'idle runners', example: 1 },
  poolMax: { min: 1, max: MAX_POOL_RUNNERS, unit: 'runners', example: 4 },
  maxRunners: { min: 1, max: 1_000_000_000, unit: 'runner lives', example: 100 },
  hostCapacity: { min: 1, max: 256, unit: 'VMs at once', example: 2 },
  cpu: { min: 1, max: 256, unit: 'vCPUs', example: 4 },
  memoryMb: { min: 1, max: 1_048_576, unit: 'MiB, at most 1 TiB', example: 8192 },
  runnerGroupId: { min: 1, max: 2 ** 31 - 1, unit: 'a GitHub runner group id', example: 1 },
  timingMs: { min: 1, max: 30 * DAY_MS, unit: 'ms, at most 30 days', example: 3_600_000 },
  bootAttempts: { min: 1, max: 10, unit: 'fresh VMs per runner', example: 2 },
  backoffMs: { min: 1, max: DAY_MS, unit: 'ms, at most 1 day', example: 5_000 },
  graceMs: { min: 0, max: 30 * DAY_MS, unit: 'ms, at most 30 days', example: 10_000 },
  bootDelayMs: { min: 0, max: DAY_MS, unit: 'ms, at most 1 day', example: 0 },
  writeSpacingMs: { min: 0, max: 60_000, unit: 'ms between GitHub writes', example: 1_000 },
  githubId: { min: 1, max: Number.MAX_SAFE_INTEGER, unit: 'a numeric GitHub id', example: 123456 },
  port: { min: 1, max: 65_535, unit: 'a TCP port', example: 8088 },
  maxBodyBytes: { min: 1, max: 64 * 1024 * 1024, unit: 'bytes, at most 64 MiB', example: 1_048_576 },
  demoJobs: { min: 1, max: 1000, unit: 'demo jobs', example: 3 },
  demoPoolSize: { min: 1, max: 1000, unit: 'runners', example: 2 },
  idleTimeoutSeconds: { min: 1, max: (30 * DAY_MS) / 1000, unit: 's, at most 30 days', example: 3600 },
  imageKeep: { min: 1, max: 100, unit: 'old builds kept', example: 5 },
  buildTimeoutMs: { min: 60_000, max: 2 * DAY_MS, unit: 'from 1m to 2d', example: 2 * 3_600_000 },
  smokeTimeoutMs: { min: 1_000, max: DAY_MS, unit: 'from 1s to 1d', example: 10 * 60_000 },
  catchupWindowMs: { min: 60_000, max: 30 * DAY_MS, unit: 'from 1m to 30d', example: 3_600_000 },
  imageCacheGiB: { min: 1, max: 1_048_576, unit: 'GiB of images kept on the host', example: 200 },
  imageRetentionMs: { min: 60_000, max: 365 * DAY_MS, unit: 'from 1m to 365d', example: 7 * DAY_MS },
  fleetIntervalMs: { min: 10_000, max: DAY_MS, unit: 'from 10s to 1d', example: 10 * 60_000 },
} as const satisfies Record<string, IntRule>;

/** `a whole number from 0 to 1000 (runners)`: the rule, as every message words it. */
export function ruleText(rule: IntRule): string {
  return `a whole number from ${rule.min} to ${rule.max} (${rule.unit})`;
}

/** The problem with `value` (a number read from a file) as `field`, or undefined when it is within `rule`. */
export function intProblem(field: string, value: unknown, rule: IntRule, example = rule.example): string | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= rule.min && value <= rule.max) return undefined;
  return `${field}: ${describe(value)} is not ${ruleText(rule)}; write e.g. ${example}`;
}

const DECIMAL = /^-?[0-9]+$/;

/** `text` (a command-line value) as a whole number within `rule`: decimal digits only. */
export function parseIntText(field: string, text: string, rule: IntRule, example = rule.example): { value: number } | { problem: string } {
  if (!DECIMAL.test(text)) return { problem: `${field}: "${text}" is not ${ruleText(rule)}; write it in decimal digits, e.g. ${example}` };
  const value = Number(text);
  if (value < rule.min || value > rule.max) return { problem: `${field}: "${text}" is not ${ruleText(rule)}; write e.g. ${example}` };
  return { value };
}

const DURATION_UNITS_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: DAY_MS } as const;
const DURATION = /^(?:[0-9]{1,9}(?:ms|s|m|h|d))+$/;

/** `ms` as the shortest duration text: 7 200 000 → `2h`, 5 400 000 → `1h30m`, 0 → `0ms`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0ms';
  let rest = ms;
  let text = '';
  for (const [unit, size] of [['d', DAY_MS], ['h', 3_600_000], ['m', 60_000], ['s', 1_000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) text += `${n}${unit}`;
    rest -= n * size;
  }
  return text;
}

/** `text` as milliseconds (`1h30m` → 5 400 000), or undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/([0-9]+)(ms|s|m|h|d)/g)) total += Number(m[1]) * DURATION_UNITS_MS[m[2] as keyof typeof DURATION_UNITS_MS];
  return total;
}

/**
 * `value` (read from a file) as a duration within `rule` (milliseconds), or the problem: the
 * field, the range in duration text and an example (`2h`).
 */
export function durationValue(field: string, value: unknown, rule: IntRule): { ms: number } | { problem: string } {
  const range = `a duration from ${formatDuration(rule.min)} to ${formatDuration(rule.max)}`;
  const fix = `write e.g. "${formatDuration(rule.example)}" (whole numbers with units ms, s, m, h, d, like "90s" or "1h30m")`;
  const ms = typeof value === 'string' ? parseDuration(value) : undefined;
  if (ms === undefined) return { problem: `${field}: ${describe(value)} is not ${range}; ${fix}` };
  if (ms < rule.min || ms > rule.max) return { problem: `${field}: ${describe(value)} is not ${range}; ${fix}` };
  return { ms };
}

/** `o[key]` as a duration within `rule` in ms, `fallback` when absent; a ConfigError naming `path.key` otherwise. */
export function optDuration(o: Obj, key: string, path: string, rule: IntRule, fallback: number): number {
  const v = o[key];
  if (v === undefined) return fallback;
  const parsed = durationValue(at(path, key), v, rule);
  if ('problem' in parsed) throw new ConfigError(parsed.problem);
  return parsed.ms;
}

/** The slug rule of core/names.ts, as a problem line. */
export function slugProblem(field: string, value: string): string | undefined {
  try {
    assertSlug(field, value);
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const MAX_REF = 255;

const QEMU_NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const QEMU_DIR_SEGMENT = /^[A-Za-z0-9._+-]+$/;
const DOMAIN_PART = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
const PATH_PART = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const OCI_REF = new RegExp(
  `^(?:${DOMAIN_PART}(?:\\.${DOMAIN_PART})*(?::[0-9]{1,5})?/)?${PATH_PART}(?:/${PATH_PART})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$`,
);
const IMAGE_FIX = 'write e.g. ghcr.io/OWNER/IMAGE:TAG, qemu:NAME or qemu:/ABSOLUTE/DIR';

/** The problem with an image reference (see the module comment for what is allowed), or undefined. */
export function imageProblem(field: string, image: string): string | undefined {
  const bad = (why: string) => `${field}: ${JSON.stringify(image)} is not a safe image reference (${why}); ${IMAGE_FIX}`;
  if (image.length === 0) return bad('empty');
  if (image.length > MAX_REF) return bad(`longer than ${MAX_REF} characters`);
  if (CONTROL.test(image) || /\s/.test(image)) return bad('whitespace or control characters');
  if (image.split(/[/:]/).some((segment) => segment === '..')) return bad('a ".." path segment');
  if (image.startsWith('qemu:')) {
    const rest = image.slice('qemu:'.length);
    if (rest.startsWith('/')) {
      const segments = rest.slice(1).replace(/\/$/, '').split('/');
      if (segments.every((s) => QEMU_DIR_SEGMENT.test(s) && s !== '.' && s !== '..')) return undefined;
      return bad('qemu:/DIR must be an absolute path of plain segments');
    }
    if (QEMU_NAME.test(rest) && !rest.includes('..')) return undefined;
    return bad('qemu:NAME takes lower-case letters, digits, ".", "_" and "-"');
  }
  if (OCI_REF.test(image)) return undefined;
  return bad('not [REGISTRY/]PATH[:TAG][@sha256:DIGEST] with a lower-case PATH');
}

/**
 * A plain text value (label, task queue, namespace, directory): not empty, at most `max`
 * characters, no control characters; `noWhitespace` and `noComma` tighten it.
 */
export function textProblem(field: string, value: string, opts: { max: number; noWhitespace?: boolean; noComma?: boolean; what: string }): string | undefined {
  const bad = (why: string) => `${field}: ${JSON.stringify(value)} is not ${opts.what} (${why})`;
  if (value.length === 0) return bad('empty');
  if (value.length > opts.max) return bad(`longer than ${opts.max} characters; shorten it`);
  if (CONTROL.test(value)) return bad('control characters; remove them');
  if (opts.noWhitespace && /\s/.test(value)) return bad('whitespace; remove it');
  if (value !== value.trim()) return bad('leading or trailing whitespace; remove it');
  if (opts.noComma && value.includes(',')) return bad('a comma; give each one separately');
  return undefined;
}

/** A runner label (GitHub's, and the pools' routing key): 1-256 characters, no control characters or commas. */
export function labelProblem(field: string, label: string): string | undefined {
  return textProblem(field, label, { max: 256, noComma: true, what: 'a label' });
}

/** A directory inside the guest (`runnerDir`): relative to the runner's home, or absolute; no `..` segment. */
export function guestDirProblem(field: string, value: string): string | undefined {
  const text = textProblem(field, value, { max: 255, what: 'a directory' });
  if (text) return text;
  if (value.split('/').some((segment) => segment === '..')) return `${field}: ${JSON.stringify(value)} is not a directory without ".." segments; write e.g. actions-runner`;
  return undefined;
}

/** `o[key]` as a whole number within `rule` (undefined when absent); a ConfigError naming `path.key` otherwise. */
export function optBounded(o: Obj, key: string, path: string, rule: IntRule, example?: number): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  const problem = intProblem(at(path, key), v, rule, example);
  if (problem) throw new ConfigError(problem);
  return v as number;
}

/** Throws `problem` as a ConfigError when there is one. */
export function check(problem: string | undefined): void {
  if (problem) throw new ConfigError(problem);
}
