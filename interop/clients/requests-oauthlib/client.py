"""requests-oauthlib's OAuth2Session as a `figure2 check-client` program.

As documented ("Refreshing tokens", third option: automatic refresh and update,
https://requests-oauthlib.readthedocs.io/en/latest/oauth2_workflow.html#refreshing-tokens):
`auto_refresh_url`, `auto_refresh_kwargs` with the client's credentials and a
`token_updater` that saves the new token. The password grant comes from the documented
Legacy Application flow. The adapter adds no refresh logic: it makes the contract's calls
(crates/conformance/src/client.rs), concurrent ones with threads; exit 0 if every call got
200, 3 if the library reports invalid_grant, 1 otherwise.
"""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from oauthlib.oauth2 import InvalidGrantError, LegacyApplicationClient
from requests_oauthlib import OAuth2Session

env = os.environ
env["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # http:// on loopback (documented setting)
client_id, client_secret = env["FIGURE2_CLIENT_ID"], env["FIGURE2_CLIENT_SECRET"]
saved = {}


def token_saver(token):
    saved["token"] = token


session = OAuth2Session(
    client=LegacyApplicationClient(client_id=client_id),
    scope=env["FIGURE2_SCOPE"].split(),
    auto_refresh_url=env["FIGURE2_TOKEN_ENDPOINT"],
    auto_refresh_kwargs={"client_id": client_id, "client_secret": client_secret},
    token_updater=token_saver,
)
session.fetch_token(
    token_url=env["FIGURE2_TOKEN_ENDPOINT"],
    username=env["FIGURE2_USERNAME"],
    password=env["FIGURE2_PASSWORD"],
    client_id=client_id,
    client_secret=client_secret,
)
start = time.monotonic()


def call():
    try:
        r = session.get(env["FIGURE2_RESOURCE_URL"], timeout=10)
        print(f"{time.monotonic() - start:7.3f}s GET -> {r.status_code}", flush=True)
        return 0 if r.status_code == 200 else 1
    except InvalidGrantError as e:
        print(f"{time.monotonic() - start:7.3f}s refresh refused: {e.error}", flush=True)
        return 3
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
