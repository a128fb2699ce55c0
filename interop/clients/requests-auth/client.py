"""requests-auth's OAuth2ResourceOwnerPasswordCredentials as a `figure2 check-client` program.

As documented (https://colin-b.github.io/requests_auth/, "Resource Owner Password
Credentials flow"): the auth object is given to requests; it gets a token with the
password grant on first use, caches it, and when it has expired (`early_expiry` seconds
before expires_in runs out) refreshes it with the refresh token it was given. The adapter
adds no refresh logic: it makes the contract's calls (crates/conformance/src/client.rs),
concurrent ones with threads; exit 0 if every call got 200, 3 if the library reports
invalid_grant, 1 otherwise.
"""
import os
import sys
import time

import requests
from requests_auth import InvalidGrantRequest, OAuth2ResourceOwnerPasswordCredentials

# The contract's calls and exit status (interop/clients/contract.py), shared by the adapters.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import contract  # noqa: E402

env = os.environ
# `early_expiry` (default 30 s). Note: the library reads `early_expiry or 30.0`, so the
# documented "0 to deactivate" gives 30; declare the value with --client-leeway.
early_expiry = float(env.get("REQUESTS_AUTH_EARLY_EXPIRY", "30"))

auth = OAuth2ResourceOwnerPasswordCredentials(
    env["FIGURE2_TOKEN_ENDPOINT"],
    username=env["FIGURE2_USERNAME"],
    password=env["FIGURE2_PASSWORD"],
    session_auth=(env["FIGURE2_CLIENT_ID"], env["FIGURE2_CLIENT_SECRET"]),
    scope=env["FIGURE2_SCOPE"],
    early_expiry=early_expiry,
)
# The library gets its first token on first use: the grant is the first call's.
start = time.monotonic()


def call():
    try:
        return contract.answered(start, requests.get(env["FIGURE2_RESOURCE_URL"], auth=auth, timeout=10))
    except InvalidGrantRequest as e:
        return contract.refused(start, f"token request refused: {e}")
    except Exception as e:
        return contract.failed(start, e)


contract.run_threads(start, call)
