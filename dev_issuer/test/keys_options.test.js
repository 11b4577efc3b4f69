import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { calculateKid, KeyError, KeyRing } from '../src/keys.js';
import { DEFAULT_PORT, OptionsError, parseOptions } from '../src/options.js';

const directory = await mkdtemp(join(tmpdir(), 'dev-issuer-keys-'));
after(() => rm(directory, { recursive: true, force: true }));

describe('signing keys', () => {
  it('generates an ES384 key on P-384 with use, alg and a thumbprint kid', async () => {
    const ring = await KeyRing.open();
    const [jwk] = ring.publicJwks();
    assert.equal(ring.alg, 'ES384');
    assert.deepEqual([jwk.kty, jwk.crv, jwk.alg, jwk.use], ['EC', 'P-384', 'ES384', 'sig']);
    assert.equal(jwk.kid, calculateKid(jwk));
    assert.equal(jwk.d, undefined, 'the public JWKS carries no private part');
  });

  it('generates an RSA-4096 key without alg for RS256', async () => {
    const ring = await KeyRing.open({ alg: 'RS256' });
    const [jwk] = ring.publicJwks();
    assert.equal(ring.alg, 'RS256');
    assert.equal(jwk.kty, 'RSA');
    assert.equal(jwk.alg, undefined);
    assert.equal(Buffer.from(jwk.n, 'base64url').length * 8, 4096);
  });

  it('persists keys, reloads them, and keeps one previous key across rotations', async () => {
    const file = join(directory, 'keys.json');
    const ring = await KeyRing.open({ file });
    const first = ring.current.kid;
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await KeyRing.open({ file })).current.kid, first);

    await ring.rotate();
    const second = ring.current.kid;
    assert.deepEqual(ring.privateJwks().map((k) => k.kid), [second, first]);
    await ring.rotate();
    assert.deepEqual(ring.privateJwks().map((k) => k.kid), [ring.current.kid, second]);

    const reloaded = await KeyRing.open({ file });
    assert.deepEqual(reloaded.privateJwks().map((k) => k.kid), ring.privateJwks().map((k) => k.kid));
  });

  it('stages a next key that is published but signs only after the next rotation', async () => {
    const ring = await KeyRing.open();
    const current = ring.current.kid;
    await ring.stageNext();
    const next = ring.next.kid;
    assert.deepEqual(ring.privateJwks().map((k) => k.kid), [current, next]);
    await ring.rotate();
    assert.deepEqual(ring.privateJwks().map((k) => k.kid), [next, current]);
  });

  it('refuses a key file whose algorithm differs from the one asked for', async () => {
    const file = join(directory, 'es.json');
    await KeyRing.open({ file });
    await assert.rejects(KeyRing.open({ file, alg: 'RS256' }), KeyError);
  });

  it('refuses a file that is not a key file', async () => {
    const file = join(directory, 'junk.json');
    await writeFile(file, '{"hello": 1}');
    await assert.rejects(KeyRing.open({ file }), /not a dev_issuer key file/);
    assert.equal(JSON.parse(await readFile(file, 'utf8')).hello, 1, 'the file is left alone');
  });
});

describe('options', () => {
  it('has defaults', () => {
    const options = parseOptions([], {});
    assert.equal(options.port, DEFAULT_PORT);
    assert.equal(options.development, false);
    assert.equal(options.alg, undefined);
    assert.match(options.seed, /seed\.json$/);
  });

  it('reads environment variables, and flags win over them', () => {
    const env = {
      DEV_ISSUER_PORT: '4000', DEV_ISSUER_ALG: 'rs256', DEV_ISSUER_DEVELOPMENT: '1',
      DEV_ISSUER_REDIRECT_URIS: 'http://127.0.0.1:1/a, http://127.0.0.1:2/b',
    };
    const options = parseOptions(['--port', '4001', '--base-url', 'http://localhost:4001/'], env);
    assert.equal(options.port, 4001);
    assert.equal(options.alg, 'RS256');
    assert.equal(options.development, true);
    assert.equal(options.baseUrl, 'http://localhost:4001');
    assert.deepEqual(options.redirectUris, ['http://127.0.0.1:1/a', 'http://127.0.0.1:2/b']);
  });

  const refusals = [
    [['--port', 'x']],
    [['--port', '70000']],
    [['--alg', 'HS256']],
    [['--base-url', 'not a url']],
    [['--base-url', 'http://127.0.0.1:3001/tenant']],
    [['--unknown']],
  ];
  for (const [argv] of refusals) {
    it(`refuses ${argv.join(' ')}`, () => {
      assert.throws(() => parseOptions(argv, {}), OptionsError);
    });
  }
});
