/**
 * TEST AND DEMO INFRASTRUCTURE. The host side of an SSH `exec` request in the stand-in guests
 * that run commands as plain host processes (drivers/fake-guest.ts, the tart test double in
 * test/doubles/tart): the channel's data goes to the command's stdin, its stdout and stderr go
 * back, and its end becomes the channel's exit status or signal, as sshd reports them.
 *
 * Type imports only: it runs from transpiled copies, like its two users.
 */
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { ServerChannel } from 'ssh2';

export interface ExecBridgeOptions {
  /** Written before the message when the command cannot be started (exit 127). */
  errorPrefix: string;
  /**
   * When the channel closes first, destroy the command's pipes too (it keeps running and gets
   * EPIPE/SIGPIPE, as with sshd) instead of only unpiping them.
   */
  destroyPipesOnClose: boolean;
}

/** Connects `child` (spawned with piped stdio) to `channel` until either ends. */
export function bridgeExec(channel: ServerChannel, child: ChildProcessByStdio<Writable, Readable, Readable>, opts: ExecBridgeOptions): void {
  channel.on('error', () => {});
  child.stdin.on('error', () => {});
  channel.pipe(child.stdin);
  child.stdout.pipe(channel, { end: false });
  child.stderr.pipe(channel.stderr, { end: false });
  let channelClosed = false;
  channel.on('close', () => {
    channelClosed = true;
    child.stdout.unpipe();
    child.stderr.unpipe();
    if (opts.destroyPipesOnClose) {
      child.stdin.destroy();
      child.stdout.destroy();
      child.stderr.destroy();
    }
  });
  child.on('error', (err) => {
    if (channelClosed) return;
    channel.stderr.write(`${opts.errorPrefix}${err.message}\n`);
    channel.exit(127);
    channel.end();
  });
  child.on('close', (code, sig) => {
    if (channelClosed) return;
    if (sig) channel.exit(sig.replace(/^SIG/, ''), false, '');
    else channel.exit(code ?? 0);
    channel.end();
  });
}
