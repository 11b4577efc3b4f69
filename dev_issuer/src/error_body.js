/**
 * Logto's shape for error answers of its OpenID provider (koa-oidc-error-handler.ts): the
 * OAuth `error`, `error_description` (and `scope`) stay, and Logto adds `code`
 * ("oidc.<error>", or "session.not_found"), an English `message` and, for invalid_grant,
 * an `error_uri`.
 */
const MESSAGES = Object.freeze({
  invalid_scope: 'Invalid scope: {{error_description}}.',
  invalid_token: 'Invalid token provided.',
  invalid_client_metadata: 'Invalid client metadata provided.',
  insufficient_scope: 'Token missing scope `{{scope}}`.',
  invalid_request: 'Request is invalid.',
  invalid_grant: 'Grant request is invalid.',
  invalid_redirect_uri: "`redirect_uri` did not match any of the client's registered `redirect_uris`.",
  access_denied: 'Access denied.',
  invalid_target: 'Invalid resource indicator.',
  unsupported_grant_type: 'Unsupported `grant_type` requested.',
  unsupported_response_mode: 'Unsupported `response_mode` requested.',
  unsupported_response_type: 'Unsupported `response_type` requested.',
  server_error: 'An unknown OIDC error occurred. Please try again later.',
});
const ERROR_URIS = Object.freeze({ invalid_grant: 'https://openid.sh/debug/invalid_grant' });

const isSessionNotFound = (description = '') => (
  (description.includes('session') && description.includes('not found'))
  || description.includes('authorization request has expired')
);

export const logtoErrorBody = (body) => {
  const code = isSessionNotFound(body.error_description) ? 'session.not_found' : `oidc.${body.error}`;
  const template = MESSAGES[body.error] ?? 'An OIDC error occurred: {{code}}.';
  const message = template.replace(/{{(\w+)}}/g, (_, name) => String({ ...body, code }[name] ?? ''));
  const uri = ERROR_URIS[body.error];
  return { code, message, ...(uri ? { error_uri: uri } : {}), ...body };
};

/** Koa middleware: add Logto's fields to every JSON error answer of the provider. */
export const errorBody = () => async (ctx, next) => {
  await next();
  const { body } = ctx;
  if (ctx.status >= 400 && body && typeof body === 'object' && !Buffer.isBuffer(body)
    && typeof body.error === 'string') {
    ctx.body = logtoErrorBody(body);
  }
};
