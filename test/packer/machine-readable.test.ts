/**
 * Packer's machine-readable output: escapes, ui lines, steps and their summaries, artifacts,
 * errors. The sample lines are what Packer 1.6.6 printed here for images/packer/qemu.
 */
import { describe, expect, it } from 'vitest';
import { MachineReadableState, parseMachineLine, stepLine, stepSummary, unescapeField } from '../../packer/machine-readable.js';

const RUN = `1796228692,,ui,say,Warning: A checksum of 'none' was specified. Since ISO files are so big%!(PACKER_COMMA)\\na checksum is highly recommended.\\n\\n  on runner.pkr.hcl line 91:\\n
1796228692,,ui,say,==> qemu.runner: Retrieving ISO
1796228692,,ui,say,==> qemu.runner: Trying /cache/base/disk.qcow2
1796228692,,ui,say,==> qemu.runner: Creating required virtual machine disks
1796228692,,ui,say,==> qemu.runner: Found port for communicator (SSH%!(PACKER_COMMA) WinRM%!(PACKER_COMMA) etc): 2763.
1796228692,,ui,say,==> qemu.runner: Starting VM%!(PACKER_COMMA) booting disk image
1796228692,,ui,message,    qemu.runner: The VM will be run headless%!(PACKER_COMMA) without a GUI. If you want to\\n    qemu.runner: view the screen of the VM%!(PACKER_COMMA) connect via VNC without a password to\\n    qemu.runner: vnc://127.0.0.1:34
1796228704,,ui,say,==> qemu.runner: Waiting for SSH to become available...
1796228736,,ui,say,==> qemu.runner: Connected to SSH!
1796228736,,ui,say,==> qemu.runner: Provisioning with shell script: /tmp/packer-shell1228641519
1796228738,,ui,say,==> qemu.runner: Provisioning with shell script: /work/images/packer/qemu//scrub.sh
1796228742,,ui,say,==> qemu.runner: Gracefully halting virtual machine...
1796228746,,ui,say,Build 'qemu.runner' finished after 53 seconds 677 milliseconds.
1796228746,,ui,say,\\n==> Wait completed after 53 seconds 678 milliseconds
1796228746,,ui,say,\\n==> Builds finished. The artifacts of successful builds are:
1796228746,qemu.runner,artifact-count,1
1796228746,qemu.runner,artifact,0,builder-id,transcend.qemu
1796228746,qemu.runner,artifact,0,id,VM
1796228746,qemu.runner,artifact,0,string,VM files in directory: /b/output
1796228746,qemu.runner,artifact,0,files-count,2
1796228746,qemu.runner,artifact,0,file,0,/b/output/disk.qcow2
1796228746,qemu.runner,artifact,0,file,1,/b/output/odd%!(PACKER_COMMA)name
1796228746,qemu.runner,artifact,0,end
1796228746,,ui,say,--> qemu.runner: VM files in directory: /b/output`;

function fold(text: string) {
  const state = new MachineReadableState();
  const lines: Array<{ level: string; text: string }> = [];
  for (const raw of text.split('\n')) {
    const rec = parseMachineLine(raw);
    if (rec) lines.push(...state.add(rec, 1000).lines);
  }
  return { state, lines };
}

describe('machine-readable records', () => {
  it('splits timestamp, target, type and data; unescapes commas, newlines and carriage returns', () => {
    expect(parseMachineLine('1796228746,qemu.runner,artifact,0,file,0,/b/a%!(PACKER_COMMA)b')).toEqual({
      timestamp: 1796228746,
      target: 'qemu.runner',
      type: 'artifact',
      data: ['0', 'file', '0', '/b/a,b'],
    });
    expect(unescapeField('a\\nb\\rc%!(PACKER_COMMA)d')).toBe('a\nb\rc,d');
    expect(parseMachineLine('1,,ui,error,Build failed\\n* x%!(PACKER_COMMA) y\r')?.data).toEqual(['error', 'Build failed\n* x, y']);
  });

  it('is not fooled by plain text, blank lines or a missing type', () => {
    expect(parseMachineLine('')).toBeUndefined();
    expect(parseMachineLine('==> qemu: Waiting for SSH')).toBeUndefined();
    expect(parseMachineLine('panic: runtime error, index out of range')).toBeUndefined();
    expect(parseMachineLine('12,,')).toBeUndefined();
  });

  it('turns ui records into text lines, one per line of a multi-line message', () => {
    const { lines } = fold(RUN);
    expect(lines.map((l) => l.text)).toContain('    qemu.runner: view the screen of the VM, connect via VNC without a password to');
    expect(lines.find((l) => l.text.startsWith('Warning'))?.text).toBe("Warning: A checksum of 'none' was specified. Since ISO files are so big,");
    expect(lines.every((l) => l.text.trim() !== '')).toBe(true);
    expect(lines.filter((l) => l.level === 'message')).toHaveLength(3);
  });

  it('takes every "==> builder: …" say line as a step, in order, and nothing else', () => {
    const { state } = fold(RUN);
    expect(state.steps.map((s) => s.step)).toEqual([
      'Retrieving base image',
      'Retrieving base image',
      'Creating disk',
      'Found a free port',
      'Starting VM',
      'Waiting for SSH',
      'Connected to SSH',
      'Provisioning with shell script',
      'Provisioning with shell script',
      'Gracefully halting virtual machine',
    ]);
    expect(state.steps.map((s) => s.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(new Set(state.steps.map((s) => s.builder))).toEqual(new Set(['qemu.runner']));
    expect(state.steps[0]!.at).toBe(1000);
  });

  it('folds artifact records into builder, id and files', () => {
    const { state } = fold(RUN);
    expect(state.artifactList()).toEqual([{ builder: 'qemu.runner', id: 'VM', files: ['/b/output/disk.qcow2', '/b/output/odd,name'] }]);
  });

  it('keeps error lines with their level', () => {
    const { lines, state } = fold(
      [
        "1796228800,,ui,error,Build 'qemu.runner' errored after 2 minutes: Timeout waiting for SSH.",
        "1796228800,,ui,error,\\n==> Some builds didn't complete successfully and had errors:\\n--> qemu.runner: Timeout waiting for SSH.",
        '1796228800,,error-count,1',
      ].join('\n'),
    );
    expect(lines.filter((l) => l.level === 'error').map((l) => l.text)).toEqual([
      "Build 'qemu.runner' errored after 2 minutes: Timeout waiting for SSH.",
      "==> Some builds didn't complete successfully and had errors:",
      '--> qemu.runner: Timeout waiting for SSH.',
    ]);
    expect(state.steps).toEqual([]);
  });
});

describe('step summaries', () => {
  it('maps the wordings that vary to stable labels', () => {
    expect(stepSummary('Waiting for SSH to become available...')).toBe('Waiting for SSH');
    expect(stepSummary('Provisioning with shell script: /tmp/packer-shell1')).toBe('Provisioning with shell script');
    expect(stepSummary('Gracefully halting virtual machine...')).toBe('Gracefully halting virtual machine');
    expect(stepSummary('Found port for communicator (SSH, WinRM, etc): 2763.')).toBe('Found a free port');
    expect(stepSummary('Looking for available port between 5900 and 6000 on 127.0.0.1')).toBe('Looking for a free port');
    expect(stepSummary('Starting VM, booting disk image')).toBe('Starting VM');
    expect(stepSummary('Uploading ./x => /tmp/x')).toBe('Uploading files');
    expect(stepSummary('/cache/base/disk.qcow2 => /cache/base/disk.qcow2')).toBe('Retrieving base image');
    expect(stepSummary('Connecting to VM via VNC (127.0.0.1:5997)')).toBe('Connecting to VM via VNC');
  });

  it('keeps the first clause of anything else, without trailing dots', () => {
    expect(stepSummary('Waiting 10s for boot...')).toBe('Waiting 10s for boot');
    expect(stepSummary('Deleting disk: /x/y.qcow2')).toBe('Deleting disk');
    expect(stepSummary('Something new.\nsecond line')).toBe('Something new');
  });

  it('recognises step lines by the "==> builder: " prefix only', () => {
    expect(stepLine('==> tart-cli.runner: Cloning virtual machine...')).toEqual({ builder: 'tart-cli.runner', text: 'Cloning virtual machine...' });
    expect(stepLine('\n==> Wait completed after 53 seconds')).toBeUndefined();
    expect(stepLine('    qemu.runner: output')).toBeUndefined();
    expect(stepLine('--> qemu.runner: VM files in directory: /b')).toBeUndefined();
  });
});
