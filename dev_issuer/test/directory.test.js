import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Directory, SeedError } from '../src/directory.js';
import { DEFAULT_SEED } from '../src/options.js';
import { applySeedOverrides, loadSeed } from '../src/server.js';
import { SHOPPING, STORE, USERS } from './helpers.js';

const seed = await loadSeed(DEFAULT_SEED);
const directory = () => new Directory(seed);

describe('seeded permissions (every pattern of logto-tokens.md §3)', () => {
  const cases = [
    // [user, resource, organizationId, expected scopes]
    ['alice', SHOPPING, undefined, ['shopping:read']],
    ['alice', STORE, undefined, []],
    ['alice', STORE, 'acme', []],
    ['bob', SHOPPING, undefined, ['shopping:read', 'shopping:write']],
    ['bob', STORE, undefined, ['store:read', 'store:write']],
    ['carol', SHOPPING, undefined, []],
    ['carol', STORE, undefined, []],
    // dave holds store permissions only through his globex admin role ...
    ['dave', STORE, 'globex', ['store:read', 'store:write']],
    // ... and, like Logto, a global token (no organization) carries them too: the trap.
    ['dave', STORE, undefined, ['store:read', 'store:write']],
    ['dave', SHOPPING, undefined, []],
  ];
  for (const [user, resource, organizationId, expected] of cases) {
    it(`${user} on ${resource} in ${organizationId ?? 'no organization'}`, () => {
      assert.deepEqual(
        directory().userResourceScopes(USERS[user].id, resource, { organizationId }),
        expected,
      );
    });
  }

  const organizationCases = [
    ['alice', 'acme', ['read:members']],
    ['bob', 'acme', ['read:members', 'invite:member', 'remove:member']],
    ['bob', 'globex', ['read:members']],
    ['dave', 'globex', ['read:members', 'invite:member', 'remove:member']],
    ['carol', 'acme', []],
  ];
  for (const [user, organizationId, expected] of organizationCases) {
    it(`${user}'s organization scopes in ${organizationId}`, () => {
      assert.deepEqual(directory().userOrganizationScopes(USERS[user].id, organizationId), expected);
    });
  }

  it('knows who is a member of what', () => {
    const d = directory();
    assert.equal(d.isMember(USERS.alice.id, 'acme'), true);
    assert.equal(d.isMember(USERS.alice.id, 'globex'), false);
    assert.equal(d.isMember(USERS.carol.id, 'acme'), false);
    assert.deepEqual(d.userOrganizations(USERS.bob.id).map(({ id, roles }) => `${id}:${roles}`),
      ['acme:admin', 'globex:member']);
  });

  it('gives a machine-to-machine app the scopes of its roles', () => {
    assert.deepEqual(directory().applicationResourceScopes('dev-m2m', STORE), ['store:read']);
  });
});

describe('authentication and registration', () => {
  it('accepts username or email, case-insensitively, with the right password', () => {
    const d = directory();
    assert.equal(d.authenticate('alice', 'alice-password')?.id, USERS.alice.id);
    assert.equal(d.authenticate('ALICE@example.com', 'alice-password')?.id, USERS.alice.id);
    assert.equal(d.authenticate('alice', 'wrong'), undefined);
    assert.equal(d.authenticate('nobody', 'alice-password'), undefined);
  });

  it('registers a user in memory with a Logto-shaped id and no permissions', () => {
    const d = directory();
    const user = d.register({ username: 'erin', password: 'erin-password', email: 'erin@example.com' });
    assert.match(user.id, /^[\da-z]{12}$/);
    assert.equal(d.authenticate('erin@example.com', 'erin-password')?.id, user.id);
    assert.deepEqual(d.userResourceScopes(user.id, SHOPPING), []);
  });

  const refusals = [
    [{ username: 'alice', password: 'long-enough' }, /already taken/],
    [{ username: 'x', password: 'short' }, /at least 8/],
    [{ username: '1bad', password: 'long-enough' }, /username/],
    [{ username: 'erin', password: 'long-enough', email: 'bob@example.com' }, /already in use/],
    [{ username: 'erin', password: 'long-enough', email: 'not-an-email' }, /not valid/],
  ];
  for (const [form, message] of refusals) {
    it(`refuses ${JSON.stringify(form)}`, () => {
      assert.throws(() => directory().register(form), (error) => error instanceof SeedError && message.test(error.message));
    });
  }
});

describe('seed validation and overrides', () => {
  it('rejects a role naming an unknown scope', () => {
    const bad = { ...seed, roles: [{ name: 'r', permissions: { [SHOPPING]: ['shopping:fly'] } }] };
    assert.throws(() => new Directory(bad), /has no scope shopping:fly/);
  });

  it('fills {clientPort} and applies client overrides to the web app only', () => {
    const overridden = applySeedOverrides(seed, {
      clientId: 'other-id', clientSecret: 'other-secret', redirectUris: ['http://127.0.0.1:9/cb'],
    });
    const d = new Directory(overridden, { clientPort: 5123 });
    const app = d.applications.get('other-id');
    assert.equal(app.secret, 'other-secret');
    assert.deepEqual(app.redirectUris, [
      'http://127.0.0.1:5123/callback', 'http://localhost:5123/callback', 'http://127.0.0.1:9/cb',
    ]);
    assert.ok(d.applications.has('dev-m2m'));
  });

  it('overrides every access-token TTL when asked', () => {
    const d = new Directory(seed, { accessTokenTtl: 5 });
    assert.deepEqual([...d.resources.values()].map((r) => r.accessTokenTtl), [5, 5]);
  });
});
