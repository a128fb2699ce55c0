"""Authlib's OAuth2Session (requests) as a `figure2 check-client` program.

The library as its documentation shows it: an OAuth2Session with `token_endpoint` set
refreshes the access token by itself before a request when the token has expired
(https://docs.authlib.org/en/latest/client/oauth2.html#auto-update-token). The adapter
adds no refresh logic: it fetches a token with the password grant, makes the calls of the
contract (crates/conformance/src/client.rs) with threads when asked for concurrency, and
exits 0 if every call got 200, 3 if the library reports invalid_grant, 1 otherwise.
"""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

env = os.environ
# Authlib refuses http:// token endpoints unless told otherwise (documented setting).
env["AUTHLIB_INSECURE_TRANSPORT"] = "1"
# `leeway`: seconds before expiry at which Authlib refreshes (default 60). Declare the
# same to the checker with --client-leeway.
leeway = int(env.get("AUTHLIB_LEEWAY", "60"))

session = OAuth2Session(
    env["FIGURE2_CLIENT_ID"],
    env["FIGURE2_CLIENT_SECRET"],
    scope=env["FIGURE2_SCOPE"],
    token_endpoint=env["FIGURE2_TOKEN_ENDPOINT"],
    leeway=leeway,
)
session.fetch_token(username=env["FIGURE2_USERNAME"], password=env["FIGURE2_PASSWORD"])
start = time.monotonic()


def call():
    try:
        r = session.get(env["FIGURE2_RESOURCE_URL"], timeout=10)
        print(f"{time.monotonic() - start:7.3f}s GET -> {r.status_code}", flush=True)
        return 0 if r.status_code == 200 else 1
    except OAuthError as e:
        print(f"{time.monotonic() - start:7.3f}s refresh refused: {e.error}", flush=True)
        return 3 if e.error == "invalid_grant" else 1
    except Exception as e:  # any other failure (a lost answer, a 429): this call failed
        print(f"{time.monotonic() - start:7.3f}s failed: {e!r}", flush=True)
        return 1


status = 0
concurrency = int(env["FIGURE2_CONCURRENCY"])
with ThreadPoolExecutor(max_workers=concurrency) as pool:
    for at in (float(t) for t in env["FIGURE2_CALL_TIMES"].split(",")):
        time.sleep(max(0.0, at - (time.monotonic() - start)))
        results = list(pool.map(lambda _: call(), range(concurrency)))
        if 3 in results:
            sys.exit(3)
        status = max([status, *results])
sys.exit(status)
