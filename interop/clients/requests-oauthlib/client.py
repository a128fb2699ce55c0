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

from oauthlib.oauth2 import InvalidGrantError, LegacyApplicationClient
from requests_oauthlib import OAuth2Session

# The contract's calls and exit status (interop/clients/contract.py), shared by the adapters.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import contract  # noqa: E402

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
        return contract.answered(start, session.get(env["FIGURE2_RESOURCE_URL"], timeout=10))
    except InvalidGrantError as e:
        return contract.refused(start, f"refresh refused: {e.error}")
    except Exception as e:
        return contract.failed(start, e)


contract.run_threads(start, call)
