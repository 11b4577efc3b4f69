import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  ALL_API_SCOPES, ALL_ORGANIZATION_SCOPES, basicAuth, decodeJwt, getJwks, ORGANIZATION_RESOURCE,
  ORGANIZATIONS_SCOPE, refresh, SHOPPING, signIn, startTestIssuer, STORE, tokenRequest, USERS,
  verifyJwt,
} from './helpers.js';

let issuer;
before(async () => {
  issuer = await startTestIssuer();
});
after(() => issuer.close());

/** Sign-in as the SDK does it with UserInfoScope.organizations in its scopes. */
const withOrganizations = {
  scope: `openid offline_access profile ${ORGANIZATIONS_SCOPE} ${ALL_ORGANIZATION_SCOPES} ${ALL_API_SCOPES}`,
  resource: [SHOPPING, STORE, ORGANIZATION_RESOURCE],
};

const refreshTokens = {};
const refreshTokenOf = async (user) => {
  refreshTokens[user] ??= (await signIn(issuer, user, withOrganizations)).tokens.refresh_token;
  return refreshTokens[user];
};

describe('organization tokens (organization_id without resource)', () => {
  const table = [
    ['alice', 'acme', 'read:members'],
    ['bob', 'acme', 'read:members invite:member remove:member'],
    ['bob', 'globex', 'read:members'],
    ['dave', 'globex', 'read:members invite:member remove:member'],
  ];
  for (const [user, organizationId, scope] of table) {
    it(`give ${user} in ${organizationId} aud urn:logto:organization:${organizationId} and ${scope}`, async () => {
      const { status, body } = await refresh(issuer, await refreshTokenOf(user), { organization_id: organizationId });
      assert.equal(status, 200, JSON.stringify(body));
      const { header, payload } = decodeJwt(body.access_token);
      assert.equal(header.typ, 'at+jwt');
      assert.equal(payload.aud, `urn:logto:organization:${organizationId}`);
      assert.equal(payload.scope, scope);
      assert.equal(payload.sub, USERS[user].id);
      assert.equal(payload.organization_id, undefined, 'the organization is in aud, not in a claim');
      assert.equal(payload.exp - payload.iat, 3600);
      verifyJwt(body.access_token, await getJwks(issuer));
    });
  }
});

describe('organization-level API tokens (organization_id and resource)', () => {
  const table = [
    // dave's store permissions come from his globex admin role only.
    ['dave', 'globex', STORE, 'store:read store:write'],
    // alice's acme member role grants no API permission.
    ['alice', 'acme', STORE, undefined],
    ['alice', 'acme', SHOPPING, 'shopping:read'],
    // As in Logto, the user's global roles count too (findUserScopesForResourceIndicator).
    ['bob', 'globex', STORE, 'store:read store:write'],
  ];
  for (const [user, organizationId, resource, scope] of table) {
    it(`give ${user} in ${organizationId} on ${resource}: ${scope ?? '(no scope)'}`, async () => {
      const { status, body } = await refresh(issuer, await refreshTokenOf(user), {
        organization_id: organizationId, resource,
      });
      assert.equal(status, 200, JSON.stringify(body));
      const { payload } = decodeJwt(body.access_token);
      assert.equal(payload.aud, resource);
      assert.equal(payload.organization_id, organizationId);
      assert.equal(payload.scope, scope);
    });
  }

  it('are different from the global token, which carries every organization role (the trap)', async () => {
    const { body } = await refresh(issuer, await refreshTokenOf('dave'), { resource: STORE });
    const { payload } = decodeJwt(body.access_token);
    assert.equal(payload.organization_id, undefined);
    assert.equal(payload.scope, 'store:read store:write');
  });
});

describe('refusals', () => {
  const nonMembers = [
    ['alice', 'globex', {}],
    ['alice', 'globex', { resource: STORE }],
    ['carol', 'acme', {}],
    ['dave', 'acme', {}],
    ['bob', 'no-such-org', {}],
  ];
  for (const [user, organizationId, extra] of nonMembers) {
    it(`answer 403 access_denied to non-member ${user} in ${organizationId} ${JSON.stringify(extra)}`, async () => {
      const { status, body } = await refresh(issuer, await refreshTokenOf(user), {
        organization_id: organizationId, ...extra,
      });
      assert.equal(status, 403);
      assert.equal(body.error, 'access_denied');
    });
  }

  it('answer insufficient_scope when the sign-in did not ask for urn:logto:scope:organizations', async () => {
    const { tokens } = await signIn(issuer, 'bob');
    const { status, body } = await refresh(issuer, tokens.refresh_token, { organization_id: 'acme' });
    assert.equal(status, 403);
    assert.equal(body.error, 'insufficient_scope');
    assert.equal(body.scope, ORGANIZATIONS_SCOPE);
    assert.equal(body.code, 'oidc.insufficient_scope');
    assert.equal(body.message, `Token missing scope \`${ORGANIZATIONS_SCOPE}\`.`);
  });

  it('check membership before the scope, as Logto does', async () => {
    const { tokens } = await signIn(issuer, 'carol');
    const { status, body } = await refresh(issuer, tokens.refresh_token, { organization_id: 'acme' });
    assert.equal(status, 403);
    assert.equal(body.error, 'access_denied');
  });

  it('leave a bad refresh token to the usual invalid_grant', async () => {
    const { status, body } = await refresh(issuer, 'not-a-refresh-token', { organization_id: 'acme' });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_grant');
  });

  it("come in Logto's error shape: error, error_description, code, message (and error_uri)", async () => {
    const denied = await refresh(issuer, await refreshTokenOf('alice'), { organization_id: 'globex' });
    assert.deepEqual(denied.body, {
      code: 'oidc.access_denied',
      message: 'Access denied.',
      error: 'access_denied',
      error_description: 'user is not a member of the organization',
    });
    const invalid = await refresh(issuer, 'not-a-refresh-token');
    assert.equal(invalid.body.code, 'oidc.invalid_grant');
    assert.equal(invalid.body.error_uri, 'https://openid.sh/debug/invalid_grant');
  });
});

describe('machine-to-machine', () => {
  it('gives the M2M app a client_credentials token whose sub is its client id', async () => {
    const { status, body } = await tokenRequest(issuer, {
      grant_type: 'client_credentials', resource: STORE, scope: 'store:read store:write',
    }, { auth: basicAuth('dev-m2m', 'dev-m2m-secret') });
    assert.equal(status, 200, JSON.stringify(body));
    const { payload } = decodeJwt(body.access_token);
    assert.equal(payload.sub, 'dev-m2m');
    assert.equal(payload.client_id, 'dev-m2m');
    assert.equal(payload.aud, STORE);
    assert.equal(payload.scope, 'store:read');
  });
});
