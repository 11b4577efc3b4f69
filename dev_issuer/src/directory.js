/**
 * The seeded directory: applications, API resources, roles, the organization template,
 * organizations and users, held in memory (a registered user lives until the process stops).
 *
 * Permission rules follow Logto's `findUserScopesForResourceIndicator` and
 * `findResourceScopes` (packages/core/src/libraries/user.ts, packages/core/src/oidc/resource.ts):
 * a user's scopes for an API are those of their global roles plus those of their organization
 * roles — in every organization, or only in one when an organization id is given.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const ORGANIZATION_RESOURCE = 'urn:logto:resource:organizations';
export const ORGANIZATION_URN_PREFIX = 'urn:logto:organization:';
export const DEFAULT_ACCESS_TOKEN_TTL = 3600;

export class SeedError extends Error {}

const USERNAME = /^[A-Z_a-z]\w*$/;
const EMAIL = /^\S+@\S+\.\S+$/;
const MIN_PASSWORD_LENGTH = 8;

const fail = (message) => {
  throw new SeedError(message);
};

const digest = (value) => createHash('sha256').update(String(value)).digest();

/** Generate a Logto-shaped id: 12 lowercase letters and digits. */
export const generateId = () => {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(12)].map((byte) => alphabet[byte % alphabet.length]).join('');
};

/** Map of indicator -> Set of scope names, checked against the declared resources. */
const readPermissions = (permissions, resources, where) => {
  const result = new Map();
  for (const [indicator, names] of Object.entries(permissions ?? {})) {
    const resource = resources.get(indicator) ?? fail(`${where}: unknown resource ${indicator}`);
    for (const name of names) {
      if (!resource.scopes.includes(name)) fail(`${where}: ${indicator} has no scope ${name}`);
    }
    result.set(indicator, new Set(names));
  }
  return result;
};

export class Directory {
  /**
   * @param {object} seed the parsed seed document
   * @param {{clientPort?: number, accessTokenTtl?: number}} [overrides]
   */
  constructor(seed, { clientPort, accessTokenTtl } = {}) {
    const port = String(clientPort ?? seed.clientPort ?? 8000);
    const expand = (uri) => uri.replaceAll('{clientPort}', port);

    this.resources = new Map((seed.resources ?? []).map((r) => [r.indicator, {
      indicator: r.indicator,
      name: r.name ?? r.indicator,
      accessTokenTtl: accessTokenTtl ?? r.accessTokenTtl ?? DEFAULT_ACCESS_TOKEN_TTL,
      scopes: (r.scopes ?? []).map((s) => (typeof s === 'string' ? s : s.name)),
    }]));
    this.defaultResource = seed.defaultResource ?? undefined;
    this.roles = new Map((seed.roles ?? []).map((role) => [role.name, {
      name: role.name,
      type: role.type ?? 'User',
      permissions: readPermissions(role.permissions, this.resources, `role ${role.name}`),
    }]));

    const template = seed.organizationTemplate ?? {};
    this.organizationScopes = (template.scopes ?? []).map((s) => (typeof s === 'string' ? s : s.name));
    this.organizationRoles = new Map((template.roles ?? []).map((role) => {
      for (const name of role.scopes ?? []) {
        if (!this.organizationScopes.includes(name)) fail(`organization role ${role.name}: unknown scope ${name}`);
      }
      return [role.name, {
        name: role.name,
        scopes: new Set(role.scopes ?? []),
        permissions: readPermissions(role.permissions, this.resources, `organization role ${role.name}`),
      }];
    }));

    this.applications = new Map((seed.applications ?? []).map((app) => [app.id, {
      ...app,
      type: app.type ?? 'Traditional',
      redirectUris: (app.redirectUris ?? []).map(expand),
      postLogoutRedirectUris: (app.postLogoutRedirectUris ?? []).map(expand),
      roles: this.#checkRoles(app.roles, `application ${app.id}`),
    }]));

    this.users = new Map();
    for (const user of seed.users ?? []) this.#addUser(user);

    this.organizations = new Map((seed.organizations ?? []).map((org) => [org.id, {
      id: org.id,
      name: org.name ?? org.id,
      description: org.description ?? null,
      members: new Map((org.members ?? []).map(({ userId, roles }) => {
        if (!this.users.has(userId)) fail(`organization ${org.id}: unknown user ${userId}`);
        for (const name of roles ?? []) {
          if (!this.organizationRoles.has(name)) fail(`organization ${org.id}: unknown role ${name}`);
        }
        return [userId, new Set(roles ?? [])];
      })),
    }]));
  }

  #checkRoles(names, where) {
    for (const name of names ?? []) {
      if (!this.roles.has(name)) fail(`${where}: unknown role ${name}`);
    }
    return [...(names ?? [])];
  }

  #addUser(input) {
    const now = Date.now();
    const user = {
      id: input.id ?? generateId(),
      username: input.username ?? null,
      passwordDigest: digest(input.password ?? randomBytes(16).toString('hex')),
      name: input.name ?? null,
      avatar: input.avatar ?? null,
      primaryEmail: input.primaryEmail ?? null,
      primaryPhone: input.primaryPhone ?? null,
      profile: input.profile ?? {},
      customData: input.customData ?? {},
      identities: input.identities ?? {},
      roles: this.#checkRoles(input.roles, `user ${input.id}`),
      createdAt: input.createdAt ?? now,
      updatedAt: input.updatedAt ?? input.createdAt ?? now,
    };
    if (this.users.has(user.id)) fail(`duplicate user id ${user.id}`);
    if (user.username && this.findUser(user.username)) fail(`duplicate username ${user.username}`);
    if (user.primaryEmail && this.findUser(user.primaryEmail)) fail(`duplicate email ${user.primaryEmail}`);
    this.users.set(user.id, user);
    return user;
  }

  /** Find a user by username or email (both case-insensitive, as Logto compares them). */
  findUser(identifier) {
    const wanted = String(identifier ?? '').trim().toLowerCase();
    if (!wanted) return undefined;
    for (const user of this.users.values()) {
      if (user.username?.toLowerCase() === wanted || user.primaryEmail?.toLowerCase() === wanted) {
        return user;
      }
    }
    return undefined;
  }

  /** The user whose identifier and password match, or undefined. */
  authenticate(identifier, password) {
    const user = this.findUser(identifier);
    const expected = user?.passwordDigest ?? digest(randomBytes(16));
    const matches = timingSafeEqual(expected, digest(password ?? ''));
    return user && matches ? user : undefined;
  }

  /** Register a user in memory; throws SeedError with a message fit for the form. */
  register({ username, password, email, name }) {
    if (!username || !USERNAME.test(username)) {
      fail('The username must start with a letter or _ and hold only letters, digits and _.');
    }
    if (!password || password.length < MIN_PASSWORD_LENGTH) {
      fail(`The password must be at least ${MIN_PASSWORD_LENGTH} characters long.`);
    }
    if (email && !EMAIL.test(email)) fail('The email address is not valid.');
    if (this.findUser(username)) fail('That username is already taken.');
    if (email && this.findUser(email)) fail('That email address is already in use.');
    return this.#addUser({ username, password, primaryEmail: email || null, name: name || null });
  }

  /**
   * Give a user exactly these global roles (Logto's Console: User management → the user →
   * Roles). Tokens issued from now on reflect them; tokens already issued keep their scopes.
   * Throws SeedError for an unknown role or a machine-to-machine one (Logto assigns those to
   * applications only).
   */
  setUserRoles(userId, names) {
    const user = this.users.get(userId) ?? fail(`no user ${userId}`);
    for (const name of names) {
      const role = this.roles.get(name) ?? fail(`unknown role ${name}`);
      if (role.type !== 'User') fail(`role ${name} is a machine-to-machine role: it cannot be given to a user`);
    }
    user.roles = [...new Set(names)];
    user.updatedAt = Date.now();
    return [...user.roles];
  }

  isMember(userId, organizationId) {
    return Boolean(this.organizations.get(organizationId)?.members.has(userId));
  }

  /** The user's organization roles: [{organization, role}]. */
  *#memberships(userId, organizationId) {
    for (const organization of this.organizations.values()) {
      if (organizationId !== undefined && organization.id !== organizationId) continue;
      for (const name of organization.members.get(userId) ?? []) {
        yield { organization, role: this.organizationRoles.get(name) };
      }
    }
  }

  /** Names of the scopes of `indicator`, in declaration order, that appear in `granted`. */
  #ordered(indicator, granted) {
    const declared = this.resources.get(indicator)?.scopes ?? [];
    return declared.filter((name) => granted.has(name));
  }

  /**
   * A user's scopes for an API resource: global roles, plus organization roles in every
   * organization (organizationId undefined) or in that organization only.
   */
  userResourceScopes(userId, indicator, { organizationId } = {}) {
    const granted = new Set();
    for (const name of this.users.get(userId)?.roles ?? []) {
      for (const scope of this.roles.get(name).permissions.get(indicator) ?? []) granted.add(scope);
    }
    for (const { role } of this.#memberships(userId, organizationId)) {
      for (const scope of role.permissions.get(indicator) ?? []) granted.add(scope);
    }
    return this.#ordered(indicator, granted);
  }

  /** A machine-to-machine application's scopes for an API resource, from its roles. */
  applicationResourceScopes(applicationId, indicator) {
    const granted = new Set();
    for (const name of this.applications.get(applicationId)?.roles ?? []) {
      for (const scope of this.roles.get(name).permissions.get(indicator) ?? []) granted.add(scope);
    }
    return this.#ordered(indicator, granted);
  }

  /** The organization-template scopes a user holds in one organization. */
  userOrganizationScopes(userId, organizationId) {
    const granted = new Set();
    for (const { role } of this.#memberships(userId, organizationId)) {
      for (const scope of role.scopes) granted.add(scope);
    }
    return this.organizationScopes.filter((name) => granted.has(name));
  }

  /** [{id, name, description, roles: [roleName]}] for every organization the user is in. */
  userOrganizations(userId) {
    return [...this.organizations.values()]
      .filter((organization) => organization.members.has(userId))
      .map(({ id, name, description, members }) => ({
        id, name, description, roles: [...members.get(userId)],
      }));
  }
}
