/**
 * Signing keys: generated at start, or loaded from / persisted to a key file.
 *
 * Like Logto, the key set holds a current key (the one that signs), an optional staged next key
 * (published before it signs, as Logto Cloud does) and at most one previous key (kept published
 * after a rotation so tokens it signed still verify). EC keys are P-384 and carry
 * `alg: "ES384"`; RSA keys (4096 bits, as Logto's RSA rotation makes) carry no `alg`.
 */
import { createHash, generateKeyPair } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

export const SUPPORTED_ALGS = Object.freeze(['ES384', 'RS256']);
const RSA_BITS = 4096;
const KEY_FILE_VERSION = 1;

export class KeyError extends Error {}

/** The key id oidc-provider (and Logto) computes: SHA-256 over the public components. */
export const calculateKid = (jwk) => {
  const components = jwk.kty === 'RSA'
    ? { e: jwk.e, kty: 'RSA', n: jwk.n }
    : { crv: jwk.crv, kty: 'EC', x: jwk.x, y: jwk.y };
  return createHash('sha256').update(JSON.stringify(components)).digest('base64url');
};

/** The JWS algorithm a key signs with, derived from the key (never from configuration). */
export const signingAlgOf = (jwk) => {
  if (jwk.kty === 'RSA') return 'RS256';
  const byCurve = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };
  return byCurve[jwk.crv] ?? (() => { throw new KeyError(`unsupported curve ${jwk.crv}`); })();
};

/** A fresh private JWK for `alg` (ES384 on P-384, or RS256 on RSA-4096). */
export const generateSigningKey = async (alg) => {
  let privateKey;
  if (alg === 'ES384') {
    ({ privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'P-384' }));
  } else if (alg === 'RS256') {
    ({ privateKey } = await generateKeyPairAsync('rsa', { modulusLength: RSA_BITS }));
  } else {
    throw new KeyError(`unsupported algorithm ${alg} (use one of ${SUPPORTED_ALGS.join(', ')})`);
  }
  const jwk = privateKey.export({ format: 'jwk' });
  const extra = jwk.kty === 'EC' ? { alg: 'ES384' } : {};
  return { ...jwk, ...extra, use: 'sig', kid: calculateKid(jwk) };
};

const publicPart = ({ d, p, q, dp, dq, qi, ...rest }) => rest;

export class KeyRing {
  /** @param {{current: object, next?: object, previous?: object, file?: string}} state */
  constructor({ current, next, previous, file }) {
    this.current = current;
    this.next = next;
    this.previous = previous;
    this.file = file;
  }

  /**
   * Load the key file if it exists (an explicit `alg` must match its current key), otherwise
   * generate a key for `alg` (ES384 when unspecified) and write the file if one was named.
   */
  static async open({ alg, file } = {}) {
    if (file) {
      const stored = await readKeyFile(file);
      if (stored) {
        const ring = new KeyRing({ ...stored, file });
        if (alg && ring.alg !== alg) {
          throw new KeyError(`the key file ${file} holds a ${ring.alg} key but ${alg} was asked for; `
            + `remove the file or rotate with POST /dev/rotate-keys?alg=${alg} (header X-Dev-Issuer: rotate)`);
        }
        return ring;
      }
    }
    const ring = new KeyRing({ current: await generateSigningKey(alg ?? 'ES384'), file });
    await ring.save();
    return ring;
  }

  get alg() {
    return signingAlgOf(this.current);
  }

  /** Private JWKs for oidc-provider: the current (signing) key first. */
  privateJwks() {
    return [this.current, this.next, this.previous].filter(Boolean);
  }

  publicJwks() {
    return this.privateJwks().map(publicPart);
  }

  /**
   * Make the staged next key (or a new key for `alg`) the signing key; the old current key stays
   * published as the previous one, the older previous key is dropped.
   */
  async rotate({ alg } = {}) {
    const incoming = this.next && (!alg || signingAlgOf(this.next) === alg)
      ? this.next
      : await generateSigningKey(alg ?? this.alg);
    this.previous = this.current;
    this.current = incoming;
    this.next = undefined;
    await this.save();
  }

  /** Publish a next key that does not sign yet (Logto Cloud stages it before rotating). */
  async stageNext({ alg } = {}) {
    this.next = await generateSigningKey(alg ?? this.alg);
    await this.save();
  }

  summary() {
    const describe = (jwk) => jwk && { kid: jwk.kid, alg: signingAlgOf(jwk) };
    return {
      current: describe(this.current),
      next: describe(this.next) ?? null,
      previous: describe(this.previous) ?? null,
    };
  }

  async save() {
    if (!this.file) return;
    const body = JSON.stringify({
      version: KEY_FILE_VERSION,
      warning: 'development signing keys of dev_issuer; never use them anywhere else',
      current: this.current,
      next: this.next ?? null,
      previous: this.previous ?? null,
    }, null, 2);
    const temporary = `${this.file}.${process.pid}.tmp`;
    await writeFile(temporary, `${body}\n`, { mode: 0o600 });
    await rename(temporary, this.file);
  }
}

async function readKeyFile(file) {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeyError(`the key file ${file} is not JSON`);
  }
  if (parsed?.version !== KEY_FILE_VERSION || !parsed.current?.d) {
    throw new KeyError(`the key file ${file} is not a dev_issuer key file`);
  }
  for (const jwk of [parsed.current, parsed.next, parsed.previous].filter(Boolean)) {
    signingAlgOf(jwk);
    jwk.kid ??= calculateKid(jwk);
  }
  return {
    current: parsed.current,
    next: parsed.next ?? undefined,
    previous: parsed.previous ?? undefined,
  };
}
