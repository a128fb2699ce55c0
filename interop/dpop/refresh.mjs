// A third-party DPoP client (oauth4webapi, pinned in package.json) against Figure2:
// discovery (RFC 8414), the authorization code grant with PKCE as a public client, DPoP
// proofs at the token endpoint and the resource server (RFC 9449) with server nonces, a
// refresh (RFC 6749 §6) with the same key, and a thief with the refresh token but another
// key who is refused (RFC 9449 §5). Usage: node refresh.mjs ISSUER RESOURCE_URL
import * as oauth from 'oauth4webapi'
import assert from 'node:assert/strict'

const [issuerArg, resourceArg] = process.argv.slice(2)
if (!issuerArg || !resourceArg) {
  console.error('usage: node refresh.mjs ISSUER RESOURCE_URL')
  process.exit(2)
}
const issuer = new URL(issuerArg)
const resource = new URL(resourceArg)
// Loopback only, no TLS (Figure2's demo): oauth4webapi must be told http is fine.
const insecure = { [oauth.allowInsecureRequests]: true }
const step = (what) => console.log(`ok - ${what}`)

const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }))
assert.ok(as.dpop_signing_alg_values_supported?.includes('ES256'), 'RFC 9449 §5.1 metadata lists ES256')
step('discovery: dpop_signing_alg_values_supported includes ES256')

const client = { client_id: 'public-client' }
const clientAuth = oauth.None()
const redirectUri = 'http://127.0.0.1:8092/callback'
const keyPair = await oauth.generateKeyPair('ES256')
const DPoP = oauth.DPoP(client, keyPair)

// RFC 9449 §8/§9: a server may answer use_dpop_nonce; oauth4webapi keeps the nonce it got
// and the caller tries once more.
async function onceMoreOnNonce(what, fn) {
  try {
    return await fn()
  } catch (err) {
    if (oauth.isDPoPNonceError(err)) {
      step(`${what}: use_dpop_nonce, retried with the server's nonce`)
      return await fn()
    }
    throw err
  }
}

// Step A: the authorization request, approved by alice on Figure2's login form.
const codeVerifier = oauth.generateRandomCodeVerifier()
const state = oauth.generateRandomState()
const request = new URLSearchParams({
  response_type: 'code',
  client_id: client.client_id,
  redirect_uri: redirectUri,
  scope: 'read',
  state,
  code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
  code_challenge_method: 'S256',
})
const approved = await fetch(as.authorization_endpoint, {
  method: 'POST',
  body: new URLSearchParams({ request: request.toString(), username: 'alice', password: 'alice-password', decision: 'approve' }),
  redirect: 'manual',
})
assert.equal(approved.status, 303, 'the login form redirects with a code')
const callback = oauth.validateAuthResponse(as, client, new URL(approved.headers.get('location')), state)
step('authorization code received (RFC 9207 iss checked by oauth4webapi)')

// Step B, with a proof: DPoP-bound tokens.
let tokens = await onceMoreOnNonce('token endpoint', async () =>
  oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(as, client, clientAuth, callback, redirectUri, codeVerifier, { DPoP, ...insecure }),
  ),
)
assert.equal(tokens.token_type, 'dpop', 'RFC 9449 §5: token_type DPoP')
assert.ok(tokens.refresh_token, 'a refresh token')
step('step B: DPoP-bound access token and refresh token')

async function callResource(accessToken, what) {
  const response = await onceMoreOnNonce(what, async () =>
    oauth.protectedResourceRequest(accessToken, 'GET', resource, undefined, undefined, { DPoP, ...insecure }),
  )
  assert.equal(response.status, 200, `${what}: ${response.status} ${await response.clone().text()}`)
  step(`${what}: 200 with Authorization: DPoP and a proof with ath`)
}
await callResource(tokens.access_token, 'steps C/D')

// RFC 9449 §7.2: the bound token presented as a bearer token is refused.
const asBearer = await fetch(resource, { headers: { authorization: `Bearer ${tokens.access_token}` } })
assert.equal(asBearer.status, 401, 'a DPoP-bound token used as Bearer is refused')
step('RFC 9449 §7.2: the same token as Bearer is refused (401)')

// A thief holding the refresh token but not the key (RFC 9449 §5: invalid_grant).
const thief = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))
const stolen = tokens.refresh_token
await assert.rejects(
  onceMoreOnNonce('thief', async () =>
    oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, stolen, { DPoP: thief, ...insecure }),
    ),
  ),
  (err) => err instanceof oauth.ResponseBodyError && err.error === 'invalid_grant',
)
step('a thief with the refresh token and another key gets invalid_grant')

// Steps G/H: the holder refreshes with its key, then uses the new access token.
tokens = await onceMoreOnNonce('refresh', async () =>
  oauth.processRefreshTokenResponse(
    as,
    client,
    await oauth.refreshTokenGrantRequest(as, client, clientAuth, stolen, { DPoP, ...insecure }),
  ),
)
assert.equal(tokens.token_type, 'dpop')
assert.ok(tokens.refresh_token && tokens.refresh_token !== stolen, 'the refresh token rotated')
step('steps G/H: refreshed with the same key (the thief revoked nothing), refresh token rotated')
await callResource(tokens.access_token, 'steps C/D after the refresh')
console.log('PASS: oauth4webapi refreshed against Figure2 with DPoP')
