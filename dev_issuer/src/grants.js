/**
 * Logto's refresh_token grant (packages/core/src/oidc/grants/refresh-token.ts): oidc-provider's
 * own grant plus the `organization_id` parameter of RFC 0001.
 *
 * Logto forks the whole upstream handler; here the upstream handler is wrapped instead:
 * - the membership (403 access_denied) and `urn:logto:scope:organizations`
 *   (insufficient_scope) checks run before it, on the presented refresh token;
 * - an organization token (organization_id without resource) is obtained from it by resolving
 *   the reserved resource `urn:logto:resource:organizations`, whose resource-server info then
 *   answers audience `urn:logto:organization:<id>` and the user's organization scopes in that
 *   organization (see provider.js). The upstream handler does everything else unchanged:
 *   rotation, replay detection, the ID token, the response.
 */
import { errors } from 'oidc-provider';
// oidc-provider has no `exports` map; this is the grant Logto's fork copies.
import {
  handler as upstreamRefreshToken,
  parameters as upstreamParameters,
} from 'oidc-provider/lib/actions/grants/refresh_token.js';

import { ORGANIZATION_RESOURCE } from './directory.js';

export const ORGANIZATIONS_SCOPE = 'urn:logto:scope:organizations';

/** Requests being served as an organization token: ctx -> organization id. */
const organizationTokenRequests = new WeakMap();

/** The organization id when this request is for an organization token, else undefined. */
export const isOrganizationTokenRequest = (ctx) => organizationTokenRequests.get(ctx);

const accessDenied = (description) => {
  const error = new errors.AccessDenied(description);
  error.statusCode = 403;
  error.status = 403;
  return error;
};

/**
 * The RFC 0001 checks, in Logto's order (after the refresh token, client and account are
 * known valid). Anything wrong with the refresh token itself is left to the upstream handler
 * so its errors (and reuse detection) stay exactly oidc-provider's.
 */
async function checkOrganizationAccess(ctx, directory, organizationId) {
  const { provider, client, params } = ctx.oidc;
  const refreshToken = await provider.RefreshToken.find(String(params.refresh_token ?? ''), {
    ignoreExpiration: true,
  });
  if (!refreshToken || refreshToken.clientId !== client.clientId || refreshToken.isExpired
    || refreshToken.consumed || !directory.users.has(refreshToken.accountId)) {
    return false;
  }
  if (!directory.isMember(refreshToken.accountId, organizationId)) {
    throw accessDenied('user is not a member of the organization');
  }
  if (!refreshToken.scopes.has(ORGANIZATIONS_SCOPE)) {
    throw new errors.InsufficientScope('refresh token missing required scope', ORGANIZATIONS_SCOPE);
  }
  return true;
}

const refreshTokenGrant = (directory) => async function logtoRefreshToken(ctx) {
  const { params } = ctx.oidc;
  const organizationId = params.organization_id ? String(params.organization_id) : undefined;

  if (organizationId && await checkOrganizationAccess(ctx, directory, organizationId)
    && !params.resource) {
    organizationTokenRequests.set(ctx, organizationId);
    params.resource = ORGANIZATION_RESOURCE;
  }
  await upstreamRefreshToken(ctx);
};

/** Replace the refresh_token grant with Logto's. */
export function registerGrants(provider, directory) {
  const parameters = new Set([...upstreamParameters, 'resource', 'organization_id']);
  provider.registerGrantType('refresh_token', refreshTokenGrant(directory), parameters, ['resource']);
}
