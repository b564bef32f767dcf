import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { hostKeyFingerprint } from '../../ssh/client.js';
import { generateSshKeyPair } from '../../ssh/keys.js';

describe('generateSshKeyPair', () => {
  it('only returns keys that parse (ssh2 alone gets ~1 in 256 wrong)', () => {
    for (let i = 0; i < 1_500; i++) {
      const pair = generateSshKeyPair();
      const pub = ssh2.utils.parseKey(pair.publicKey);
      expect(pub).not.toBeInstanceOf(Error);
      expect(ssh2.utils.parseKey(pair.privateKey)).not.toBeInstanceOf(Error);
      expect(pair.fingerprint).toBe(hostKeyFingerprint((pub as ssh2.ParsedKey).getPublicSSH()));
    }
  });
});
