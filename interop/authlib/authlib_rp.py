"""Authlib (a third-party OpenID Connect client library) against Figure2.

Discovers the provider, runs the authorization code flow with PKCE (S256) and a nonce,
validates the id_token, refreshes, validates the refreshed id_token against OpenID
Connect Core §12.2, reads userinfo, and checks that the rotated refresh token is refused.
The harness plays the user: it submits Figure2's login form with an HTTP client and hands
the redirect (code, state, iss) to Authlib.

Usage: python authlib_rp.py ISSUER
"""

import sys
import urllib.parse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken, IDToken
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

CLIENT_ID = "authlib-client"
CLIENT_SECRET = "authlib-secret"
REDIRECT_URI = "http://127.0.0.1:9/authlib/callback"
TIMEOUT = 10


def check(condition, what):
    if not condition:
        raise SystemExit(f"authlib: FAILED: {what}")
    print(f"authlib: ok: {what}")


def decode_id_token(id_token, metadata, claims_cls, params):
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=TIMEOUT).json())
    registry = JWSRegistry(algorithms=metadata["id_token_signing_alg_values_supported"])
    token = jwt.decode(id_token, key=keys, registry=registry)
    claims = claims_cls(token.claims, token.header, {"iss": {"essential": True, "values": [metadata["issuer"]]}}, params)
    claims.validate(leeway=30)
    return claims


def main(issuer):
    # OpenID Connect Discovery 1.0 §4.
    metadata = requests.get(issuer + "/.well-known/openid-configuration", timeout=TIMEOUT).json()
    check(metadata["issuer"] == issuer, "discovery: issuer matches")
    session = OAuth2Session(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="openid profile email offline_access",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    code_verifier = generate_token(48)
    nonce = generate_token(20)
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=code_verifier, nonce=nonce
    )

    # The user logs in and consents on Figure2's page.
    page = requests.get(url, timeout=TIMEOUT)
    check(page.status_code == 200 and "<form" in page.text, "authorization page shown")
    answer = requests.post(
        metadata["authorization_endpoint"],
        data={
            "request": urllib.parse.urlsplit(url).query,
            "username": "alice",
            "password": "alice-password",
            "decision": "approve",
        },
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    check(answer.status_code == 303, "login form accepted (303 to the client)")
    location = answer.headers["Location"]

    token = session.fetch_token(
        metadata["token_endpoint"], authorization_response=location, state=state, code_verifier=code_verifier
    )
    check("id_token" in token and "refresh_token" in token, "code grant: id_token and refresh_token issued")
    first = decode_id_token(
        token["id_token"],
        metadata,
        CodeIDToken,
        {"nonce": nonce, "client_id": CLIENT_ID, "access_token": token["access_token"]},
    )
    check(first["sub"] == "alice" and first["nonce"] == nonce, "id_token validated (signature, iss, aud, exp, nonce)")
    check(first.get("email") == "alice@example.com", "id_token carries the configured email claim")

    old_refresh_token = token["refresh_token"]
    refreshed = session.refresh_token(metadata["token_endpoint"])
    check(refreshed["refresh_token"] != old_refresh_token, "refresh: rotated refresh token")
    check("id_token" in refreshed, "refresh: new id_token")
    second = decode_id_token(refreshed["id_token"], metadata, IDToken, {"client_id": CLIENT_ID})
    # OpenID Connect Core §12.2.
    for claim in ("iss", "sub", "aud", "auth_time"):
        check(second.get(claim) == first.get(claim), f"refreshed id_token: same {claim}")
    check(second["iat"] >= first["iat"], "refreshed id_token: new iat")
    check("nonce" not in second, "refreshed id_token: no nonce")

    info = session.get(metadata["userinfo_endpoint"], timeout=TIMEOUT)
    check(info.status_code == 200, "userinfo: 200")
    claims = info.json()
    check(claims["sub"] == second["sub"] and claims.get("name") == "Alice Liddell", "userinfo: sub and name")

    replay = requests.post(
        metadata["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": old_refresh_token},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=TIMEOUT,
    )
    check(replay.status_code == 400 and replay.json()["error"] == "invalid_grant", "rotated refresh token refused")
    print("authlib: PASS")


if __name__ == "__main__":
    main(sys.argv[1])
