/**
 * bench:fleet's measuring instruments: CPU time of this process, of the dev server and of
 * the fake VMs it reaped (/proc), the machine's busy share (/proc/stat), the live fake-guest
 * processes, history event types, and the rounding and percentiles of the report.
 */
import type { temporal } from '@temporalio/proto';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { GUEST_FLAG } from '../../drivers/fake-procs.js';

export type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
export const r0 = (n: number) => (Number.isFinite(n) ? Math.round(n) : null);
export const r1 = (n: number) => (Number.isFinite(n) ? Math.round(n * 10) / 10 : null);
export const r2 = (n: number) => (Number.isFinite(n) ? Math.round(n * 100) / 100 : null);
export const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? r2(a / b) : null);
export const fmt = (n: number | null, unit = '') => (n === null ? 'n/a' : `${n}${unit}`);

// ───────────────────────────── CPU accounting ─────────────────────────────

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // Linux's usual USER_HZ
}

/** utime, stime, cutime, cstime of a process, in ms. */
function procTimes(pid: number | 'self'): { self: number; children: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is f[0]; utime f[11], stime f[12], cutime f[13], cstime f[14].
    const ms = (i: number) => (Number(f[i]) * 1000) / clockTicks;
    return { self: ms(11) + ms(12), children: ms(13) + ms(14) };
  } catch {
    return undefined;
  }
}

/** Busy and total jiffies of the whole machine. */
function machineTimes(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

export interface CpuSnapshot {
  at: number;
  wall: number;
  process: NodeJS.CpuUsage;
  server?: number;
  reaped?: number;
  machine?: { busy: number; total: number };
}

export function cpuSnapshot(serverPid: number): CpuSnapshot {
  return {
    at: performance.now(),
    wall: Date.now(),
    process: process.cpuUsage(),
    server: procTimes(serverPid)?.self,
    reaped: procTimes('self')?.children,
    machine: machineTimes(),
  };
}

// ───────────────────────────── fake VM processes ─────────────────────────────

/** Live fake-guest processes serving a VM under `dir` (zombies excluded). */
export function guestPidsUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const at = argv.indexOf(GUEST_FLAG);
      if (at < 0 || !(argv[at + 1] ?? '').startsWith(dir)) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state !== 'Z' && state !== 'X') pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

// ───────────────────────────── histories ─────────────────────────────

/** An event's type, from the one `…EventAttributes` field it carries (activityTaskScheduled, …). */
export function eventTypeOf(e: HistoryEvent): string {
  for (const [k, v] of Object.entries(e)) {
    if (k.endsWith('EventAttributes') && v) return k.slice(0, -'EventAttributes'.length);
  }
  return String(e.eventType ?? 'unknown');
}
