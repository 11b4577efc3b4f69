import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import {
  decodeJwt, getJwks, refresh, SHOPPING, signIn, startTestIssuer, verifyJwt,
} from './helpers.js';

const temporary = await mkdtemp(join(tmpdir(), 'dev-issuer-rotation-'));
after(() => rm(temporary, { recursive: true, force: true }));

const endpoint = (issuer) => issuer.issuer.replace(/\/oidc$/, '');
const rotate = async (issuer, query = '', headers = { 'X-Dev-Issuer': 'rotate' }) => {
  const response = await fetch(`${endpoint(issuer)}/dev/rotate-keys${query}`, { method: 'POST', headers });
  return { status: response.status, body: await response.json(), headers: response.headers };
};
const kidOf = (token) => decodeJwt(token).header.kid;

describe('key rotation (development control endpoint)', () => {
  it('signs with the new key, keeps the old one published, and keeps sessions and tokens', async () => {
    const issuer = await startTestIssuer();
    try {
      const { tokens } = await signIn(issuer, 'bob');
      const before = (await refresh(issuer, tokens.refresh_token, { resource: SHOPPING })).body.access_token;
      const oldKid = kidOf(before);
      const etagBefore = (await fetch(`${issuer.issuer}/jwks`)).headers.get('etag');

      const { status, body } = await rotate(issuer);
      assert.equal(status, 200);
      assert.equal(body.previous.kid, oldKid);
      assert.notEqual(body.current.kid, oldKid);

      const jwks = await getJwks(issuer);
      assert.deepEqual(jwks.keys.map((k) => k.kid), [body.current.kid, oldKid]);
      assert.notEqual((await fetch(`${issuer.issuer}/jwks`)).headers.get('etag'), etagBefore);
      verifyJwt(before, jwks);

      const after = await refresh(issuer, tokens.refresh_token, { resource: SHOPPING });
      assert.equal(after.status, 200, 'the refresh token issued before the rotation still works');
      assert.equal(kidOf(after.body.access_token), body.current.kid);
      assert.equal(kidOf(after.body.id_token), body.current.kid);
      verifyJwt(after.body.access_token, jwks);

      // A second rotation drops the oldest key: at most one previous key.
      const second = await rotate(issuer);
      const jwksAfterSecond = await getJwks(issuer);
      assert.deepEqual(jwksAfterSecond.keys.map((k) => k.kid), [second.body.current.kid, body.current.kid]);
      assert.throws(() => verifyJwt(before, jwksAfterSecond), /no key/);
    } finally {
      await issuer.close();
    }
  });

  it('can stage a next key that is published before it signs', async () => {
    const issuer = await startTestIssuer();
    try {
      const current = issuer.keyRing.current.kid;
      const staged = await rotate(issuer, '?stage=true');
      const next = staged.body.next.kid;
      assert.deepEqual((await getJwks(issuer)).keys.map((k) => k.kid), [current, next]);
      const { tokens } = await signIn(issuer, 'alice');
      assert.equal(kidOf(tokens.id_token), current, 'the staged key does not sign yet');
      const promoted = await rotate(issuer);
      assert.equal(promoted.body.current.kid, next);
      assert.equal(promoted.body.previous.kid, current);
    } finally {
      await issuer.close();
    }
  });

  it('can rotate to an RSA key, after which tokens are RS256', async () => {
    const issuer = await startTestIssuer();
    try {
      const { body } = await rotate(issuer, '?alg=RS256');
      assert.equal(body.current.alg, 'RS256');
      assert.equal(body.previous.alg, 'ES384');
      const { tokens } = await signIn(issuer, 'bob');
      assert.equal(decodeJwt(tokens.id_token).header.alg, 'RS256');
      const { body: refreshed } = await refresh(issuer, tokens.refresh_token, { resource: SHOPPING });
      const { header } = decodeJwt(refreshed.access_token);
      assert.deepEqual([header.alg, header.typ, header.kid], ['RS256', 'at+jwt', body.current.kid]);
      verifyJwt(refreshed.access_token, await getJwks(issuer));
    } finally {
      await issuer.close();
    }
  });

  it('refuses an unsupported algorithm', async () => {
    const issuer = await startTestIssuer();
    try {
      const { status, body } = await rotate(issuer, '?alg=HS256');
      assert.equal(status, 400);
      assert.equal(body.error, 'invalid_request');
    } finally {
      await issuer.close();
    }
  });

  it('refuses what a web page could send: no X-Dev-Issuer header, or a foreign Origin (issue 9 #11)', async () => {
    const issuer = await startTestIssuer();
    try {
      const kid = issuer.keyRing.current.kid;
      const own = endpoint(issuer);
      const refused = [
        await rotate(issuer, '', {}),
        // A cross-site HTML form: a simple request, no custom header possible.
        await rotate(issuer, '', { 'Content-Type': 'application/x-www-form-urlencoded', Origin: 'http://evil.test' }),
        await rotate(issuer, '', { 'Content-Type': 'text/plain' }),
        await rotate(issuer, '', { 'X-Dev-Issuer': 'yes' }),
        await rotate(issuer, '', { 'X-Dev-Issuer': 'rotate', Origin: 'http://evil.test' }),
        await rotate(issuer, '', { 'X-Dev-Issuer': 'rotate', Origin: 'null' }),
        await rotate(issuer, '', { 'X-Dev-Issuer': 'rotate', Origin: own.replace('127.0.0.1', '127.0.0.2') }),
      ];
      for (const { status, body, headers } of refused) {
        assert.equal(status, 403);
        assert.equal(body.error, 'forbidden');
        assert.equal(headers.get('access-control-allow-origin'), null);
      }
      assert.match(refused[0].body.error_description, /X-Dev-Issuer: rotate/);
      assert.match(refused[4].body.error_description, /Origin/);
      assert.equal(issuer.keyRing.current.kid, kid, 'nothing rotated');
      assert.equal(issuer.keyRing.previous, undefined);
      // No CORS preflight is granted, so a browser never sends the custom header cross-origin.
      const preflight = await fetch(`${own}/dev/rotate-keys`, {
        method: 'OPTIONS',
        headers: { Origin: 'http://evil.test', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-dev-issuer' },
      });
      assert.equal(preflight.headers.get('access-control-allow-origin'), null);
      assert.equal(preflight.headers.get('access-control-allow-headers'), null);
      // The issuer's own origin (a same-origin page, or a tool that sends it) is accepted.
      const same = await rotate(issuer, '', { 'X-Dev-Issuer': 'rotate', Origin: own });
      assert.equal(same.status, 200);
      assert.equal(same.body.previous.kid, kid);
    } finally {
      await issuer.close();
    }
  });

  it('is not there outside development mode', async () => {
    const issuer = await startTestIssuer({ development: false });
    try {
      assert.equal((await rotate(issuer)).status, 404);
      assert.equal(issuer.keyRing.previous, undefined);
    } finally {
      await issuer.close();
    }
  });

  it('persists rotated keys to the key file across restarts', async () => {
    const keyFile = join(temporary, 'keys.json');
    const first = await startTestIssuer({ keyFile });
    let kids;
    try {
      await rotate(first);
      kids = (await getJwks(first)).keys.map((k) => k.kid);
    } finally {
      await first.close();
    }
    const second = await startTestIssuer({ keyFile });
    try {
      assert.deepEqual((await getJwks(second)).keys.map((k) => k.kid), kids);
    } finally {
      await second.close();
    }
  });
});
