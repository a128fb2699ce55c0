"""Authlib's AsyncOAuth2Client (httpx) as a `figure2 check-client` program.

As documented (https://docs.authlib.org/en/latest/client/httpx.html): with
`token_endpoint` set, the client refreshes an expired access token by itself before a
request. The adapter adds no refresh logic: password grant, then the contract's calls
(crates/conformance/src/client.rs), concurrent ones with asyncio.gather; exit 0 if every
call got 200, 3 if the library reports invalid_grant, 1 otherwise.
"""
import asyncio
import os
import sys
import time

from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

# The contract's calls and exit status (interop/clients/contract.py), shared by the adapters.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import contract  # noqa: E402

env = os.environ
env["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # http:// on loopback (documented setting)
leeway = int(env.get("AUTHLIB_LEEWAY", "60"))  # Authlib's default; see --client-leeway


async def main():
    client = AsyncOAuth2Client(
        env["FIGURE2_CLIENT_ID"],
        env["FIGURE2_CLIENT_SECRET"],
        scope=env["FIGURE2_SCOPE"],
        token_endpoint=env["FIGURE2_TOKEN_ENDPOINT"],
        leeway=leeway,
    )
    async with client:
        await client.fetch_token(username=env["FIGURE2_USERNAME"], password=env["FIGURE2_PASSWORD"])
        start = time.monotonic()

        async def call():
            try:
                return contract.answered(start, await client.get(env["FIGURE2_RESOURCE_URL"], timeout=10))
            except OAuthError as e:
                return contract.refused(start, f"refresh refused: {e.error}", e.error == "invalid_grant")
            except Exception as e:
                return contract.failed(start, e)

        return await contract.run_tasks(start, call)


sys.exit(asyncio.run(main()))
