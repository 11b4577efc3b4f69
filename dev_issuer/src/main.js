#!/usr/bin/env node
/**
 * Start the development issuer: `node dev_issuer/src/main.js --port 3001 --seed dev_issuer/seed.json`.
 * When it is ready it prints exactly one JSON line on stdout (the event "ready", the issuer, the
 * port, the signing key, the seeded users and their passwords); everything else goes to stderr.
 */
import { readFile } from 'node:fs/promises';

import { OptionsError, parseOptions, USAGE } from './options.js';
import { startIssuer } from './server.js';

const log = (line) => process.stderr.write(`[dev_issuer] ${line}\n`);

async function main() {
  let options;
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof OptionsError)) throw error;
    process.stderr.write(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }

  const seed = JSON.parse(await readFile(options.seed, 'utf8'));
  const issuer = await startIssuer({ ...options, seed }, { log });
  const users = (seed.users ?? []).map(({ id, username, password }) => ({ id, username, password }));
  const clients = [...issuer.directory.applications.values()].map((app) => ({
    id: app.id, secret: app.secret, type: app.type, redirectUris: app.redirectUris,
  }));

  process.stdout.write(`${JSON.stringify({
    event: 'ready',
    issuer: issuer.issuer,
    endpoint: issuer.issuer.replace(/\/oidc$/, ''),
    port: issuer.port,
    alg: issuer.keyRing.alg,
    kid: issuer.keyRing.current.kid,
    development: options.development,
    rotateRefreshTokens: options.rotateRefreshTokens,
    clients,
    users,
  })}\n`);
  log(`issuer ${issuer.issuer} (${issuer.keyRing.alg}, kid ${issuer.keyRing.current.kid})`);
  log(`discovery ${issuer.issuer}/.well-known/openid-configuration`);
  for (const { id, secret, type } of clients) log(`client ${id} / ${secret} (${type})`);
  for (const { username, password } of users) log(`user ${username} / ${password}`);
  if (options.development) {
    log('development mode: POST /dev/rotate-keys[?alg=RS256|ES384][&stage=true] with header X-Dev-Issuer: rotate');
    log('development mode: POST /dev/users/<username>/roles {"roles"|"add"|"remove": [...]} with header X-Dev-Issuer: rotate');
  }
  if (options.rotateRefreshTokens) log('refresh tokens rotate on every use; a reused one revokes its grant');

  const stop = async (signal) => {
    log(`${signal}: stopping`);
    await issuer.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return undefined;
}

main().then((code) => {
  if (code !== undefined) process.exitCode = code;
}, (error) => {
  log(`failed to start: ${error.message}`);
  process.exitCode = 1;
});
