/**
 * HTTP caching of the provider's JSON answers, as Logto (>= 1.39) does it: an ETag on every
 * JSON GET answer with 304 for a matching If-None-Match (Logto's koa-body-etag), and
 * `Cache-Control: no-cache, max-age=0, must-revalidate` on the JWKS.
 */
import { createHash } from 'node:crypto';

export const JWKS_CACHE_CONTROL = 'no-cache, max-age=0, must-revalidate';

/** A strong ETag over the JSON text, shaped like the `etag` package's. */
export const etagOf = (text) => {
  const hash = createHash('sha1').update(text, 'utf8').digest('base64').slice(0, 27);
  return `"${Buffer.byteLength(text, 'utf8').toString(16)}-${hash}"`;
};

const isJsonBody = (body) => body !== null && typeof body === 'object'
  && !Buffer.isBuffer(body) && typeof body.pipe !== 'function';

/** Koa middleware: ETag on JSON GET/HEAD answers, 304 when the client already has them. */
export const bodyEtag = () => async (ctx, next) => {
  await next();
  if (!['GET', 'HEAD'].includes(ctx.method) || ctx.status !== 200 || !isJsonBody(ctx.body)) return;
  ctx.response.etag = etagOf(JSON.stringify(ctx.body));
  if (ctx.fresh) {
    ctx.status = 304;
    ctx.body = null;
  }
};

/** Koa middleware: the JWKS must be revalidated on every use. */
export const jwksCaching = () => async (ctx, next) => {
  await next();
  if (ctx.oidc?.route === 'jwks') ctx.set('Cache-Control', JWKS_CACHE_CONTROL);
};
