// The authorization server of the OAuth interop test: panva's oidc-provider
// (a certified OpenID provider, from npm), on 127.0.0.1, configured as an
// identity provider would be for an MCP resource server:
//   - one confidential client (client_credentials grant, client_secret_basic);
//   - RFC 8707 resource indicators: the access token is a JWT (RFC 9068)
//     whose `aud` is the resource the client asked for, signed with ES256;
//     any resource other than the one given on the command line is refused;
//   - its signing keys are made at start (never written anywhere) and
//     published at /jwks, its metadata at /.well-known/openid-configuration.
//
//   node authorization_server.mjs PORT RESOURCE CLIENT_ID CLIENT_SECRET SCOPE
import Provider, { errors } from 'oidc-provider';
import { exportJWK, generateKeyPair } from 'jose';

const [port, resource, clientId, clientSecret, scope] = process.argv.slice(2);
if (!port || !resource || !clientId || !clientSecret || !scope) {
  console.error('usage: authorization_server.mjs PORT RESOURCE CLIENT_ID CLIENT_SECRET SCOPE');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

async function signingKey(alg) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg, use: 'sig', kid: `interop-${alg.toLowerCase()}` };
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope,
  }],
  scopes: [scope],
  ttl: { ClientCredentials: 300 },
  jwks: { keys: [await signingKey('RS256'), await signingKey('ES256')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== resource) {
          throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        }
        return {
          scope,
          audience: resource,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});

provider.on('grant.success', () => console.log('authorization server: token issued'));
provider.on('server_error', (_ctx, err) => console.error('authorization server error:', err));
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`authorization server: ${issuer} (resource ${resource})`);
});
