import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { parseOptions, USAGE } from '../src/options.js';
import {
  ALL_API_SCOPES, ALL_ORGANIZATION_SCOPES, decodeJwt, ORGANIZATION_RESOURCE, ORGANIZATIONS_SCOPE,
  refresh, SHOPPING, signIn, startTestIssuer, STORE,
} from './helpers.js';

/** Sign-in as the SDK does it with UserInfoScope.organizations in its scopes. */
const withOrganizations = {
  scope: `openid offline_access profile ${ORGANIZATIONS_SCOPE} ${ALL_ORGANIZATION_SCOPES} ${ALL_API_SCOPES}`,
  resource: [SHOPPING, STORE, ORGANIZATION_RESOURCE],
};

const refreshStats = async (issuer) => {
  const response = await fetch(`${issuer.issuer.replace(/\/oidc$/, '')}/dev/refresh-stats`);
  assert.equal(response.status, 200);
  return response.json();
};

/** Logto's answer to a refused refresh token (oidc-provider keeps the reason to itself). */
const assertInvalidGrant = ({ status, body }) => {
  assert.equal(status, 400, JSON.stringify(body));
  assert.deepEqual(body, {
    code: 'oidc.invalid_grant',
    message: 'Grant request is invalid.',
    error_uri: 'https://openid.sh/debug/invalid_grant',
    error: 'invalid_grant',
    error_description: 'grant request is invalid',
  });
};

/**
 * Present a used refresh token again: refused as a reuse (the stats say so), after which
 * `newest`, the grant's unused refresh token, is refused too: the grant is revoked.
 */
const assertReuseRevokes = async (issuer, used, newest, params = { resource: SHOPPING }) => {
  const before = await refreshStats(issuer);
  assertInvalidGrant(await refresh(issuer, used, params));
  const reuse = await refreshStats(issuer);
  assert.equal(reuse.reuseDetected, before.reuseDetected + 1, 'refused as a reuse');
  assertInvalidGrant(await refresh(issuer, newest, params));
  const revoked = await refreshStats(issuer);
  assert.equal(revoked.reuseDetected, reuse.reuseDetected, 'the newest one was never used');
  assert.equal(revoked.failed, reuse.failed + 1);
};

describe('--rotate-refresh-tokens', () => {
  it('is off by default, and on with the flag or DEV_ISSUER_ROTATE_REFRESH_TOKENS=1', () => {
    assert.equal(parseOptions([], {}).rotateRefreshTokens, false);
    assert.equal(parseOptions(['--rotate-refresh-tokens'], {}).rotateRefreshTokens, true);
    assert.equal(parseOptions([], { DEV_ISSUER_ROTATE_REFRESH_TOKENS: '1' }).rotateRefreshTokens, true);
    assert.equal(parseOptions([], { DEV_ISSUER_ROTATE_REFRESH_TOKENS: '0' }).rotateRefreshTokens, false);
    assert.match(USAGE, /--rotate-refresh-tokens\s+DEV_ISSUER_ROTATE_REFRESH_TOKENS=1/);
  });
});

describe('refresh tokens rotated on every use', () => {
  let issuer;
  before(async () => {
    issuer = await startTestIssuer({ rotateRefreshTokens: true });
  });
  after(() => issuer.close());

  it('gives a new refresh token on each refresh, and each new one works once', async () => {
    const { tokens } = await signIn(issuer, 'alice');
    let current = tokens.refresh_token;
    const seen = new Set([current]);
    for (const resource of [SHOPPING, STORE, SHOPPING]) {
      const { status, body } = await refresh(issuer, current, { resource });
      assert.equal(status, 200, JSON.stringify(body));
      assert.ok(body.refresh_token, 'a refresh token in the answer');
      assert.ok(!seen.has(body.refresh_token), 'a new refresh token every time');
      assert.equal(decodeJwt(body.access_token).payload.aud, resource);
      seen.add(body.refresh_token);
      current = body.refresh_token;
    }
  });

  it('revokes the whole grant when a used refresh token comes back: old and new refused', async () => {
    const { tokens } = await signIn(issuer, 'alice');
    const first = await refresh(issuer, tokens.refresh_token, { resource: SHOPPING });
    assert.equal(first.status, 200);
    const rotated = first.body.refresh_token;
    assert.notEqual(rotated, tokens.refresh_token);
    assert.equal((await refreshStats(issuer)).rotateRefreshTokens, true);

    await assertReuseRevokes(issuer, tokens.refresh_token, rotated);
  });

  it('leaves other grants of the same user alone', async () => {
    const one = await signIn(issuer, 'bob');
    const other = await signIn(issuer, 'bob');
    await refresh(issuer, one.tokens.refresh_token, { resource: STORE });
    await refresh(issuer, one.tokens.refresh_token, { resource: STORE });
    const { status, body } = await refresh(issuer, other.tokens.refresh_token, { resource: STORE });
    assert.equal(status, 200, JSON.stringify(body));
  });

  it('treats two concurrent presentations of one refresh token as a reuse (one wins, grant revoked)', async () => {
    const { tokens } = await signIn(issuer, 'alice');
    const before = await refreshStats(issuer);
    const answers = await Promise.all([SHOPPING, STORE, SHOPPING].map(
      (resource) => refresh(issuer, tokens.refresh_token, { resource }),
    ));
    const statuses = answers.map(({ status }) => status).sort();
    assert.deepEqual(statuses, [200, 400, 400], JSON.stringify(answers.map(({ body }) => body.error)));
    for (const answer of answers.filter(({ status }) => status !== 200)) assertInvalidGrant(answer);
    // The second is the reuse that revokes the grant; the third then finds no such token.
    const afterwards = await refreshStats(issuer);
    assert.equal(afterwards.reuseDetected, before.reuseDetected + 1);
    assert.equal(afterwards.failed, before.failed + 1);
    const winner = answers.find(({ status }) => status === 200);
    assertInvalidGrant(await refresh(issuer, winner.body.refresh_token, { resource: SHOPPING }));
  });

  it('counts refreshes, rotations and reuses at GET /dev/refresh-stats (never a token)', async () => {
    const before = await refreshStats(issuer);
    const { tokens } = await signIn(issuer, 'carol');
    const { body } = await refresh(issuer, tokens.refresh_token, { resource: SHOPPING });
    await refresh(issuer, 'not-a-refresh-token', { resource: SHOPPING });
    const afterwards = await refreshStats(issuer);
    assert.deepEqual(
      Object.fromEntries(Object.keys(before).map((key) => [key, afterwards[key] - before[key]])),
      { rotateRefreshTokens: 0, requests: 2, succeeded: 1, rotated: 1, reuseDetected: 0, failed: 1 },
    );
    assert.ok(!JSON.stringify(afterwards).includes(body.refresh_token));
  });

  describe('organization tokens (organization_id)', () => {
    it('rotate the refresh token too, and a reused one revokes the grant', async () => {
      const { tokens } = await signIn(issuer, 'bob', withOrganizations);
      const organization = await refresh(issuer, tokens.refresh_token, { organization_id: 'acme' });
      assert.equal(organization.status, 200, JSON.stringify(organization.body));
      assert.equal(decodeJwt(organization.body.access_token).payload.aud, 'urn:logto:organization:acme');
      const rotated = organization.body.refresh_token;
      assert.ok(rotated);
      assert.notEqual(rotated, tokens.refresh_token);

      const api = await refresh(issuer, rotated, { organization_id: 'globex', resource: STORE });
      assert.equal(api.status, 200, JSON.stringify(api.body));
      assert.equal(decodeJwt(api.body.access_token).payload.organization_id, 'globex');
      const newest = api.body.refresh_token;
      assert.notEqual(newest, rotated);

      await assertReuseRevokes(issuer, rotated, newest, { organization_id: 'acme' });
    });

    it('detect a reuse before the membership check (a non-member reusing still revokes)', async () => {
      const { tokens } = await signIn(issuer, 'alice', withOrganizations);
      const first = await refresh(issuer, tokens.refresh_token, { organization_id: 'acme' });
      assert.equal(first.status, 200, JSON.stringify(first.body));

      const before = await refreshStats(issuer);
      const reused = await refresh(issuer, tokens.refresh_token, { organization_id: 'globex' });

      assertInvalidGrant(reused);
      assert.equal((await refreshStats(issuer)).reuseDetected, before.reuseDetected + 1);
      assertInvalidGrant(await refresh(issuer, first.body.refresh_token, { organization_id: 'acme' }));
    });
  });
});

describe('refresh tokens without --rotate-refresh-tokens (the default)', () => {
  let issuer;
  before(async () => {
    issuer = await startTestIssuer();
  });
  after(() => issuer.close());

  it('keeps the same refresh token working, also concurrently and for organization tokens', async () => {
    const { tokens } = await signIn(issuer, 'bob', withOrganizations);
    for (const params of [{ resource: SHOPPING }, { resource: STORE }, { organization_id: 'acme' }]) {
      const { status, body } = await refresh(issuer, tokens.refresh_token, params);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.refresh_token, tokens.refresh_token);
    }
    const answers = await Promise.all([SHOPPING, STORE].map(
      (resource) => refresh(issuer, tokens.refresh_token, { resource }),
    ));
    assert.deepEqual(answers.map(({ status }) => status), [200, 200]);
    const stats = await (await fetch(`${issuer.issuer.replace(/\/oidc$/, '')}/dev/refresh-stats`)).json();
    assert.equal(stats.rotateRefreshTokens, false);
    assert.equal(stats.rotated, 0);
    assert.equal(stats.reuseDetected, 0);
  });
});
