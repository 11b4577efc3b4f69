/**
 * The oidc-provider configuration, modelled on Logto's (packages/core/src/oidc/init.ts):
 * resource indicators with per-resource JWT access tokens, the scope→claims mapping of
 * @logto/core-kit, Logto's refresh-token and PKCE rules, its extra parameters, and the
 * organization extensions of RFC 0001 (see grants.js).
 */
import Provider, { errors } from 'oidc-provider';

import { ORGANIZATION_RESOURCE, ORGANIZATION_URN_PREFIX } from './directory.js';
import { findAccount, LOGTO_CLAIMS } from './claims.js';
import { isOrganizationTokenRequest, registerGrants } from './grants.js';
import { renderLogout, renderLogoutSuccess } from './pages.js';
import { errorBody } from './error_body.js';
import { bodyEtag, jwksCaching } from './http_caching.js';

const SUPPORTED_SIGNING_ALGS = Object.freeze(['RS256', 'PS256', 'ES256', 'ES384', 'ES512']);
/** Logto's `ExtraParamsKey` values that matter here. */
const EXTRA_PARAMS = Object.freeze([
  'interaction_mode', 'first_screen', 'direct_sign_in', 'organization_id', 'identifier',
]);
const HOUR = 3600;
const DAY = 24 * HOUR;
/** Logto's reserved-resource TTL (`reversedResourceAccessTokenTtl`). */
const RESERVED_RESOURCE_TTL = HOUR;

/** oidc-provider client metadata for a seeded application (Logto's getConstantClientMetadata). */
export const clientMetadata = (app, signingAlg) => {
  const m2m = app.type === 'MachineToMachine';
  return {
    client_id: app.id,
    client_secret: app.secret,
    client_name: app.name ?? app.id,
    application_type: 'web',
    grant_types: m2m ? ['client_credentials'] : ['authorization_code', 'refresh_token'],
    response_types: m2m ? [] : ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: m2m ? [] : app.redirectUris,
    post_logout_redirect_uris: m2m ? [] : app.postLogoutRedirectUris,
    id_token_signed_response_alg: signingAlg,
  };
};

/** Resource-server info, as Logto's `getResourceServerInfo` answers it. */
const resourceServerInfo = (directory, signingAlg) => async (ctx, indicator, client) => {
  const shared = { accessTokenFormat: 'jwt', jwt: { sign: { alg: signingAlg } } };
  const { params, session, entities } = ctx.oidc;
  const userId = session?.accountId ?? entities.Account?.accountId;

  if (indicator === ORGANIZATION_RESOURCE) {
    const organizationId = isOrganizationTokenRequest(ctx);
    if (organizationId && userId) {
      // RFC 0001 organization token: aud urn:logto:organization:<id>, organization-role scopes.
      return {
        ...shared,
        audience: `${ORGANIZATION_URN_PREFIX}${organizationId}`,
        accessTokenTTL: RESERVED_RESOURCE_TTL,
        scope: directory.userOrganizationScopes(userId, organizationId).join(' '),
      };
    }
    return { ...shared, accessTokenTTL: RESERVED_RESOURCE_TTL, scope: directory.organizationScopes.join(' ') };
  }

  const resource = directory.resources.get(indicator);
  if (!resource) throw new errors.InvalidTarget();

  let scopes = [];
  if (userId) {
    const organizationId = params?.organization_id ? String(params.organization_id) : undefined;
    scopes = directory.userResourceScopes(userId, indicator, { organizationId });
  } else if (client) {
    scopes = directory.applicationResourceScopes(client.clientId, indicator);
  }
  return { ...shared, accessTokenTTL: resource.accessTokenTtl, scope: scopes.join(' ') };
};

/** `organization_id` in an organization-level API token (both parameters present). */
const extraTokenClaims = async (ctx, token) => {
  const { params, provider } = ctx.oidc;
  if (!params?.organization_id || !params.resource || isOrganizationTokenRequest(ctx)) return undefined;
  if (!(token instanceof provider.AccessToken || token instanceof provider.ClientCredentials)) {
    return undefined;
  }
  return { organization_id: String(params.organization_id) };
};

/**
 * Logto's koa-resource-param: `?resource=a,b` in a query string means `?resource=a&resource=b`.
 */
const splitCommaSeparatedResources = () => async (ctx, next) => {
  const values = ctx.URL.searchParams.getAll('resource');
  if (values.some((value) => value.includes(','))) {
    const params = new URLSearchParams(ctx.querystring);
    params.delete('resource');
    for (const value of values.flatMap((item) => item.split(','))) {
      if (value) params.append('resource', value);
    }
    // Keep originalUrl in step: oidc-provider derives its mount path from it.
    const { originalUrl = ctx.url } = ctx.req;
    const mountPath = originalUrl.slice(0, Math.max(0, originalUrl.indexOf(ctx.url)));
    ctx.querystring = params.toString();
    ctx.req.originalUrl = `${mountPath}${ctx.url}`;
  }
  await next();
};

/**
 * Build a Provider.
 * @param {object} options
 * @param {string} options.issuer e.g. http://127.0.0.1:3001/oidc
 * @param {import('./directory.js').Directory} options.directory
 * @param {import('./keys.js').KeyRing} options.keyRing
 * @param {string[]} options.cookieKeys
 * @param {Function} options.adapter adapter class (see adapter.js)
 * @param {boolean} [options.rotateRefreshTokens] a new refresh token on every refresh (else
 *   oidc-provider's default: only past 70 % of its life, for a confidential client)
 * @param {object} [options.refreshStats] counters of the refresh grant (see grants.js)
 */
export function buildProvider({
  issuer, directory, keyRing, cookieKeys, adapter, rotateRefreshTokens = false, refreshStats,
}) {
  const signingAlg = keyRing.alg;
  const cookie = { sameSite: 'lax', path: '/', signed: true, overwrite: true };

  const provider = new Provider(issuer, {
    adapter,
    clients: [...directory.applications.values()].map((app) => clientMetadata(app, signingAlg)),
    // Logto answers errors as JSON whatever the request prefers.
    renderError: (ctx, out) => {
      ctx.body = out;
    },
    cookies: { keys: cookieKeys, long: cookie, short: cookie },
    jwks: { keys: keyRing.privateJwks() },
    enabledJWA: {
      authorizationSigningAlgValues: [...SUPPORTED_SIGNING_ALGS],
      userinfoSigningAlgValues: [...SUPPORTED_SIGNING_ALGS],
      idTokenSigningAlgValues: [...SUPPORTED_SIGNING_ALGS],
      introspectionSigningAlgValues: [...SUPPORTED_SIGNING_ALGS],
    },
    conformIdTokenClaims: false,
    features: {
      userinfo: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: {
        logoutSource: renderLogout,
        postLogoutSuccessSource: renderLogoutSuccess,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => directory.defaultResource,
        // Logto: never fall back to the resources granted at authorization.
        useGrantedResource: () => false,
        getResourceServerInfo: resourceServerInfo(directory, signingAlg),
      },
    },
    issueRefreshToken: (_ctx, client, code) => (
      client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access')
    ),
    // Logto keeps oidc-provider's default; every use rotates only on request.
    ...(rotateRefreshTokens ? { rotateRefreshToken: () => true } : {}),
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    extraParams: [...EXTRA_PARAMS],
    extraTokenClaims,
    claims: LOGTO_CLAIMS,
    findAccount: findAccount(directory),
    clientBasedCORS: (ctx, origin, client) => (
      ctx.request.origin === origin
      || client.redirectUris.some((uri) => URL.parse(uri)?.origin === origin)
    ),
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? HOUR,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? HOUR,
      IdToken: HOUR,
      RefreshToken: 14 * DAY,
      Interaction: HOUR,
      Session: 14 * DAY,
      Grant: 180 * DAY,
      AuthorizationCode: 60,
    },
    pkce: {
      required: (_ctx, client) => client.clientAuthMethod !== 'client_secret_basic',
      methods: ['S256'],
    },
  });

  registerGrants(provider, directory, { rotateRefreshTokens, stats: refreshStats });
  provider.use(splitCommaSeparatedResources());
  provider.use(errorBody());
  provider.use(bodyEtag());
  provider.use(jwksCaching());
  return provider;
}
