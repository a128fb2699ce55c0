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
from concurrent.futures import ThreadPoolExecutor

import requests
from requests_auth import InvalidGrantRequest, OAuth2ResourceOwnerPasswordCredentials

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
start = None


def call():
    try:
        r = requests.get(env["FIGURE2_RESOURCE_URL"], auth=auth, timeout=10)
        print(f"{time.monotonic() - start:7.3f}s GET -> {r.status_code}", flush=True)
        return 0 if r.status_code == 200 else 1
    except InvalidGrantRequest as e:
        print(f"{time.monotonic() - start:7.3f}s token request refused: {e}", flush=True)
        return 3
    except Exception as e:  # any other failure (a lost answer, a 429): this call failed
        print(f"{time.monotonic() - start:7.3f}s failed: {e!r}", flush=True)
        return 1


status = 0
concurrency = int(env["FIGURE2_CONCURRENCY"])
with ThreadPoolExecutor(max_workers=concurrency) as pool:
    # The library gets its first token on first use: the grant is the first call's.
    start = time.monotonic()
    for at in (float(t) for t in env["FIGURE2_CALL_TIMES"].split(",")):
        time.sleep(max(0.0, at - (time.monotonic() - start)))
        results = list(pool.map(lambda _: call(), range(concurrency)))
        if 3 in results:
            sys.exit(3)
        status = max([status, *results])
sys.exit(status)
