// A real OpenID provider for the interoperability tests: panva's oidc-provider, unmodified, configured
// for the OAuth 2.0 client credentials grant with RFC 8707 resource indicators, so it issues RFC 9068
// JWT access tokens (typ at+jwt, the granted scopes space-separated in `scope`).
//
// Started by tests/support/oidc_provider.py: reads its settings as JSON on stdin, listens on 127.0.0.1
// (an ephemeral port unless one is given), prints one JSON line {"issuer": ...} on stdout when it
// accepts connections, and exits when stdin closes (so it never outlives the test that started it).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

// The first line of stdin; stdin stays open afterwards; its end is the signal to stop.
function readSettingsLine() {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk) => {
      buffered += chunk;
      if (buffered.length > 1 << 20) {
        reject(new Error('settings larger than 1 MiB'));
        return;
      }
      const newline = buffered.indexOf('\n');
      if (newline !== -1) {
        process.stdin.off('data', onData);
        resolve(JSON.parse(buffered.slice(0, newline)));
      }
    };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', onData);
    process.stdin.once('end', () => reject(new Error('stdin closed before the settings line')));
  });
}

function signingKeys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: 'rsa-1', use: 'sig' },
    { ...ec, kid: 'ec-1', use: 'sig' },
  ];
}

const settings = await readSettingsLine();
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(settings.port ?? 0, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: settings.clients.map((client) => ({
    client_id: client.client_id,
    client_secret: client.client_secret,
    scope: client.scope,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: signingKeys() },
  // Cookies sign nothing here (no interactive flows), but the provider wants keys: random per start.
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'items.read', 'items.write'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => settings.resource,
      useGrantedResource: async () => true,
      // Each client's tokens are signed with the algorithm the test gave it (RS256 unless said).
      getResourceServerInfo: async (_ctx, resourceIndicator, client) => {
        if (resourceIndicator !== settings.resource) {
          throw new Provider.errors.InvalidTarget();
        }
        const alg = settings.clients.find((c) => c.client_id === client.clientId)?.alg ?? 'RS256';
        return {
          scope: 'items.read items.write',
          audience: settings.resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg } },
        };
      },
    },
  },
});
server.on('request', provider.callback());

process.stdout.write(`${JSON.stringify({ issuer })}\n`);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
