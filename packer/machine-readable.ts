/**
 * Packer's `-machine-readable` output, parsed. Every stdout line is
 * `timestamp,target,type,data...`; inside the data fields Packer writes a comma as
 * `%!(PACKER_COMMA)`, a newline as `\n` and a carriage return as `\r` (two characters each).
 *
 * What Ekiden reads from it:
 * - `ui` records (`say`, `message`, `error`): the human output, one entry per text line;
 * - steps: a `say` record of the form `==> <builder>: <text>` (one per builder step, e.g.
 *   `==> qemu.runner: Waiting for SSH to become available...`), summarised by `stepSummary`;
 * - `artifact` records, folded into `{ builder, id, files }` per artifact.
 * Pure functions and a small accumulator; no I/O.
 */

export interface MachineRecord {
  /** Unix seconds as Packer printed them (0 when unparsable). */
  timestamp: number;
  /** Builder name (e.g. `qemu.runner`) or empty for global records. */
  target: string;
  type: string;
  /** Data fields, unescaped. */
  data: string[];
}

export interface PackerStep {
  builder: string;
  /** Short human label, e.g. "Waiting for SSH", "Provisioning with shell script". */
  step: string;
  /** 0-based position of the step in the build. */
  index: number;
  /** ms since the epoch when the step was seen. */
  at: number;
}

export interface PackerArtifact {
  builder: string;
  id: string;
  files: string[];
}

export type UiLevel = 'say' | 'message' | 'error';

/** Undoes Packer's escaping of one data field. */
export function unescapeField(field: string): string {
  return field.replace(/\\n/g, '\n').replace(/\\r/g, '\r').replace(/%!\(PACKER_COMMA\)/g, ',');
}

/** One machine-readable line, or undefined when the line is not one (plain text, blank). */
export function parseMachineLine(line: string): MachineRecord | undefined {
  const text = line.endsWith('\r') ? line.slice(0, -1) : line;
  const parts = text.split(',');
  if (parts.length < 3 || !/^\d+$/.test(parts[0]!) || parts[2] === '') return undefined;
  return {
    timestamp: Number(parts[0]),
    target: parts[1]!,
    type: parts[2]!,
    data: parts.slice(3).map(unescapeField),
  };
}

const STEP_LINE = /^==> ([A-Za-z0-9_.-]+): (.+)$/s;

/** The builder and text of a `==> builder: text` say line. */
export function stepLine(text: string): { builder: string; text: string } | undefined {
  const m = STEP_LINE.exec(text.trim());
  return m ? { builder: m[1]!, text: m[2]!.trim() } : undefined;
}

/** Say texts whose wording varies (ports, paths, counts) mapped to a stable label. */
const STEP_LABELS: Array<[RegExp, string]> = [
  [/^Waiting for SSH/i, 'Waiting for SSH'],
  [/^Waiting for WinRM/i, 'Waiting for WinRM'],
  [/^Connected to SSH/i, 'Connected to SSH'],
  [/^Provisioning with shell script/i, 'Provisioning with shell script'],
  [/^Provisioning with (\S+)/i, 'Provisioning'],
  [/^Uploading /i, 'Uploading files'],
  [/^Gracefully halting/i, 'Gracefully halting virtual machine'],
  [/^Forcibly halting|^Halting/i, 'Halting virtual machine'],
  [/^Starting VM/i, 'Starting VM'],
  [/^Looking for available (communicator|port)/i, 'Looking for a free port'],
  [/^Found (available )?port/i, 'Found a free port'],
  [/^Retrieving (ISO|disk image)/i, 'Retrieving base image'],
  [/^Trying /i, 'Retrieving base image'],
  [/^\S+ => \S+$/, 'Retrieving base image'],
  [/^Connecting to VM via VNC/i, 'Connecting to VM via VNC'],
  [/^Creating (hard drive|required virtual machine disks)/i, 'Creating disk'],
  [/^Copying hard drive/i, 'Copying disk'],
  [/^Converting hard drive/i, 'Converting disk'],
  [/^Overriding default Qemu arguments/i, 'Preparing QEMU arguments'],
  [/^Deleting output directory/i, 'Deleting output'],
  [/^Running post-processor/i, 'Running post-processor'],
  [/^Pausing/i, 'Pausing'],
];

/**
 * A short, stable label for a step's say text: a known wording gets its label, anything else
 * its first clause (up to a colon or the first line), without a trailing "..." or ".".
 */
export function stepSummary(text: string): string {
  const first = text.trim().split('\n')[0]!.trim();
  for (const [re, label] of STEP_LABELS) if (re.test(first)) return label;
  const clause = first.split(/: /)[0]!;
  return clause.replace(/(\.\.\.|…|\.)+$/, '').trim() || first;
}

/** Folds the records of one run: ui lines, steps and artifacts, in order. */
export class MachineReadableState {
  readonly steps: PackerStep[] = [];
  private readonly artifacts = new Map<string, { builder: string; id: string; files: string[] }>();
  private artifactOrder: string[] = [];

  /**
   * Takes one record; returns the ui text lines it carried (for the log) and the step it
   * started, if any.
   */
  add(rec: MachineRecord, now = Date.now()): { lines: Array<{ level: UiLevel; text: string }>; step?: PackerStep } {
    if (rec.type === 'ui') {
      const first = rec.data[0];
      if (first !== 'say' && first !== 'message' && first !== 'error') return { lines: [] };
      const level: UiLevel = first;
      const text = rec.data.slice(1).join(',');
      const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '').map((l) => ({ level, text: l }));
      if (level !== 'say') return { lines };
      const s = stepLine(text);
      if (!s) return { lines };
      const step: PackerStep = { builder: s.builder, step: stepSummary(s.text), index: this.steps.length, at: now };
      this.steps.push(step);
      return { lines, step };
    }
    if (rec.type === 'artifact') this.addArtifact(rec);
    return { lines: [] };
  }

  private addArtifact(rec: MachineRecord): void {
    const [index, field, ...rest] = rec.data;
    if (index === undefined || field === undefined) return;
    const key = `${rec.target}\0${index}`;
    let a = this.artifacts.get(key);
    if (!a) {
      a = { builder: rec.target, id: '', files: [] };
      this.artifacts.set(key, a);
      this.artifactOrder.push(key);
    }
    if (field === 'id') a.id = rest.join(',');
    else if (field === 'file' && rest.length >= 2) a.files[Number(rest[0])] = rest.slice(1).join(',');
  }

  /** Artifacts reported so far, in the order Packer announced them. */
  artifactList(): PackerArtifact[] {
    return this.artifactOrder.map((k) => {
      const a = this.artifacts.get(k)!;
      return { builder: a.builder, id: a.id, files: a.files.filter((f) => f !== undefined) };
    });
  }
}
