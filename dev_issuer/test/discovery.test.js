import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { startTestIssuer } from './helpers.js';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

describe('discovery and JWKS', () => {
  let issuer;
  before(async () => {
    issuer = await startTestIssuer();
  });
  after(() => issuer.close());

  it("publishes Logto's endpoints under /oidc", async () => {
    const response = await fetch(`${issuer.issuer}/.well-known/openid-configuration`);
    assert.equal(response.status, 200);
    const metadata = await response.json();
    const base = issuer.issuer;
    assert.equal(metadata.issuer, base);
    assert.equal(metadata.authorization_endpoint, `${base}/auth`);
    assert.equal(metadata.token_endpoint, `${base}/token`);
    assert.equal(metadata.userinfo_endpoint, `${base}/me`);
    assert.equal(metadata.jwks_uri, `${base}/jwks`);
    assert.equal(metadata.end_session_endpoint, `${base}/session/end`);
    assert.equal(metadata.revocation_endpoint, `${base}/token/revocation`);
    assert.equal(metadata.introspection_endpoint, `${base}/token/introspection`);
    assert.ok(metadata.id_token_signing_alg_values_supported.includes('ES384'));
    assert.ok(metadata.scopes_supported.includes('urn:logto:scope:organizations'));
    assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
  });

  it('answers the JWKS with no-cache headers and an ETag', async () => {
    const response = await fetch(`${issuer.issuer}/jwks`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('cache-control'), 'no-cache, max-age=0, must-revalidate');
    assert.match(response.headers.get('etag'), /^"[\da-f]+-[\w+/]+"$/);
    const { keys } = await response.json();
    assert.equal(keys.length, 1);
    assert.deepEqual(
      [keys[0].kty, keys[0].crv, keys[0].alg, keys[0].use, keys[0].kid],
      ['EC', 'P-384', 'ES384', 'sig', issuer.keyRing.current.kid],
    );
    assert.equal(keys[0].d, undefined);
  });

  // fetch() adds `Cache-Control: no-cache` to any request carrying If-None-Match unless the
  // request sets Cache-Control itself; an HTTP client such as httpx adds nothing.
  const conditional = (etag, cacheControl = 'max-age=0') => ({
    headers: { 'if-none-match': etag, 'cache-control': cacheControl },
  });

  it('answers 304 to If-None-Match with the current ETag, 200 to a stale one', async () => {
    const first = await fetch(`${issuer.issuer}/jwks`);
    const etag = first.headers.get('etag');
    const again = await fetch(`${issuer.issuer}/jwks`, conditional(etag));
    assert.equal(again.status, 304);
    assert.equal(again.headers.get('etag'), etag);
    assert.equal(again.headers.get('cache-control'), 'no-cache, max-age=0, must-revalidate');
    assert.equal(await again.text(), '');
    const stale = await fetch(`${issuer.issuer}/jwks`, conditional('"0-stale"'));
    assert.equal(stale.status, 200);
  });

  it('answers 200 to a conditional request that also says Cache-Control: no-cache (koa fresh, as Logto)', async () => {
    const etag = (await fetch(`${issuer.issuer}/jwks`)).headers.get('etag');
    const reload = await fetch(`${issuer.issuer}/jwks`, conditional(etag, 'no-cache'));
    assert.equal(reload.status, 200);
  });

  it('gives the discovery document an ETag too (Logto ETags every JSON GET)', async () => {
    const url = `${issuer.issuer}/.well-known/openid-configuration`;
    const etag = (await fetch(url)).headers.get('etag');
    assert.ok(etag);
    assert.equal((await fetch(url, conditional(etag))).status, 304);
  });

  it('listens on the loopback address only', () => {
    assert.equal(issuer.server.address().address, '127.0.0.1');
  });

  it('answers unknown paths with 404 JSON', async () => {
    const response = await fetch(`${issuer.issuer.replace(/\/oidc$/, '')}/nope`);
    assert.equal(response.status, 404);
    assert.deepEqual(await response.json(), { error: 'not_found' });
  });
});

describe('a configured base URL', () => {
  it('sets the issuer to <base-url>/oidc while the endpoints follow the request host', async () => {
    const issuer = await startTestIssuer({ baseUrl: 'http://issuer.test' });
    try {
      const local = `http://127.0.0.1:${issuer.port}/oidc`;
      const metadata = await (await fetch(`${local}/.well-known/openid-configuration`)).json();
      assert.equal(metadata.issuer, 'http://issuer.test/oidc');
      assert.equal(metadata.jwks_uri, `${local}/jwks`);
    } finally {
      await issuer.close();
    }
  });
});

describe('the command line', () => {
  it('prints one JSON ready line and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [MAIN, '--port', '0', '--alg', 'RS256'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let buffered = '';
      child.stdout.setEncoding('utf8');
      while (!buffered.includes('\n')) {
        const [chunk] = await once(child.stdout, 'data');
        buffered += chunk;
      }
      const ready = JSON.parse(buffered.split('\n')[0]);
      assert.equal(ready.event, 'ready');
      assert.equal(ready.alg, 'RS256');
      assert.equal(ready.issuer, `http://127.0.0.1:${ready.port}/oidc`);
      assert.equal(ready.endpoint, `http://127.0.0.1:${ready.port}`);
      assert.deepEqual(ready.users.map((u) => `${u.username}/${u.password}`),
        ['alice/alice-password', 'bob/bob-password', 'carol/carol-password', 'dave/dave-password']);
      const { keys } = await (await fetch(`${ready.issuer}/jwks`)).json();
      assert.equal(keys[0].kty, 'RSA');
      assert.equal(keys[0].alg, undefined, 'RSA keys carry no alg, as in Logto');
      // Not in development mode: no control endpoint.
      const rotate = await fetch(`${ready.endpoint}/dev/rotate-keys`, { method: 'POST', headers: { 'X-Dev-Issuer': 'rotate' } });
      assert.equal(rotate.status, 404);
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  });

  it('exits 2 with the usage on a bad flag', async () => {
    const child = spawn(process.execPath, [MAIN, '--alg', 'HS256'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    const [code] = await once(child, 'exit');
    assert.equal(code, 2);
    assert.match(stderr, /--alg must be ES384 or RS256/);
    assert.match(stderr, /Usage:/);
  });
});
