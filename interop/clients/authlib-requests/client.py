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

from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

# The contract's calls and exit status (interop/clients/contract.py), shared by the adapters.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import contract  # noqa: E402

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
        return contract.answered(start, session.get(env["FIGURE2_RESOURCE_URL"], timeout=10))
    except OAuthError as e:
        return contract.refused(start, f"refresh refused: {e.error}", e.error == "invalid_grant")
    except Exception as e:
        return contract.failed(start, e)


contract.run_threads(start, call)
