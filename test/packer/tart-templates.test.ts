/**
 * The Tart Packer templates (images/packer/tart) cannot run here (packer-plugin-tart needs
 * Packer >= 1.7 and a Mac), so they are checked statically:
 * - every attribute of a `source "tart-cli"` block is one the plugin documents;
 * - every attribute of a `provisioner "shell"` block is one Packer's shell provisioner has;
 * - `packer fmt -check` accepts them (Packer 1.6.6 formats HCL2; skipped without packer);
 * - no template or helper file under images/packer contains anything secret-looking.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TART_DIR = path.join(REPO, 'images', 'packer', 'tart');
const PACKER_DIR = path.join(REPO, 'images', 'packer');

/**
 * Fields of the `tart-cli` builder: its Config in packer-plugin-tart
 * (builder/tart/builder.go, documented in docs/builders/tart.mdx of
 * github.com/cirruslabs/packer-plugin-tart), plus the Packer SDK configs it squashes in:
 * bootcommand.VNCConfig, commonsteps.HTTPConfig and the SSH part of communicator.Config.
 */
const TART_CLI_FIELDS = new Set([
  // tart-cli's own
  'from_ipsw', 'from_iso', 'vm_base_name', 'vm_name', 'allow_insecure', 'always_pull', 'pull_concurrency',
  'cpu_count', 'create_grace_time', 'disk_size_gb', 'disk_format', 'recovery_partition', 'display', 'headless',
  'memory_gb', 'recovery', 'rosetta', 'run_extra_args', 'ip_extra_args',
  // VNCConfig (boot commands)
  'boot_command', 'boot_wait', 'boot_key_interval', 'boot_keygroup_interval', 'disable_vnc',
  // HTTPConfig
  'http_directory', 'http_content', 'http_port_min', 'http_port_max', 'http_bind_address', 'http_interface',
  // communicator.Config (SSH)
  'communicator', 'pause_before_connecting', 'ssh_host', 'ssh_port', 'ssh_username', 'ssh_password',
  'ssh_private_key_file', 'ssh_timeout', 'ssh_handshake_attempts', 'ssh_pty', 'ssh_keep_alive_interval',
  'ssh_read_write_timeout', 'ssh_file_transfer_method', 'ssh_clear_authorized_keys', 'ssh_disable_agent_forwarding',
  'temporary_key_pair_type', 'temporary_key_pair_bits',
]);

/** Packer's shell provisioner (packer.io/docs/provisioners/shell). */
const SHELL_PROVISIONER_FIELDS = new Set([
  'inline', 'inline_shebang', 'script', 'scripts', 'environment_vars', 'env', 'env_var_format', 'execute_command',
  'expect_disconnect', 'remote_folder', 'remote_file', 'remote_path', 'skip_clean', 'start_retry_timeout',
  'pause_before', 'pause_after', 'max_retries', 'timeout', 'valid_exit_codes', 'binary', 'only', 'except',
]);

/** The attribute names directly inside each `<kind> "<type>" …{` block of an HCL file. */
function blockAttributes(hcl: string, kind: string, type: string): string[][] {
  const blocks: string[][] = [];
  const lines = hcl.split('\n');
  const opener = new RegExp(`^\\s*${kind}\\s+"${type}"(\\s+"[^"]*")?\\s*\\{\\s*$`);
  for (let i = 0; i < lines.length; i++) {
    if (!opener.test(lines[i]!)) continue;
    const attrs: string[] = [];
    let depth = 1;
    for (let j = i + 1; j < lines.length && depth > 0; j++) {
      const line = lines[j]!.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/#.*$/, '');
      const m = /^\s*([a-z_][a-z0-9_]*)\s*=/.exec(line);
      if (depth === 1 && m) attrs.push(m[1]!);
      depth += (line.match(/[{[(]/g) ?? []).length - (line.match(/[}\])]/g) ?? []).length;
    }
    blocks.push(attrs);
  }
  return blocks;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

const templates = ['base.pkr.hcl', 'runner.pkr.hcl'].map((f) => path.join(TART_DIR, f));

describe('Tart Packer templates', () => {
  it('exist and build from Cirrus Labs vanilla macOS (base) and the base image (runner)', () => {
    for (const t of templates) expect(existsSync(t), t).toBe(true);
    const base = readFileSync(templates[0]!, 'utf8');
    expect(base).toMatch(/source\s*=\s*"github\.com\/cirruslabs\/tart"/);
    expect(base).toMatch(/version\s*=\s*">= 1\.12\.0"/);
    expect(base).toContain('ghcr.io/cirruslabs/macos-sequoia-vanilla:latest');
    const runner = readFileSync(templates[1]!, 'utf8');
    expect(runner).toMatch(/default\s*=\s*"ekiden-macos-base"/);
    expect(readFileSync(path.join(TART_DIR, 'install-runner.sh'), 'utf8')).toContain('$HOME/actions-runner');
  });

  it('use only fields the tart-cli builder and the shell provisioner document', () => {
    let sources = 0;
    for (const t of templates) {
      const hcl = readFileSync(t, 'utf8');
      for (const attrs of blockAttributes(hcl, 'source', 'tart-cli')) {
        sources++;
        expect(attrs.filter((a) => !TART_CLI_FIELDS.has(a)), `${path.basename(t)}: unknown tart-cli fields`).toEqual([]);
        expect(attrs).toContain('vm_name');
        expect(attrs).toContain('vm_base_name');
      }
      for (const attrs of blockAttributes(hcl, 'provisioner', 'shell')) {
        expect(attrs.filter((a) => !SHELL_PROVISIONER_FIELDS.has(a)), `${path.basename(t)}: unknown shell provisioner fields`).toEqual([]);
      }
    }
    expect(sources).toBe(2);
  });

  it('reference only helper scripts that exist', () => {
    for (const t of templates) {
      for (const m of readFileSync(t, 'utf8').matchAll(/\$\{path\.root\}\/([A-Za-z0-9._-]+)/g)) {
        expect(existsSync(path.join(TART_DIR, m[1]!)), `${path.basename(t)} → ${m[1]}`).toBe(true);
      }
    }
  });

  const packer = (process.env.PATH ?? '').split(':').filter(Boolean).map((dir) => path.join(dir, 'packer')).find((p) => existsSync(p));
  it.skipIf(!packer)(`are formatted as packer fmt wants them${packer ? '' : ' — skipped: packer not installed (apt-get install packer)'}`, () => {
    for (const dir of [TART_DIR, path.join(PACKER_DIR, 'qemu')]) {
      // exit 0: nothing to reformat; 3: files differ (listed on stdout).
      expect(() => execFileSync(packer!, ['fmt', '-check', dir], { encoding: 'utf8', env: { ...process.env, CHECKPOINT_DISABLE: '1' } }), dir).not.toThrow();
    }
  });

  it('contain nothing secret-looking (keys, tokens, passwords other than the images\' documented admin/admin)', () => {
    const SECRET = [
      /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
      /\bgh[pousr]_[A-Za-z0-9]{20,}/,
      /\bgithub_pat_[A-Za-z0-9_]{20,}/,
      /\bAKIA[0-9A-Z]{16}\b/,
      /--token\s+["']?[A-Za-z0-9]/,
      /\b(token|secret|api_key|access_key|private_key)\s*=\s*"[^"$]+"/i,
      /\b(password|passwd)\s*=\s*"(?!admin")[^"]*"/i,
      /ACTIONS_RUNNER_INPUT_(TOKEN|JITCONFIG)\s*=/,
      /\b[A-Za-z0-9+/]{60,}={0,2}(?![A-Za-z0-9+/])/,
    ];
    const files = filesUnder(PACKER_DIR);
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      for (const re of SECRET) expect(re.test(text), `${path.relative(REPO, f)} matches ${re}`).toBe(false);
    }
  });
});
