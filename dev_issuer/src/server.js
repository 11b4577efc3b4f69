/**
 * The HTTP server: the provider under /oidc (as Logto mounts it), the sign-in experience under
 * /interaction, and — only in development mode — the key-rotation, refresh-stats and user-roles
 * endpoints.
 * It listens on 127.0.0.1 only.
 *
 * The control endpoints that change state (POST) are not for web pages: any page the demo user
 * visits could otherwise rotate the keys twice and invalidate every outstanding token. They
 * need the header `X-Dev-Issuer: rotate`, which makes the request non-simple (a browser sends
 * it cross-origin only after a CORS preflight, which this server never grants), and they
 * refuse any `Origin` other than the issuer's own (403).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';

import { MemoryStore } from './adapter.js';
import { Directory, SeedError } from './directory.js';
import { interactionHandler } from './interactions.js';
import { KeyRing, SUPPORTED_ALGS } from './keys.js';
import { newRefreshStats } from './grants.js';
import { buildProvider } from './provider.js';

export const HOST = '127.0.0.1';
const MOUNT = '/oidc';
export const CONTROL_HEADER = 'x-dev-issuer';
export const CONTROL_HEADER_VALUE = 'rotate';

/** Apply the command-line overrides to the first web (non machine-to-machine) application. */
export function applySeedOverrides(seed, { clientId, clientSecret, redirectUris = [], postLogoutRedirectUris = [] }) {
  const applications = (seed.applications ?? []).map((app) => ({ ...app }));
  const web = applications.find((app) => (app.type ?? 'Traditional') !== 'MachineToMachine');
  if (web) {
    if (clientId) web.id = clientId;
    if (clientSecret) web.secret = clientSecret;
    web.redirectUris = [...(web.redirectUris ?? []), ...redirectUris];
    web.postLogoutRedirectUris = [...(web.postLogoutRedirectUris ?? []), ...postLogoutRedirectUris];
  }
  return { ...seed, applications };
}

export async function loadSeed(path) {
  return JSON.parse(await readFile(path, 'utf8'));
}

const json = (res, status, body, headers = {}) => {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
  res.end(`${JSON.stringify(body)}\n`);
};

const MAX_CONTROL_BODY_BYTES = 16 * 1024;
const USER_ROLES_ROUTE = /^\/dev\/users\/([^/]+)\/roles$/;

class ControlError extends Error {
  constructor(status, error, description) {
    super(description);
    this.status = status;
    this.error = error;
  }
}

const invalid = (description) => new ControlError(400, 'invalid_request', description);

/** The JSON object a control request carries (at most MAX_CONTROL_BODY_BYTES). */
async function readJsonObject(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_CONTROL_BODY_BYTES) {
      throw new ControlError(413, 'invalid_request', `the body is too large (at most ${MAX_CONTROL_BODY_BYTES} bytes)`);
    }
    chunks.push(chunk);
  }
  let body;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw invalid('the body is not JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalid('the body must be a JSON object such as {"roles": ["shopping-writer"]}');
  }
  return body;
}

const roleNames = (value, field) => {
  if (!Array.isArray(value) || !value.every((name) => typeof name === 'string')) {
    throw invalid(`"${field}" must be a list of role names`);
  }
  return value;
};

/**
 * The global roles a `POST /dev/users/<username>/roles` body asks for, from the user's current
 * ones: `{"roles": [...]}` replaces them, `{"add": [...], "remove": [...]}` changes them.
 */
function requestedRoles(body, current) {
  const replaces = 'roles' in body;
  const changes = 'add' in body || 'remove' in body;
  if (replaces && changes) throw invalid('send either "roles" or "add"/"remove", not both');
  if (replaces) return roleNames(body.roles, 'roles');
  if (!changes) throw invalid('send {"roles": [...]} or {"add": [...], "remove": [...]}');
  const removed = new Set(roleNames(body.remove ?? [], 'remove'));
  return [...current.filter((name) => !removed.has(name)), ...roleNames(body.add ?? [], 'add')];
}

/** `GET|POST /dev/users/<username>/roles`: a user's global roles, shown or changed. */
async function userRoles(req, directory, rawName, log) {
  let identifier;
  try {
    identifier = decodeURIComponent(rawName);
  } catch {
    throw invalid('the username is not a valid URL segment');
  }
  const user = directory.findUser(identifier);
  if (!user) throw new ControlError(404, 'not_found', `no user ${identifier.slice(0, 64)}`);
  if (req.method === 'POST') {
    const roles = requestedRoles(await readJsonObject(req), user.roles);
    try {
      directory.setUserRoles(user.id, roles);
    } catch (error) {
      if (!(error instanceof SeedError)) throw error;
      throw invalid(error.message.slice(0, 200));
    }
    log(`roles of ${user.username ?? user.id}: ${JSON.stringify(user.roles)}`);
  }
  return { id: user.id, username: user.username, roles: [...user.roles] };
}

/**
 * Why a state-changing control request is refused (a sentence), or null when it may proceed.
 * @param {import('node:http').IncomingMessage} req
 * @param {Set<string>} ownOrigins the origins this issuer is reached at
 */
export function controlRequestRefusal(req, ownOrigins) {
  const origin = req.headers.origin;
  if (origin !== undefined && !ownOrigins.has(origin)) {
    return 'cross-origin requests are refused: the Origin is not this issuer\'s';
  }
  if (req.headers[CONTROL_HEADER] !== CONTROL_HEADER_VALUE) {
    return `this control endpoint needs the header X-Dev-Issuer: ${CONTROL_HEADER_VALUE}`
      + ' (e.g. curl -X POST -H \'X-Dev-Issuer: rotate\' …)';
  }
  return null;
}

/**
 * Start the issuer.
 * @param {object} options parsed options (see options.js); `seed` may be a path or an object
 * @param {{log?: (line: string) => void}} [hooks]
 */
export async function startIssuer(options, { log = () => {} } = {}) {
  const seed = applySeedOverrides(
    typeof options.seed === 'string' ? await loadSeed(options.seed) : options.seed,
    options,
  );
  const directory = new Directory(seed, {
    clientPort: options.clientPort, accessTokenTtl: options.accessTokenTtl,
  });
  const keyRing = await KeyRing.open({ alg: options.alg, file: options.keyFile });
  const adapter = new MemoryStore().adapterClass();
  const cookieKeys = [randomBytes(32).toString('base64url')];
  const rotateRefreshTokens = Boolean(options.rotateRefreshTokens);
  const refreshStats = newRefreshStats();

  let issuer;
  let current;
  const rebuild = () => {
    const provider = buildProvider({
      issuer, directory, keyRing, cookieKeys, adapter, rotateRefreshTokens, refreshStats,
    });
    provider.on('server_error', (_ctx, error) => log(`server_error: ${error.stack ?? error}`));
    provider.on('grant.revoked', (ctx) => {
      if (ctx.oidc.route === 'token') log(`${ctx.oidc.params?.grant_type} presented again: grant revoked`);
    });
    current = { provider, callback: provider.callback() };
  };
  const handleInteraction = interactionHandler(() => current.provider, directory);

  const devRoutes = {
    'POST /dev/rotate-keys': async (url) => {
      const alg = url.searchParams.get('alg')?.toUpperCase() || undefined;
      if (alg && !SUPPORTED_ALGS.includes(alg)) return [400, { error: 'invalid_request', error_description: `alg must be one of ${SUPPORTED_ALGS.join(', ')}` }];
      if (url.searchParams.get('stage') === 'true') await keyRing.stageNext({ alg });
      else await keyRing.rotate({ alg });
      rebuild();
      log(`keys changed: ${JSON.stringify(keyRing.summary())}`);
      return [200, keyRing.summary()];
    },
    'GET /dev/keys': async () => [200, keyRing.summary()],
    'GET /dev/refresh-stats': async () => [200, { rotateRefreshTokens, ...refreshStats }],
  };

  const server = createServer(async (req, res) => {
    try {
      if (!current) return json(res, 503, { error: 'temporarily_unavailable' });
      const url = new URL(req.url, 'http://127.0.0.1');
      if (url.pathname === MOUNT || url.pathname.startsWith(`${MOUNT}/`)) {
        // oidc-provider works out its mount path from originalUrl vs url.
        req.originalUrl = req.url;
        req.url = req.url.slice(MOUNT.length) || '/';
        return current.callback(req, res);
      }
      if (await handleInteraction(req, res, url.pathname)) return undefined;
      const devRoute = options.development && devRoutes[`${req.method} ${url.pathname}`];
      if (devRoute) {
        const refusal = req.method === 'GET' ? null : controlRequestRefusal(req, ownOrigins);
        if (refusal) return json(res, 403, { error: 'forbidden', error_description: refusal });
        const [status, body] = await devRoute(url);
        return json(res, status, body);
      }
      const rolesMatch = options.development && USER_ROLES_ROUTE.exec(url.pathname);
      if (rolesMatch && ['GET', 'POST'].includes(req.method)) {
        const refusal = req.method === 'GET' ? null : controlRequestRefusal(req, ownOrigins);
        if (refusal) return json(res, 403, { error: 'forbidden', error_description: refusal });
        try {
          return json(res, 200, await userRoles(req, directory, rolesMatch[1], log));
        } catch (error) {
          if (!(error instanceof ControlError)) throw error;
          return json(res, error.status, { error: error.error, error_description: error.message });
        }
      }
      if (req.method === 'GET' && url.pathname === '/') {
        return json(res, 200, { issuer, discovery: `${issuer}/.well-known/openid-configuration` });
      }
      return json(res, 404, { error: 'not_found' });
    } catch (error) {
      log(`error: ${error.stack ?? error}`);
      if (!res.headersSent) json(res, 500, { error: 'server_error' });
      else res.destroy();
      return undefined;
    }
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address();
  issuer = `${options.baseUrl ?? `http://${HOST}:${port}`}${MOUNT}`;
  const ownOrigins = new Set([new URL(issuer).origin, `http://${HOST}:${port}`, `http://localhost:${port}`]);
  rebuild();

  return {
    server,
    port,
    issuer,
    directory,
    keyRing,
    refreshStats,
    get provider() {
      return current.provider;
    },
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
