import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  decodeJwt, refresh, SHOPPING, signIn, startTestIssuer, STORE, USERS,
} from './helpers.js';

const CONTROL = { 'X-Dev-Issuer': 'rotate' };
const endpoint = (issuer) => issuer.issuer.replace(/\/oidc$/, '');

/** POST /dev/users/<username>/roles with a JSON body; returns {status, body, headers}. */
const setRoles = async (issuer, username, body, headers = CONTROL) => {
  const response = await fetch(`${endpoint(issuer)}/dev/users/${encodeURIComponent(username)}/roles`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
};

const scopeOf = async (issuer, refreshToken, resource = SHOPPING) => {
  const { status, body } = await refresh(issuer, refreshToken, { resource });
  assert.equal(status, 200, JSON.stringify(body));
  return decodeJwt(body.access_token).payload.scope;
};

const rolesOf = (issuer, username) => [...issuer.directory.users.get(USERS[username].id).roles];

describe('user roles changed at run time (development control endpoint)', () => {
  it('a role given after sign-in is in the next token of that sign-in, a role taken away is not', async () => {
    const issuer = await startTestIssuer();
    try {
      const { tokens } = await signIn(issuer, 'alice');
      assert.equal(await scopeOf(issuer, tokens.refresh_token), 'shopping:read');

      // Straight into the directory: what Logto's Console does to its database.
      issuer.directory.users.get(USERS.alice.id).roles.push('shopping-writer');
      assert.equal(await scopeOf(issuer, tokens.refresh_token), 'shopping:read shopping:write',
        'issuance computes the scopes from the current roles, within what the app requested');

      issuer.directory.users.get(USERS.alice.id).roles = [];
      assert.equal(await scopeOf(issuer, tokens.refresh_token), undefined, 'no permission left');
    } finally {
      await issuer.close();
    }
  });

  it('POST /dev/users/<username>/roles replaces, adds and removes global roles', async () => {
    const issuer = await startTestIssuer();
    try {
      const { tokens } = await signIn(issuer, 'alice');
      const granted = await setRoles(issuer, 'alice', { add: ['shopping-writer', 'store-admin'] });
      assert.equal(granted.status, 200, JSON.stringify(granted.body));
      assert.deepEqual(granted.body, {
        id: USERS.alice.id, username: 'alice', roles: ['shopping-reader', 'shopping-writer', 'store-admin'],
      });
      assert.equal(await scopeOf(issuer, tokens.refresh_token), 'shopping:read shopping:write');
      assert.equal(await scopeOf(issuer, tokens.refresh_token, STORE), 'store:read store:write');

      const removed = await setRoles(issuer, 'alice', { remove: ['store-admin', 'shopping-reader'] });
      assert.deepEqual(removed.body.roles, ['shopping-writer']);
      assert.equal(await scopeOf(issuer, tokens.refresh_token, STORE), undefined);

      const replaced = await setRoles(issuer, 'ALICE@example.com', { roles: ['shopping-reader'] });
      assert.deepEqual(replaced.body.roles, ['shopping-reader'], 'an email (any case) names the user too');
      assert.equal(await scopeOf(issuer, tokens.refresh_token), 'shopping:read');

      const shown = await fetch(`${endpoint(issuer)}/dev/users/alice/roles`);
      assert.equal(shown.status, 200);
      assert.deepEqual((await shown.json()).roles, ['shopping-reader']);
    } finally {
      await issuer.close();
    }
  });

  it('refuses what a web page could send, an unknown user or role, and a malformed body; changes nothing', async () => {
    const issuer = await startTestIssuer();
    try {
      const grant = { add: ['shopping-writer'] };
      const cases = [
        [await setRoles(issuer, 'alice', grant, {}), 403, 'forbidden', /X-Dev-Issuer: rotate/],
        [await setRoles(issuer, 'alice', grant, { 'X-Dev-Issuer': 'yes' }), 403, 'forbidden', /X-Dev-Issuer/],
        [await setRoles(issuer, 'alice', grant, { ...CONTROL, Origin: 'http://evil.test' }), 403, 'forbidden', /Origin/],
        [await setRoles(issuer, 'alice', grant, { ...CONTROL, Origin: 'null' }), 403, 'forbidden', /Origin/],
        [await setRoles(issuer, 'mallory', grant), 404, 'not_found', /no user mallory/],
        [await setRoles(issuer, 'alice', { add: ['root'] }), 400, 'invalid_request', /unknown role root/],
        [await setRoles(issuer, 'alice', { add: ['store-reader-m2m'] }), 400, 'invalid_request', /machine-to-machine/],
        [await setRoles(issuer, 'alice', { roles: 'shopping-writer' }), 400, 'invalid_request', /list of role names/],
        [await setRoles(issuer, 'alice', { roles: [], add: ['shopping-writer'] }), 400, 'invalid_request', /either/],
        [await setRoles(issuer, 'alice', {}), 400, 'invalid_request', /roles/],
        [await setRoles(issuer, 'alice', '{"add": ['), 400, 'invalid_request', /JSON/],
        [await setRoles(issuer, 'alice', '["shopping-writer"]'), 400, 'invalid_request', /JSON object/],
        [await setRoles(issuer, 'alice', JSON.stringify({ add: ['x'.repeat(70_000)] })), 413, 'invalid_request', /too large/],
      ];
      for (const [{ status, body, headers }, expectedStatus, error, description] of cases) {
        assert.equal(status, expectedStatus, JSON.stringify(body));
        assert.equal(body.error, error);
        assert.match(body.error_description, description);
        assert.equal(headers.get('access-control-allow-origin'), null);
      }
      assert.deepEqual(rolesOf(issuer, 'alice'), ['shopping-reader'], 'nothing changed');
      // A cross-site HTML form: a simple request, no custom header possible.
      const form = await fetch(`${endpoint(issuer)}/dev/users/alice/roles`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: 'http://evil.test' },
        body: 'add=shopping-writer',
      });
      assert.equal(form.status, 403);
      assert.deepEqual(rolesOf(issuer, 'alice'), ['shopping-reader']);
    } finally {
      await issuer.close();
    }
  });

  it('is not there outside development mode', async () => {
    const issuer = await startTestIssuer({ development: false });
    try {
      assert.equal((await setRoles(issuer, 'alice', { add: ['shopping-writer'] })).status, 404);
      assert.deepEqual(rolesOf(issuer, 'alice'), ['shopping-reader']);
    } finally {
      await issuer.close();
    }
  });
});
