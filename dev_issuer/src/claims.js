/**
 * Which claims each scope brings, in the ID token and at the userinfo endpoint, as Logto's
 * @logto/core-kit (`idTokenClaims`, `extendedIdTokenClaimsByScope`, `userClaims`) and
 * packages/core/src/oidc/scope.ts define them, with Logto's default ID-token configuration
 * (`enabledExtendedClaims: ['roles', 'organizations', 'organization_roles']`).
 */
import { errors } from 'oidc-provider';

const PROFILE_CLAIMS = Object.freeze([
  'name', 'family_name', 'given_name', 'middle_name', 'nickname', 'preferred_username',
  'profile', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at',
  'username', 'created_at',
]);

/** Claims that reach the ID token for each scope. */
const ID_TOKEN_CLAIMS = Object.freeze({
  profile: PROFILE_CLAIMS,
  email: ['email', 'email_verified'],
  phone: ['phone_number', 'phone_number_verified'],
  address: ['address'],
  roles: ['roles'],
  'urn:logto:scope:organizations': ['organizations'],
  'urn:logto:scope:organization_roles': ['organization_roles'],
  custom_data: [],
  identities: [],
});

/** Claims the userinfo endpoint returns for each scope (every claim of the scope). */
const USERINFO_CLAIMS = Object.freeze({
  ...ID_TOKEN_CLAIMS,
  custom_data: ['custom_data'],
  identities: ['identities', 'sso_identities'],
  'urn:logto:scope:organizations': ['organizations', 'organization_data'],
});

/** oidc-provider's `claims` option: every scope with every claim it may carry. */
export const LOGTO_CLAIMS = Object.freeze(Object.fromEntries(
  Object.entries(USERINFO_CLAIMS).map(([scope, claims]) => [scope, [...claims]]),
));

/** Profile claims stored under `user.profile` (Logto's `userProfileKeys`), snake-cased. */
const PROFILE_KEYS = Object.freeze({
  family_name: 'familyName',
  given_name: 'givenName',
  middle_name: 'middleName',
  nickname: 'nickname',
  preferred_username: 'preferredUsername',
  profile: 'profile',
  website: 'website',
  gender: 'gender',
  birthdate: 'birthdate',
  zoneinfo: 'zoneinfo',
  locale: 'locale',
  address: 'address',
});

const claimValue = (directory, user, claim) => {
  switch (claim) {
    case 'name': return user.name;
    case 'picture': return user.avatar;
    case 'username': return user.username;
    case 'email': return user.primaryEmail;
    case 'email_verified': return Boolean(user.primaryEmail);
    case 'phone_number': return user.primaryPhone;
    case 'phone_number_verified': return Boolean(user.primaryPhone);
    case 'custom_data': return user.customData;
    case 'identities': return user.identities;
    case 'sso_identities': return [];
    case 'created_at': return user.createdAt;
    case 'updated_at': return user.updatedAt;
    case 'roles': return [...user.roles];
    case 'organizations': return directory.userOrganizations(user.id).map(({ id }) => id);
    case 'organization_roles':
      return directory.userOrganizations(user.id)
        .flatMap(({ id, roles }) => roles.map((role) => `${id}:${role}`));
    case 'organization_data':
      return directory.userOrganizations(user.id)
        .map(({ id, name, description }) => ({ id, name, description }));
    default:
      // Unset profile claims are left out (undefined), as Logto does.
      return PROFILE_KEYS[claim] ? user.profile[PROFILE_KEYS[claim]] : undefined;
  }
};

/** The claims a token use may carry for a space-separated scope (Logto's getAcceptedUserClaims). */
export const acceptedClaims = (use, scope, rejected = []) => {
  const table = use === 'userinfo' ? USERINFO_CLAIMS : ID_TOKEN_CLAIMS;
  return String(scope ?? '').split(' ')
    .flatMap((name) => (Object.hasOwn(table, name) ? table[name] : []))
    .filter((claim) => !rejected.includes(claim));
};

/** oidc-provider's `findAccount` over the directory. */
export const findAccount = (directory) => async (_ctx, sub) => {
  const user = directory.users.get(sub);
  if (!user) throw new errors.InvalidGrant('user not found');
  return {
    accountId: sub,
    claims: async (use, scope, _claims, rejected) => ({
      sub,
      ...Object.fromEntries(acceptedClaims(use, scope, rejected)
        .map((claim) => [claim, claimValue(directory, user, claim)])),
    }),
  };
};
