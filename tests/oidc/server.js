// oidc-provider (a certified OpenID provider) as the test suite's real authorization server, on 127.0.0.1.
//
// Started by tests/fixtures/oidc_provider.py: `node server.js [port]` (port 0 or absent: an ephemeral one). Once
// listening it prints one JSON line on stdout, {"issuer": ..., "port": ...}, and it exits when stdin closes (the
// test process went away) or on SIGTERM. Environment:
//   OIDC_PORT                   the port when no argument is given (default 0)
//   OIDC_ACCESS_TOKEN_TTL       access-token lifetime in seconds, every grant (default 300)
//   OIDC_SCOPES                 resource scopes on top of openid/offline_access (default "mcp:tools")
//   OIDC_STATIC_CLIENTS         JSON array of client metadata registered at start (a confidential client, a
//                               client-credentials client, ...), as oidc-provider's `clients` setting takes it
//   OIDC_ROTATE_REGISTRATION_TOKEN  "0" keeps RFC 7592 registration access tokens on read (default: rotate)
//
// What it offers: RFC 7591 registration and RFC 7592 management, PKCE S256 required for every client, refresh
// tokens rotated on use, offline_access, RFC 7009 revocation, introspection, the client-credentials grant,
// client_secret_basic / client_secret_post / private_key_jwt / none at the token endpoint, RFC 8707 resource
// indicators issuing JWT access tokens for loopback resources (audience = the resource), RFC 9207 `iss` in
// authorization responses, and the development login and consent pages (any login, any password).

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

function integerFrom(name, fallback) {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number.parseInt(text, 10);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
  }
  return value;
}

function staticClients() {
  const text = process.env.OIDC_STATIC_CLIENTS;
  if (!text) return [];
  const clients = JSON.parse(text);
  if (!Array.isArray(clients)) throw new Error('OIDC_STATIC_CLIENTS must be a JSON array of client metadata');
  return clients;
}

function signingKeys() {
  // Fresh keys per run: RS256 for ID tokens and JWT access tokens, ES256 beside it.
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rs-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' },
    { ...ec, kid: `es-${randomBytes(4).toString('hex')}`, alg: 'ES256', use: 'sig' },
  ];
}

function isLoopbackResource(indicator) {
  try {
    const url = new URL(indicator);
    return ['http:', 'https:'].includes(url.protocol) && LOOPBACK_HOSTS.has(url.hostname);
  } catch {
    return false;
  }
}

function configuration({ accessTokenTTL, resourceScopes }) {
  return {
    clients: staticClients(),
    jwks: { keys: signingKeys() },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'offline_access', ...resourceScopes],
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    pkce: { required: () => true },
    rotateRefreshToken: true,
    // Plain OAuth clients (MCP's, without `openid`) get a refresh token as OAuth 2.1 expects; OpenID requests
    // still need offline_access, as OpenID Connect Core says.
    async issueRefreshToken(_ctx, client, source) {
      if (!client.grantTypeAllowed('refresh_token')) return false;
      return source.scopes.has('offline_access') || !source.scopes.has('openid');
    },
    async findAccount(_ctx, accountId) {
      return { accountId, async claims() { return { sub: accountId }; } };
    },
    ttl: {
      AccessToken: accessTokenTTL,
      ClientCredentials: accessTokenTTL,
    },
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      registrationManagement: {
        enabled: true,
        rotateRegistrationAccessToken: process.env.OIDC_ROTATE_REGISTRATION_TOKEN !== '0',
      },
      revocation: { enabled: true },
      introspection: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        async defaultResource(_ctx, _client, oneOf) {
          return oneOf ?? undefined;
        },
        async useGrantedResource() {
          return true;
        },
        async getResourceServerInfo(_ctx, indicator) {
          if (!isLoopbackResource(indicator)) throw new errors.InvalidTarget('only loopback resources are served');
          return {
            scope: resourceScopes.join(' '),
            audience: indicator,
            accessTokenTTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  };
}

function main() {
  const port = integerFrom('OIDC_PORT', 0);
  const requested = process.argv[2] === undefined ? port : Number.parseInt(process.argv[2], 10);
  const accessTokenTTL = integerFrom('OIDC_ACCESS_TOKEN_TTL', 300) || 1;
  const resourceScopes = (process.env.OIDC_SCOPES ?? 'mcp:tools').split(/\s+/).filter(Boolean);

  // Listen first: the issuer carries the bound port, which is only known once the socket is open.
  const server = createServer();
  server.listen(requested, '127.0.0.1', () => {
    const bound = server.address().port;
    const issuer = `http://127.0.0.1:${bound}`;
    const provider = new Provider(issuer, configuration({ accessTokenTTL, resourceScopes }));
    server.on('request', provider.callback());
    process.stdout.write(`${JSON.stringify({ issuer, port: bound })}\n`);
  });

  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

main();
