/**
 * Processes the test run left behind. Every test makes its files under a temporary directory
 * named `ekiden-…`, and every process a test starts (dev servers, fake guests, QEMU VMs, tart
 * doubles, `ekiden` commands, emulators, receivers) names such a directory or an Ekiden script
 * on its command line. A process like that which started during the run and is still alive
 * after it is a leak: the suite fails and names it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Clock ticks since boot, the unit of /proc/<pid>/stat's start time (Linux USER_HZ is 100). */
export function nowTicks(): number {
  return Math.floor(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100);
}

const MARKERS = [join(tmpdir(), 'ekiden-'), 'fake-guest.js', 'bin/ekiden.js', 'emulator/github/main.js', 'tart-double', 'temporal server start-dev'];

export interface Stray {
  pid: number;
  cmdline: string;
}

/** Live processes started at or after `sinceTicks` whose command line marks them as the suite's. */
export function strays(sinceTicks: number): Stray[] {
  const out: Stray[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' || fields[0] === 'X') continue;
      if (Number(fields[19]) < sinceTicks) continue; // field 22 of stat: start time
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (MARKERS.some((m) => cmdline.includes(m))) out.push({ pid, cmdline });
    } catch {
      // ended meanwhile
    }
  }
  return out;
}
