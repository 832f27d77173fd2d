// The authorization server of the OAuth interop test: panva's oidc-provider
// (a certified OpenID provider, from npm), on 127.0.0.1, configured as an
// identity provider would be for an MCP resource server:
//   - one confidential client (client_credentials grant, client_secret_basic),
//     and dynamic client registration (RFC 7591) for the authorization-code
//     flow with PKCE, whose login and consent are approved at once for the
//     account `interop-user` (a test has no person to click);
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
  // offline_access enables the refresh_token grant, which SDK clients register for.
  scopes: ['openid', 'offline_access', scope],
  ttl: { ClientCredentials: 300 },
  jwks: { keys: [await signingKey('RS256'), await signingKey('ES256')] },
  // The user "logs in" and consents at once (there is no person in a test):
  // the interaction route below finishes every interaction for one account.
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
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

// Auto-approval: login as `interop-user`, then grant what the consent prompt
// asks (OIDC scopes and the resource's scopes), as a consenting user would.
provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/interaction/')) {
    return next();
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: 'interop-user' } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  }
  const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: false,
  });
  ctx.status = 303;
  ctx.redirect(redirectTo);
});

provider.on('grant.success', () => console.log('authorization server: token issued'));
provider.on('server_error', (_ctx, err) => console.error('authorization server error:', err));
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`authorization server: ${issuer} (resource ${resource})`);
});
