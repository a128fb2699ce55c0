"""The side of the `figure2 check-client` contract that is not the library under test
(crates/conformance/src/client.rs): the calls at FIGURE2_CALL_TIMES, FIGURE2_CONCURRENCY at
a time, a line per call on stdout, and the exit status: 0 if every call got 200, 3 if the
library reported invalid_grant (the resource owner must authorize again), 1 otherwise.
Each adapter imports it and keeps only the library's own code.
"""
import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

CALL_TIMES = [float(t) for t in os.environ["FIGURE2_CALL_TIMES"].split(",")]
CONCURRENCY = int(os.environ["FIGURE2_CONCURRENCY"])


def _say(start, what):
    print(f"{time.monotonic() - start:7.3f}s {what}", flush=True)


def answered(start, response):
    """A call the library made: its status."""
    _say(start, f"GET -> {response.status_code}")
    return 0 if response.status_code == 200 else 1


def refused(start, what, invalid_grant=True):
    """The library reported a refused token request."""
    _say(start, what)
    return 3 if invalid_grant else 1


def failed(start, error):
    """Any other failure (a lost answer, a 429): this call failed."""
    _say(start, f"failed: {error!r}")
    return 1


def _worst(status, results):
    return 3 if 3 in results else max([status, *results])


def run_threads(start, call):
    """Runs `call()` at each call time on CONCURRENCY threads; exits with the status."""
    status = 0
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        for at in CALL_TIMES:
            time.sleep(max(0.0, at - (time.monotonic() - start)))
            status = _worst(status, list(pool.map(lambda _: call(), range(CONCURRENCY))))
            if status == 3:
                break
    sys.exit(status)


async def run_tasks(start, call):
    """The same with asyncio tasks (`call` is a coroutine function); returns the status."""
    status = 0
    for at in CALL_TIMES:
        await asyncio.sleep(max(0.0, at - (time.monotonic() - start)))
        status = _worst(status, await asyncio.gather(*(call() for _ in range(CONCURRENCY))))
        if status == 3:
            break
    return status
