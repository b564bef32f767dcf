/**
 * TEST AND DEMO INFRASTRUCTURE — not used against real GitHub.
 *
 * Verifies GitHub App JWTs (RS256) the way GitHub does before it issues installation tokens:
 * signature against the App's public key, `iss` = App id, `exp` in the future but at most
 * ten minutes ahead, `iat` not in the future (60 s of clock drift allowed).
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';

export class JwtError extends Error {
  override readonly name = 'JwtError';
}

export interface JwtApp {
  appId: number;
  publicKey: KeyObject;
}

const MAX_LIFETIME_S = 600;
const DRIFT_S = 60;

export function parsePublicKey(pem: string): KeyObject {
  return createPublicKey(pem);
}

function decodePart(part: string): Record<string, unknown> {
  const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
  return value as Record<string, unknown>;
}

/** Returns the App the JWT was signed by, or throws JwtError with GitHub's message. */
export function verifyAppJwt<T extends JwtApp>(token: string, apps: readonly T[], nowMs: number = Date.now()): T {
  const parts = token.split('.');
  if (parts.length !== 3) throw new JwtError('A JSON web token could not be decoded');
  let header: Record<string, unknown>;
  let payload: Record<string, unknown>;
  try {
    header = decodePart(parts[0]!);
    payload = decodePart(parts[1]!);
  } catch {
    throw new JwtError('A JSON web token could not be decoded');
  }
  if (header['alg'] !== 'RS256') throw new JwtError('A JSON web token could not be decoded');
  const app = apps.find((a) => String(a.appId) === String(payload['iss']));
  if (!app) throw new JwtError("'Issuer' claim ('iss') must be an Integer");
  const ok = verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), app.publicKey, Buffer.from(parts[2]!, 'base64url'));
  if (!ok) throw new JwtError('A JSON web token could not be decoded');
  const now = Math.floor(nowMs / 1000);
  const exp = payload['exp'];
  const iat = payload['iat'];
  if (typeof exp !== 'number' || exp <= now) {
    throw new JwtError(
      "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
    );
  }
  if (exp > now + MAX_LIFETIME_S + DRIFT_S) throw new JwtError("'Expiration time' claim ('exp') is too far in the future");
  if (typeof iat !== 'number' || iat > now + DRIFT_S) {
    throw new JwtError("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued");
  }
  return app;
}
