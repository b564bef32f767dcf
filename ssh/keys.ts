/**
 * SSH key pairs for guests (host keys, per-VM client keys), in OpenSSH formats.
 */
import ssh2 from 'ssh2';
import { hostKeyFingerprint } from './client.js';

export interface SshKeyPair {
  /** OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`). */
  privateKey: string;
  /** `ssh-ed25519 AAAA…` line. */
  publicKey: string;
  /** `SHA256:…` of the public key blob, as OpenSSH prints it. */
  fingerprint: string;
}

/**
 * A fresh ed25519 key pair. ssh2 1.17's generateKeyPairSync drops a leading zero byte of the
 * public key about once in 256 keys, producing keys nothing can parse; those are discarded.
 */
export function generateSshKeyPair(opts: { comment?: string } = {}): SshKeyPair {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', opts.comment === undefined ? {} : { comment: opts.comment });
    const pub = ssh2.utils.parseKey(pair.public);
    const priv = ssh2.utils.parseKey(pair.private);
    if (pub instanceof Error || priv instanceof Error) continue;
    return { privateKey: pair.private, publicKey: pair.public, fingerprint: hostKeyFingerprint(pub.getPublicSSH()) };
  }
  throw new Error('could not generate a well-formed ed25519 key pair');
}
