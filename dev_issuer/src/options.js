/**
 * Command-line flags and environment variables (a flag wins over its variable); see USAGE.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const DEFAULT_PORT = 3001;
export const DEFAULT_SEED = fileURLToPath(new URL('../seed.json', import.meta.url));

export class OptionsError extends Error {}

const FLAGS = {
  port: { type: 'string', env: 'DEV_ISSUER_PORT' },
  seed: { type: 'string', env: 'DEV_ISSUER_SEED' },
  'key-file': { type: 'string', env: 'DEV_ISSUER_KEY_FILE' },
  alg: { type: 'string', env: 'DEV_ISSUER_ALG' },
  'base-url': { type: 'string', env: 'DEV_ISSUER_BASE_URL' },
  'client-port': { type: 'string', env: 'DEV_ISSUER_CLIENT_PORT' },
  'client-id': { type: 'string', env: 'DEV_ISSUER_CLIENT_ID' },
  'client-secret': { type: 'string', env: 'DEV_ISSUER_CLIENT_SECRET' },
  'redirect-uri': { type: 'string', multiple: true, env: 'DEV_ISSUER_REDIRECT_URIS' },
  'post-logout-redirect-uri': {
    type: 'string', multiple: true, env: 'DEV_ISSUER_POST_LOGOUT_REDIRECT_URIS',
  },
  'access-token-ttl': { type: 'string', env: 'DEV_ISSUER_ACCESS_TOKEN_TTL' },
  'rotate-refresh-tokens': { type: 'boolean', env: 'DEV_ISSUER_ROTATE_REFRESH_TOKENS' },
  development: { type: 'boolean', env: 'DEV_ISSUER_DEVELOPMENT' },
  help: { type: 'boolean', short: 'h' },
};

const integer = (name, value, { min }) => {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min) {
    throw new OptionsError(`--${name} must be an integer >= ${min} (got ${value})`);
  }
  return number;
};

const list = (value) => (Array.isArray(value) ? value : [value ?? ''])
  .flatMap((item) => item.split(/[\s,]+/)).filter(Boolean);

const truthy = (value) => ['1', 'true', 'yes', 'on'].includes(String(value).toLowerCase());

export function parseOptions(argv, env = {}) {
  const options = Object.fromEntries(Object.entries(FLAGS).map(([name, { env: _e, ...spec }]) => [name, spec]));
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new OptionsError(error.message);
  }
  for (const [name, { env: variable, type }] of Object.entries(FLAGS)) {
    if (values[name] !== undefined || !variable || env[variable] === undefined) continue;
    values[name] = type === 'boolean' ? truthy(env[variable]) : env[variable];
  }

  const port = integer('port', values.port, { min: 0 }) ?? DEFAULT_PORT;
  if (port > 65535) throw new OptionsError('--port must be at most 65535');
  const alg = values.alg?.toUpperCase();
  if (alg && !['ES384', 'RS256'].includes(alg)) throw new OptionsError('--alg must be ES384 or RS256');
  const baseUrl = values['base-url']?.replace(/\/+$/, '');
  if (baseUrl && !URL.canParse(baseUrl)) throw new OptionsError('--base-url must be an absolute URL');
  if (baseUrl && new URL(baseUrl).pathname !== '/') {
    throw new OptionsError('--base-url takes no path: the issuer is always <base-url>/oidc');
  }

  return {
    help: Boolean(values.help),
    port,
    seed: values.seed ?? DEFAULT_SEED,
    keyFile: values['key-file'],
    alg,
    baseUrl,
    clientPort: integer('client-port', values['client-port'], { min: 1 }),
    clientId: values['client-id'],
    clientSecret: values['client-secret'],
    redirectUris: list(values['redirect-uri']),
    postLogoutRedirectUris: list(values['post-logout-redirect-uri']),
    accessTokenTtl: integer('access-token-ttl', values['access-token-ttl'], { min: 1 }),
    rotateRefreshTokens: Boolean(values['rotate-refresh-tokens']),
    development: Boolean(values.development),
  };
}

export const USAGE = `Usage: node dev_issuer/src/main.js [options]

A local, Logto-compatible OpenID provider for development and tests. It binds 127.0.0.1 only
and prints one JSON line on stdout when ready: {"event":"ready","issuer":...,"port":...}.

  --port N                  DEV_ISSUER_PORT           default 3001; 0 picks a free port
  --seed PATH               DEV_ISSUER_SEED           default dev_issuer/seed.json
  --key-file PATH           DEV_ISSUER_KEY_FILE       keep the signing keys there (created if missing)
  --alg ES384|RS256         DEV_ISSUER_ALG            default ES384, or the key file's algorithm
  --base-url URL            DEV_ISSUER_BASE_URL       default http://127.0.0.1:<port>; issuer <base>/oidc
  --client-port N           DEV_ISSUER_CLIENT_PORT    fills {clientPort} in the seed's URIs
  --client-id ID            DEV_ISSUER_CLIENT_ID      replaces the first web app's client id
  --client-secret SECRET    DEV_ISSUER_CLIENT_SECRET  replaces the first web app's client secret
  --redirect-uri URI        DEV_ISSUER_REDIRECT_URIS  more redirect URIs (repeat the flag, or a comma list)
  --post-logout-redirect-uri URI
                            DEV_ISSUER_POST_LOGOUT_REDIRECT_URIS  more post-logout redirect URIs
  --access-token-ttl SECS   DEV_ISSUER_ACCESS_TOKEN_TTL  every API resource's access-token TTL
  --rotate-refresh-tokens   DEV_ISSUER_ROTATE_REFRESH_TOKENS=1  a new refresh token on every refresh;
                            presenting a used one again revokes the grant (default: rotate only
                            past 70 % of the token's 14-day life for a confidential app)
  --development             DEV_ISSUER_DEVELOPMENT=1  enable POST /dev/rotate-keys (header
                            X-Dev-Issuer: rotate, no foreign Origin), GET /dev/keys
                            and GET /dev/refresh-stats
  -h, --help                this text
`;
