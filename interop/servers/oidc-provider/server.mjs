// npm oidc-provider as an authorization server for `figure2 check` (docs/interop.md).
//
// The smallest configuration of the library's README that issues refresh tokens: a
// Provider with two confidential clients allowed the authorization_code and
// refresh_token grants; everything else is the library's default (its development
// login and consent pages, refresh tokens for the offline_access scope, rotation as its
// default rotateRefreshToken decides). It has no password grant: the checker gets its
// tokens from token-command.sh, an authorization-code login driven with curl.
//
// Usage: node server.mjs PORT   (loopback only)
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const client = (client_id, client_secret) => ({
  client_id,
  client_secret,
  redirect_uris: ['http://127.0.0.1:8090/callback'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
});

const provider = new Provider(issuer, {
  clients: [client('demo-client', 'demo-secret'), client('other-client', 'other-secret')],
});
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
