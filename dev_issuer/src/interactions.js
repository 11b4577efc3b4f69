/**
 * The sign-in experience (what Logto serves at /sign-in, /register and /consent):
 * GET  /interaction/:uid            sign-in form, or registration form when the request said
 *                                   interaction_mode=signUp or first_screen=register; a
 *                                   consent prompt is granted at once (first-party app)
 * GET  /interaction/:uid/register   registration form
 * POST /interaction/:uid/login      identifier + password
 * POST /interaction/:uid/register   username + password (+ email, name): adds the user in memory
 * GET  /interaction/:uid/abort      ends the request with access_denied
 */
import { SeedError } from './directory.js';
import { messagePage, registerPage, signInPage } from './pages.js';

const ROUTE = /^\/interaction\/([\w-]+)(?:\/(login|register|abort))?\/?$/;
const MAX_FORM_BYTES = 64 * 1024;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const send = (res, status, html, headers = {}) => {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(html);
};

const redirect = (res, location) => {
  res.writeHead(303, { Location: location, 'Cache-Control': 'no-store' });
  res.end();
};

export async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new HttpError(413, 'The form is too large.');
    chunks.push(chunk);
  }
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded')) {
    throw new HttpError(415, 'Send the form as application/x-www-form-urlencoded.');
  }
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

/**
 * The API permissions the app asked for, by requested API resource: each requested scope that
 * the resource declares, whether or not the user holds it now.
 */
function requestedApiScopes(directory, params) {
  const requested = new Set(String(params.scope ?? '').split(' ').filter(Boolean));
  const result = {};
  for (const indicator of [params.resource ?? []].flat()) {
    const declared = directory.resources.get(String(indicator))?.scopes ?? [];
    const scopes = declared.filter((name) => requested.has(name));
    if (scopes.length) result[indicator] = scopes;
  }
  return result;
}

/**
 * Logto's first-party consent: grant every missing OIDC scope, claim and resource scope, and
 * every API permission the app requested. oidc-provider's prompt names only the permissions
 * the user holds at sign-in, and the grant caps every later token: recorded alone, a role
 * given after sign-in would never reach a refreshed token. Logto's RBAC guide says it does
 * ("new permissions will be reflected in subsequent access tokens"), so the consent records
 * what the app asked for and issuance filters it by the user's current roles
 * (provider.js, resourceServerInfo).
 */
async function grantConsent(provider, directory, details) {
  const { prompt: { details: missing }, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  for (const [indicator, scopes] of Object.entries(requestedApiScopes(directory, params))) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const savedId = await grant.save();
  return grantId ? {} : { grantId: savedId };
}

/** Logto's `first_screen` values that open registration, and the deprecated interaction_mode. */
const REGISTER_SCREENS = new Set(['register', 'identifier:register']);
const wantsRegistration = ({ params }) => REGISTER_SCREENS.has(params.first_screen)
  || params.interaction_mode === 'signUp';

/**
 * @param {() => import('oidc-provider').default} getProvider the provider serving now
 * @param {import('./directory.js').Directory} directory
 */
export function interactionHandler(getProvider, directory) {
  const finish = async (req, res, result, merge) => {
    const location = await getProvider().interactionResult(req, res, result, {
      mergeWithLastSubmission: merge,
    });
    redirect(res, location);
  };

  const clientName = (details) => directory.applications.get(details.params.client_id)?.name
    ?? details.params.client_id;

  const actions = {
    'GET show': async (req, res, details) => {
      if (details.prompt.name === 'consent') {
        const consent = await grantConsent(getProvider(), directory, details);
        return finish(req, res, { consent }, true);
      }
      const common = { uid: details.uid, clientName: clientName(details) };
      if (wantsRegistration(details)) return send(res, 200, registerPage(common));
      const identifier = details.params.login_hint ?? details.params.identifier ?? '';
      return send(res, 200, signInPage({ ...common, identifier }));
    },
    'GET register': async (_req, res, details) => send(res, 200, registerPage({
      uid: details.uid, clientName: clientName(details),
    })),
    'GET abort': async (req, res) => finish(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, false),
    'POST login': async (req, res, details) => {
      const form = await readForm(req);
      const user = directory.authenticate(form.identifier, form.password);
      if (!user) {
        return send(res, 401, signInPage({
          uid: details.uid,
          clientName: clientName(details),
          identifier: form.identifier,
          error: 'The username or password is wrong.',
        }));
      }
      return finish(req, res, { login: { accountId: user.id } }, false);
    },
    'POST register': async (req, res, details) => {
      const form = await readForm(req);
      try {
        const user = directory.register(form);
        return finish(req, res, { login: { accountId: user.id } }, false);
      } catch (error) {
        if (!(error instanceof SeedError)) throw error;
        return send(res, 422, registerPage({
          uid: details.uid, clientName: clientName(details), values: form, error: error.message,
        }));
      }
    },
  };

  /** Answer the request if it is an interaction route; resolve false otherwise. */
  return async function handleInteraction(req, res, pathname) {
    const match = ROUTE.exec(pathname);
    if (!match) return false;
    const [, uid, action = 'show'] = match;
    const handler = actions[`${req.method} ${action}`];
    try {
      if (!handler) throw new HttpError(405, 'Method not allowed.');
      let details;
      try {
        details = await getProvider().interactionDetails(req, res);
      } catch {
        throw new HttpError(400, 'This sign-in request has expired or its cookie is missing; start again from the app.');
      }
      if (details.uid !== uid) throw new HttpError(400, 'This sign-in request does not match its cookie.');
      await handler(req, res, details);
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      send(res, error.status, messagePage('Sign-in problem', error.message));
    }
    return true;
  };
}
