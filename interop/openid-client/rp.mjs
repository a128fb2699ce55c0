// openid-client v6 (a third-party OpenID Connect client library) against Figure2.
//
// Discovers the provider, runs the authorization code flow with PKCE (S256), state and a
// nonce (openid-client also checks RFC 9207's `iss` on the redirect), validates the
// id_token, refreshes, validates the refreshed id_token against OpenID Connect Core §12.2,
// reads userinfo, and checks that the rotated refresh token is refused. The harness plays
// the user: it submits Figure2's login form with fetch and hands the redirect to the library.
//
// Usage: node rp.mjs ISSUER
import * as client from 'openid-client';

const CLIENT_ID = 'openid-client-js';
const REDIRECT_URI = 'http://127.0.0.1:9/js/callback';
const issuer = process.argv[2];

function check(condition, what) {
  if (!condition) {
    console.error(`openid-client: FAILED: ${what}`);
    process.exit(1);
  }
  console.log(`openid-client: ok: ${what}`);
}

// Figure2 runs on loopback over plain HTTP in this test; openid-client refuses http:
// unless told otherwise.
const options = { execute: [client.allowInsecureRequests], timeout: 10 };
const config = await client.discovery(new URL(issuer), CLIENT_ID, undefined, client.None(), options);
const metadata = config.serverMetadata();
check(metadata.issuer === issuer, 'discovery: issuer matches');

const codeVerifier = client.randomPKCECodeVerifier();
const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
const nonce = client.randomNonce();
const state = client.randomState();
const url = client.buildAuthorizationUrl(config, {
  redirect_uri: REDIRECT_URI,
  scope: 'openid profile email offline_access',
  code_challenge: codeChallenge,
  code_challenge_method: 'S256',
  nonce,
  state,
});

// The user logs in and consents on Figure2's page.
const page = await fetch(url);
check(page.status === 200 && (await page.text()).includes('<form'), 'authorization page shown');
const answer = await fetch(metadata.authorization_endpoint, {
  method: 'POST',
  redirect: 'manual',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({
    request: url.search.slice(1),
    username: 'alice',
    password: 'alice-password',
    decision: 'approve',
  }),
});
check(answer.status === 303, 'login form accepted (303 to the client)');
const callback = new URL(answer.headers.get('location'));

const tokens = await client.authorizationCodeGrant(config, callback, {
  pkceCodeVerifier: codeVerifier,
  expectedNonce: nonce,
  expectedState: state,
  idTokenExpected: true,
});
const first = tokens.claims();
check(first.sub === 'alice' && first.nonce === nonce, 'id_token validated (signature, iss, aud, exp, nonce)');
check(typeof tokens.refresh_token === 'string', 'code grant: refresh_token issued (offline_access)');

const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'refresh: rotated refresh token');
const second = refreshed.claims();
check(second !== undefined, 'refresh: new id_token validated');
// OpenID Connect Core §12.2.
for (const claim of ['iss', 'sub', 'aud', 'auth_time']) {
  check(JSON.stringify(second[claim]) === JSON.stringify(first[claim]), `refreshed id_token: same ${claim}`);
}
check(second.iat >= first.iat, 'refreshed id_token: new iat');
check(second.nonce === undefined, 'refreshed id_token: no nonce');

const info = await client.fetchUserInfo(config, refreshed.access_token, second.sub);
check(info.sub === 'alice' && info.email === 'alice@example.com', 'userinfo: sub and email');

let refused = false;
try {
  await client.refreshTokenGrant(config, tokens.refresh_token);
} catch (e) {
  refused = e.error === 'invalid_grant';
}
check(refused, 'rotated refresh token refused (invalid_grant)');
console.log('openid-client: PASS');
