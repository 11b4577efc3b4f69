import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  authorizationUrl, basicAuth, Browser, CLIENT_ID, decodeJwt, getJwks, isJwt,
  parseForm, pkcePair, REDIRECT_URI, refresh, SHOPPING, signIn, startTestIssuer, STORE,
  tokenRequest, USERS, verifyJwt,
} from './helpers.js';

let issuer;
before(async () => {
  issuer = await startTestIssuer();
});
after(() => issuer.close());

const userinfo = async (token) => {
  const response = await fetch(`${issuer.issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, body: await response.json() };
};

describe('authorization code flow with PKCE through the HTML forms', () => {
  it('signs alice in and returns an opaque access token, an ID token and a refresh token', async () => {
    const { tokens, callback } = await signIn(issuer, 'alice');
    assert.equal(callback.origin + callback.pathname, REDIRECT_URI);
    assert.equal(callback.searchParams.get('iss'), issuer.issuer);
    assert.equal(tokens.token_type, 'Bearer');
    assert.equal(isJwt(tokens.access_token), false, 'no resource at the exchange: opaque token');
    assert.ok(tokens.refresh_token);
    const claims = verifyJwt(tokens.id_token, await getJwks(issuer));
    assert.equal(claims.sub, USERS.alice.id);
    assert.equal(claims.aud, CLIENT_ID);
    assert.equal(claims.iss, issuer.issuer);
    assert.equal(decodeJwt(tokens.id_token).header.alg, 'ES384');
  });

  it('lets only the opaque token into the userinfo endpoint', async () => {
    const { tokens } = await signIn(issuer, 'alice');
    assert.equal((await userinfo(tokens.access_token)).status, 200);
    const jwt = (await refresh(issuer, tokens.refresh_token, { resource: SHOPPING })).body.access_token;
    const refused = await userinfo(jwt);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error, 'invalid_token');
  });

  it('issues a JWT at the code exchange when the exchange names a resource', async () => {
    const { tokens } = await signIn(issuer, 'bob', { exchangeResource: SHOPPING });
    assert.ok(isJwt(tokens.access_token));
    assert.equal(decodeJwt(tokens.access_token).payload.aud, SHOPPING);
  });

  it('shows the form again with 401 on a wrong password, then accepts the right one', async () => {
    const browser = new Browser();
    const { challenge } = pkcePair();
    const page = await browser.follow(authorizationUrl(issuer, { challenge }));
    const form = parseForm(await page.response.text(), page.url);
    const wrong = await browser.request(form.action, {
      method: 'POST', form: { identifier: 'alice', password: 'nope' },
    });
    assert.equal(wrong.status, 401);
    assert.match(await wrong.text(), /username or password is wrong/);
    const right = await browser.follow(form.action, {
      method: 'POST', form: { identifier: 'alice@example.com', password: USERS.alice.password },
    });
    assert.ok(right.redirectedTo?.startsWith(REDIRECT_URI));
  });

  it('refuses a wrong code_verifier', async () => {
    const browser = new Browser();
    const { challenge } = pkcePair();
    const page = await browser.follow(authorizationUrl(issuer, { challenge }));
    const form = parseForm(await page.response.text(), page.url);
    const done = await browser.follow(form.action, {
      method: 'POST', form: { identifier: 'alice', password: USERS.alice.password },
    });
    const code = new URL(done.redirectedTo).searchParams.get('code');
    const exchange = await tokenRequest(issuer, {
      grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI,
      code_verifier: pkcePair().verifier,
    });
    assert.equal(exchange.status, 400);
    assert.equal(exchange.body.error, 'invalid_grant');
  });

  it('gives no refresh token with prompt=login', async () => {
    const { tokens } = await signIn(issuer, 'alice', { prompt: 'login' });
    assert.equal(tokens.refresh_token, undefined);
  });

  it('reads a comma-separated resource parameter as several (Logto koa-resource-param)', async () => {
    const { tokens } = await signIn(issuer, 'bob', { resource: `${SHOPPING},${STORE}` });
    const { body } = await refresh(issuer, tokens.refresh_token, { resource: STORE });
    assert.equal(decodeJwt(body.access_token).payload.aud, STORE);
  });

  it('answers an unknown resource indicator with invalid_target', async () => {
    const browser = new Browser();
    const { challenge } = pkcePair();
    const response = await browser.request(authorizationUrl(issuer, {
      challenge, resource: 'https://unknown.example.com/api',
    }));
    const location = new URL(response.headers.get('location'));
    assert.equal(location.searchParams.get('error'), 'invalid_target');
  });
});

describe('access tokens for API resources', () => {
  it('carry the claims Logto puts in them, signed with the current key', async () => {
    const { tokens } = await signIn(issuer, 'bob');
    const { status, body } = await refresh(issuer, tokens.refresh_token, { resource: SHOPPING });
    assert.equal(status, 200);
    const { header, payload } = decodeJwt(body.access_token);
    assert.deepEqual(header, { alg: 'ES384', typ: 'at+jwt', kid: issuer.keyRing.current.kid });
    assert.deepEqual(Object.keys(payload).sort(),
      ['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'scope', 'sub']);
    assert.equal(payload.iss, issuer.issuer);
    assert.equal(payload.sub, USERS.bob.id);
    assert.equal(payload.aud, SHOPPING);
    assert.equal(payload.client_id, CLIENT_ID);
    assert.equal(payload.scope, 'shopping:read shopping:write');
    assert.equal(payload.exp - payload.iat, 3600);
    assert.equal(body.expires_in, 3600);
    verifyJwt(body.access_token, await getJwks(issuer));
  });

  const table = [
    ['alice', SHOPPING, 'shopping:read'],
    ['alice', STORE, undefined],
    ['bob', STORE, 'store:read store:write'],
    ['carol', SHOPPING, undefined],
    ['carol', STORE, undefined],
  ];
  for (const [user, resource, scope] of table) {
    it(`give ${user} on ${resource} the scope ${scope ?? '(absent)'}`, async () => {
      const { tokens } = await signIn(issuer, user);
      const { body } = await refresh(issuer, tokens.refresh_token, { resource });
      const { payload } = decodeJwt(body.access_token);
      assert.equal(payload.aud, resource);
      assert.equal(payload.scope, scope);
    });
  }

  it('cut the scope down to what the client asked for', async () => {
    const { tokens } = await signIn(issuer, 'bob', { scope: 'openid offline_access shopping:read' });
    const { body } = await refresh(issuer, tokens.refresh_token, { resource: SHOPPING });
    assert.equal(decodeJwt(body.access_token).payload.scope, 'shopping:read');
  });

  it('are refused for a resource not asked for at sign-in (invalid_target)', async () => {
    const { tokens } = await signIn(issuer, 'bob', { resource: SHOPPING });
    const { status, body } = await refresh(issuer, tokens.refresh_token, { resource: STORE });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_target');
  });

  it('keep the refresh token of a confidential client (no rotation before 70 % of its life)', async () => {
    const { tokens } = await signIn(issuer, 'bob');
    const first = await refresh(issuer, tokens.refresh_token, { resource: SHOPPING });
    const second = await refresh(issuer, tokens.refresh_token, { resource: STORE });
    assert.equal(first.body.refresh_token, tokens.refresh_token);
    assert.equal(second.status, 200);
  });

  it('follow the per-resource TTL of the seed', async () => {
    const short = await startTestIssuer({ accessTokenTtl: 7 });
    try {
      const { tokens } = await signIn(short, 'bob');
      const { body } = await refresh(short, tokens.refresh_token, { resource: STORE });
      const { payload } = decodeJwt(body.access_token);
      assert.equal(payload.exp - payload.iat, 7);
      assert.equal(body.expires_in, 7);
    } finally {
      await short.close();
    }
  });
});

describe('ID token and userinfo claims by scope', () => {
  const everything = 'openid offline_access profile email phone roles custom_data identities '
    + 'urn:logto:scope:organizations urn:logto:scope:organization_roles';

  it('puts the profile, email, phone, roles and organization claims in the ID token', async () => {
    const { tokens } = await signIn(issuer, 'alice', { scope: everything });
    const { payload } = decodeJwt(tokens.id_token);
    assert.equal(payload.sub, USERS.alice.id);
    assert.equal(payload.name, 'Alice Example');
    assert.equal(payload.username, 'alice');
    assert.match(payload.picture, /^data:image\/svg\+xml,/);
    assert.equal(payload.created_at, 1735689600000, 'milliseconds, as Logto');
    assert.equal(payload.updated_at, 1735689600000);
    assert.equal(payload.email, 'alice@example.com');
    assert.equal(payload.email_verified, true);
    assert.equal(payload.phone_number, '15550000001');
    assert.equal(payload.phone_number_verified, true);
    assert.deepEqual(payload.roles, ['shopping-reader']);
    assert.deepEqual(payload.organizations, ['acme']);
    assert.deepEqual(payload.organization_roles, ['acme:member']);
    for (const absent of ['custom_data', 'identities', 'organization_data']) {
      assert.equal(payload[absent], undefined, `${absent} is userinfo-only`);
    }
  });

  it('adds custom_data, identities and organization_data at the userinfo endpoint', async () => {
    const { tokens } = await signIn(issuer, 'alice', { scope: everything });
    const { status, body } = await userinfo(tokens.access_token);
    assert.equal(status, 200);
    assert.deepEqual(body.custom_data, { plan: 'free' });
    assert.deepEqual(body.identities, { github: { userId: '1001', details: { login: 'alice-gh' } } });
    assert.deepEqual(body.organization_data, [
      { id: 'acme', name: 'Acme', description: 'Bob administers it, Alice is a member' },
    ]);
    assert.deepEqual(body.organization_roles, ['acme:member']);
  });

  it('gives only sub for openid alone', async () => {
    const { tokens } = await signIn(issuer, 'carol', { scope: 'openid offline_access', resource: [] });
    const { body } = await userinfo(tokens.access_token);
    assert.deepEqual(body, { sub: USERS.carol.id });
    const { payload } = decodeJwt(tokens.id_token);
    assert.equal(payload.name, undefined);
    assert.equal(payload.email, undefined);
  });
});

describe('registration', () => {
  const registrations = [
    { interaction_mode: 'signUp' }, { first_screen: 'register' }, { first_screen: 'identifier:register' },
  ];
  for (const extra of registrations) {
    it(`shows the registration form for ${JSON.stringify(extra)} and signs the new user in`, async () => {
      const browser = new Browser();
      const { verifier, challenge } = pkcePair();
      const page = await browser.follow(authorizationUrl(issuer, { challenge, extra }));
      const html = await page.response.text();
      assert.match(html, /Create your account/);
      const form = parseForm(html, page.url);
      const username = `user_${Object.values(extra)[0].replace(':', '_')}`;
      const done = await browser.follow(form.action, {
        method: 'POST',
        form: { username, password: 'new-user-password', email: `${username}@example.com`, name: 'New User' },
      });
      const code = new URL(done.redirectedTo).searchParams.get('code');
      const exchange = await tokenRequest(issuer, {
        grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier,
      });
      const { payload } = decodeJwt(exchange.body.id_token);
      assert.match(payload.sub, /^[\da-z]{12}$/);
      assert.equal(payload.username, username);
      // The user now exists: a normal sign-in works, and has no permissions.
      const again = await signIn(issuer, username, { password: 'new-user-password' });
      assert.equal(decodeJwt(again.tokens.id_token).payload.sub, payload.sub);
      const { body } = await refresh(issuer, again.tokens.refresh_token, { resource: SHOPPING });
      assert.equal(decodeJwt(body.access_token).payload.scope, undefined);
    });
  }

  it('refuses a taken username with 422 and the form', async () => {
    const browser = new Browser();
    const { challenge } = pkcePair();
    const page = await browser.follow(authorizationUrl(issuer, { challenge, extra: { first_screen: 'register' } }));
    const form = parseForm(await page.response.text(), page.url);
    const response = await browser.request(form.action, {
      method: 'POST', form: { username: 'alice', password: 'long-enough-password' },
    });
    assert.equal(response.status, 422);
    assert.match(await response.text(), /already taken/);
  });
});

describe('sign-out, revocation and introspection', () => {
  it('ends the session and returns to the registered post-logout redirect URI', async () => {
    const { browser } = await signIn(issuer, 'alice');
    const postLogout = 'http://127.0.0.1:8000/';
    const url = `${issuer.issuer}/session/end?client_id=${CLIENT_ID}&post_logout_redirect_uri=${encodeURIComponent(postLogout)}`;
    const page = await browser.request(url);
    assert.equal(page.status, 200);
    const form = parseForm(await page.text(), url);
    assert.equal(form.fields.logout, 'yes');
    const done = await browser.follow(form.action, { method: 'POST', form: form.fields }, { stopAt: postLogout });
    assert.equal(done.redirectedTo, postLogout);
    // The session is gone: the next authorization shows the sign-in form again.
    const { challenge } = pkcePair();
    const next = await browser.follow(authorizationUrl(issuer, { challenge }));
    assert.match(await next.response.text(), /Sign in/);
  });

  it('refuses an unregistered post_logout_redirect_uri', async () => {
    const response = await fetch(`${issuer.issuer}/session/end?client_id=${CLIENT_ID}&post_logout_redirect_uri=${encodeURIComponent('https://evil.example.com/')}`);
    assert.equal(response.status, 400);
    assert.equal((await response.json()).error, 'invalid_request');
  });

  it('revokes a refresh token at /oidc/token/revocation', async () => {
    const { tokens } = await signIn(issuer, 'alice');
    const revoked = await fetch(`${issuer.issuer}/token/revocation`, {
      method: 'POST',
      headers: { authorization: basicAuth(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.refresh_token, token_type_hint: 'refresh_token' }),
    });
    assert.equal(revoked.status, 200);
    const { status, body } = await refresh(issuer, tokens.refresh_token, { resource: SHOPPING });
    assert.equal(status, 400);
    assert.equal(body.error, 'invalid_grant');
  });

  it('introspects an opaque access token', async () => {
    const { tokens } = await signIn(issuer, 'alice');
    const response = await fetch(`${issuer.issuer}/token/introspection`, {
      method: 'POST',
      headers: { authorization: basicAuth(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.access_token }),
    });
    const body = await response.json();
    assert.equal(body.active, true);
    assert.equal(body.sub, USERS.alice.id);
    assert.equal(body.client_id, CLIENT_ID);
  });
});
