/**
 * Test kit: an in-process issuer on a free port, a cookie-keeping HTTP client that submits the
 * HTML forms, the authorization-code flow with PKCE, and JWT decoding/verification done with
 * node:crypto alone.
 */
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';

import { DEFAULT_SEED } from '../src/options.js';
import { loadSeed, startIssuer } from '../src/server.js';

export const CLIENT_ID = 'dev-traditional-web';
export const CLIENT_SECRET = 'dev-traditional-web-secret';
export const CLIENT_PORT = 8000;
export const REDIRECT_URI = `http://127.0.0.1:${CLIENT_PORT}/callback`;
export const SHOPPING = 'https://shopping.your-app.com/api';
export const STORE = 'https://store.your-app.com/api';
export const ORGANIZATION_RESOURCE = 'urn:logto:resource:organizations';
export const ORGANIZATIONS_SCOPE = 'urn:logto:scope:organizations';
export const USERS = {
  alice: { id: 'usralice0001', password: 'alice-password' },
  bob: { id: 'usrbob000002', password: 'bob-password' },
  carol: { id: 'usrcarol0003', password: 'carol-password' },
  dave: { id: 'usrdave00004', password: 'dave-password' },
};
export const ALL_API_SCOPES = 'shopping:read shopping:write store:read store:write';
export const ALL_ORGANIZATION_SCOPES = 'read:members invite:member remove:member';

/** Start an issuer in this process on a free port; close it with `issuer.close()`. */
export async function startTestIssuer(overrides = {}) {
  const seed = overrides.seed ?? await loadSeed(DEFAULT_SEED);
  return startIssuer({
    port: 0, development: true, redirectUris: [], postLogoutRedirectUris: [], ...overrides, seed,
  });
}

const base64url = (buffer) => Buffer.from(buffer).toString('base64url');

export const decodeJwt = (token) => {
  const [header, payload] = token.split('.').slice(0, 2)
    .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
  return { header, payload };
};

export const isJwt = (token) => token.split('.').length === 3;

/** Verify a JWS against a JWKS with node:crypto; returns the payload or throws. */
export function verifyJwt(token, jwks) {
  const [h, p, s] = token.split('.');
  const { header, payload } = decodeJwt(token);
  const jwk = jwks.keys.find((key) => key.kid === header.kid);
  if (!jwk) throw new Error(`no key ${header.kid} in the JWKS`);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(`${h}.${p}`);
  const signature = Buffer.from(s, 'base64url');
  const ok = header.alg === 'ES384'
    ? verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, signature)
    : header.alg === 'RS256' && verify('sha256', data, key, signature);
  if (!ok) throw new Error('bad signature');
  return payload;
}

/** A fetch-based browser: keeps cookies (with paths), never follows redirects by itself. */
export class Browser {
  constructor() {
    this.cookies = new Map();
  }

  #cookieHeader(url) {
    const { pathname } = new URL(url);
    return [...this.cookies.values()]
      .filter((cookie) => pathname.startsWith(cookie.path))
      .map(({ name, value }) => `${name}=${value}`).join('; ');
  }

  #store(url, response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';').map((part) => part.trim());
      const name = pair.slice(0, pair.indexOf('='));
      const value = pair.slice(pair.indexOf('=') + 1);
      const attr = Object.fromEntries(attributes.map((a) => {
        const [k, ...v] = a.split('=');
        return [k.toLowerCase(), v.join('=')];
      }));
      const path = attr.path || new URL(url).pathname;
      const expired = attr['max-age'] === '0' || (attr.expires && Date.parse(attr.expires) < Date.now());
      const key = `${name};${path}`;
      if (expired || value === '') this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path });
    }
  }

  async request(url, { method = 'GET', form, headers = {} } = {}) {
    const init = { method, redirect: 'manual', headers: { ...headers } };
    const cookie = this.#cookieHeader(url);
    if (cookie) init.headers.cookie = cookie;
    if (form) {
      init.headers['content-type'] = 'application/x-www-form-urlencoded';
      init.body = new URLSearchParams(form).toString();
    }
    const response = await fetch(url, init);
    this.#store(url, response);
    return response;
  }

  /** Follow 3xx answers until a page, or until the redirect leaves for `stopAt`. */
  async follow(url, options = {}, { stopAt = REDIRECT_URI } = {}) {
    let response = await this.request(url, options);
    let current = url;
    for (let hops = 0; hops < 20; hops += 1) {
      if (response.status < 300 || response.status >= 400) return { response, url: current };
      current = new URL(response.headers.get('location'), current).href;
      if (current.startsWith(stopAt)) return { response, url: current, redirectedTo: current };
      response = await this.request(current);
    }
    throw new Error('too many redirects');
  }
}

/** Field values and action of the first <form> in an HTML page. */
export function parseForm(html, pageUrl) {
  const form = /<form\b[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) throw new Error(`no form in:\n${html}`);
  const action = /action="([^"]*)"/i.exec(form[0])?.[1] ?? pageUrl;
  const fields = {};
  for (const [input] of form[1].matchAll(/<input\b[^>]*>/gi)) {
    const name = /name="([^"]*)"/i.exec(input)?.[1];
    if (name) fields[name] = /value="([^"]*)"/i.exec(input)?.[1] ?? '';
  }
  return { action: new URL(action.replaceAll('&amp;', '&'), pageUrl).href, fields };
}

export const pkcePair = () => {
  const verifier = base64url(randomBytes(32));
  return { verifier, challenge: base64url(createHash('sha256').update(verifier).digest()) };
};

export const basicAuth = (id = CLIENT_ID, secret = CLIENT_SECRET) => (
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`
);

/** POST to the token endpoint with client_secret_basic; returns {status, body}. */
export async function tokenRequest(issuer, params, { auth = basicAuth() } = {}) {
  const body = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const item of [value].flat()) if (item !== undefined) body.append(key, item);
  }
  const response = await fetch(`${issuer.issuer}/token`, {
    method: 'POST',
    headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
  return { status: response.status, body: await response.json() };
}

export const authorizationUrl = (issuer, {
  scope = `openid offline_access profile ${ALL_API_SCOPES}`,
  resource = [SHOPPING, STORE],
  prompt = 'consent',
  challenge,
  state = base64url(randomBytes(8)),
  extra = {},
} = {}) => {
  const url = new URL(`${issuer.issuer}/auth`);
  const params = {
    client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, response_type: 'code', scope, prompt,
    code_challenge: challenge, code_challenge_method: 'S256', state, ...extra,
  };
  for (const [key, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(key, value);
  for (const indicator of [resource].flat().filter(Boolean)) url.searchParams.append('resource', indicator);
  return url.href;
};

/**
 * Sign a user in through the HTML sign-in form and exchange the code.
 * Returns {tokens, browser, callback}.
 */
export async function signIn(issuer, username, options = {}) {
  const browser = options.browser ?? new Browser();
  const { verifier, challenge } = pkcePair();
  const start = authorizationUrl(issuer, { ...options, challenge });
  let result = await browser.follow(start);
  if (!result.redirectedTo) {
    const html = await result.response.text();
    if (result.response.status !== 200) throw new Error(`sign-in page: ${result.response.status} ${html}`);
    const { action, fields } = parseForm(html, result.url);
    const password = options.password ?? USERS[username].password;
    result = await browser.follow(action, {
      method: 'POST', form: { ...fields, identifier: username, password },
    });
  }
  if (!result.redirectedTo) {
    throw new Error(`no redirect to the client: ${result.response.status} ${await result.response.text()}`);
  }
  const callback = new URL(result.redirectedTo);
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`callback without code: ${callback}`);
  const exchange = await tokenRequest(issuer, {
    grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier,
    ...(options.exchangeResource ? { resource: options.exchangeResource } : {}),
  });
  if (exchange.status !== 200) throw new Error(`code exchange: ${JSON.stringify(exchange.body)}`);
  return { tokens: exchange.body, browser, callback };
}

/** A refresh-grant request. */
export const refresh = (issuer, refreshToken, params = {}) => tokenRequest(issuer, {
  grant_type: 'refresh_token', refresh_token: refreshToken, ...params,
});

export const getJwks = async (issuer) => (await fetch(`${issuer.issuer}/jwks`)).json();
