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
 *
 * With rotation on every use (`--rotate-refresh-tokens`), requests presenting the same refresh
 * token are served one after the other: upstream checks `consumed` and consumes the token a few
 * awaits apart, so two concurrent presentations would otherwise both be rotated and neither seen
 * as a reuse. Serialized, the second one finds the token consumed and the grant is revoked, as
 * "a refresh token presented twice revokes the grant" (logto-tokens.md §5) says. (Logto's
 * database adapter has the same window; the dev issuer is stricter on purpose, to catch clients
 * that refresh concurrently.)
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

/** Counters of the refresh grant, for `GET /dev/refresh-stats` (no token values). */
export const newRefreshStats = () => ({
  requests: 0, succeeded: 0, rotated: 0, reuseDetected: 0, failed: 0,
});

/** Refresh requests in progress, by presented refresh token value (rotation mode only). */
const inProgress = new Map();

/** Run `task` after every earlier task of the same `key` has settled. */
async function oneAtATime(key, task) {
  const previous = inProgress.get(key) ?? Promise.resolve();
  let done;
  const mine = new Promise((resolve) => {
    done = resolve;
  });
  inProgress.set(key, mine);
  await previous;
  try {
    return await task();
  } finally {
    done();
    if (inProgress.get(key) === mine) inProgress.delete(key);
  }
}

const refreshTokenGrant = (directory, { serialize, stats }) => async function logtoRefreshToken(ctx) {
  const { params } = ctx.oidc;
  const organizationId = params.organization_id ? String(params.organization_id) : undefined;

  const serve = async () => {
    if (organizationId && await checkOrganizationAccess(ctx, directory, organizationId)
      && !params.resource) {
      organizationTokenRequests.set(ctx, organizationId);
      params.resource = ORGANIZATION_RESOURCE;
    }
    await upstreamRefreshToken(ctx);
  };

  stats.requests += 1;
  try {
    const presented = params.refresh_token;
    await (serialize && typeof presented === 'string' ? oneAtATime(presented, serve) : serve());
  } catch (error) {
    // Upstream's (unexposed) detail for a consumed refresh token; it has revoked the grant.
    if (error instanceof errors.InvalidGrant && error.error_detail === 'refresh token already used') {
      stats.reuseDetected += 1;
    } else {
      stats.failed += 1;
    }
    throw error;
  }
  stats.succeeded += 1;
  if (ctx.oidc.entities.RotatedRefreshToken) stats.rotated += 1;
};

/**
 * Replace the refresh_token grant with Logto's.
 * @param {object} [options]
 * @param {boolean} [options.rotateRefreshTokens] serialize requests per presented refresh token
 * @param {object} [options.stats] counters from newRefreshStats(), shared across providers
 */
export function registerGrants(provider, directory, {
  rotateRefreshTokens = false, stats = newRefreshStats(),
} = {}) {
  const parameters = new Set([...upstreamParameters, 'resource', 'organization_id']);
  const handler = refreshTokenGrant(directory, { serialize: rotateRefreshTokens, stats });
  provider.registerGrantType('refresh_token', handler, parameters, ['resource']);
}
