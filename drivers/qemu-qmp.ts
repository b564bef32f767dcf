/**
 * A minimal QMP client: one connection per command (greeting, qmp_capabilities, the command),
 * for the few commands the QEMU driver needs (system_powerdown, quit, query-status).
 */
import net from 'node:net';

export class QmpError extends Error {
  override readonly name = 'QmpError';
}

/**
 * Runs one QMP command and resolves to its `return` value. Rejects with a QmpError on a
 * connection failure, an `error` reply or after `timeoutMs`. For `quit`, QEMU may close the
 * socket before replying: a close after the command was sent counts as success.
 */
export function qmpCommand(socketPath: string, command: string, args?: Record<string, unknown>, timeoutMs = 5_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path: socketPath });
    let buf = '';
    let stage: 'greeting' | 'capabilities' | 'command' = 'greeting';
    let sent = false;
    let settled = false;
    const finish = (err: Error | undefined, value?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => finish(new QmpError(`QMP ${command}: no answer within ${timeoutMs} ms`)), timeoutMs);
    const send = (msg: object) => sock.write(`${JSON.stringify(msg)}\n`);
    sock.setEncoding('utf8');
    sock.on('error', (err) => finish(new QmpError(`QMP ${command}: ${err.message}`, { cause: err })));
    sock.on('close', () => {
      if (sent && command === 'quit') finish(undefined, {});
      else finish(new QmpError(`QMP ${command}: connection closed`));
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let msg: { QMP?: unknown; return?: unknown; error?: { class?: string; desc?: string }; event?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          finish(new QmpError(`QMP ${command}: unparsable message`));
          return;
        }
        if (msg.event !== undefined) continue; // asynchronous events interleave with replies
        if (stage === 'greeting') {
          if (msg.QMP === undefined) return finish(new QmpError(`QMP ${command}: no greeting`));
          stage = 'capabilities';
          send({ execute: 'qmp_capabilities' });
        } else if (msg.error) {
          finish(new QmpError(`QMP ${stage === 'command' ? command : 'qmp_capabilities'}: ${msg.error.class ?? 'error'}: ${msg.error.desc ?? ''}`));
        } else if (stage === 'capabilities') {
          stage = 'command';
          sent = true;
          send(args ? { execute: command, arguments: args } : { execute: command });
        } else {
          finish(undefined, msg.return);
        }
      }
    });
  });
}
