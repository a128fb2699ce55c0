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
                r = await client.get(env["FIGURE2_RESOURCE_URL"], timeout=10)
                print(f"{time.monotonic() - start:7.3f}s GET -> {r.status_code}", flush=True)
                return 0 if r.status_code == 200 else 1
            except OAuthError as e:
                print(f"{time.monotonic() - start:7.3f}s refresh refused: {e.error}", flush=True)
                return 3 if e.error == "invalid_grant" else 1
            except Exception as e:  # any other failure (a lost answer, a 429): this call failed
                print(f"{time.monotonic() - start:7.3f}s failed: {e!r}", flush=True)
                return 1

        status = 0
        for at in (float(t) for t in env["FIGURE2_CALL_TIMES"].split(",")):
            await asyncio.sleep(max(0.0, at - (time.monotonic() - start)))
            results = await asyncio.gather(*(call() for _ in range(int(env["FIGURE2_CONCURRENCY"]))))
            if 3 in results:
                return 3
            status = max([status, *results])
        return status


sys.exit(asyncio.run(main()))
