#!/usr/bin/env python3
"""Start-up time of Figure2's authorization server: from spawning the process to the first
answered request (GET /health, 200), measured on loopback, many times, with a baseline in
the same run.

Lines (each run N times, interleaved, median and p90 reported):
  exec-only      `authorization-server --version`: spawn, dynamic linking, argument
                 parsing, exit. The floor any binary pays; the baseline of the ratios.
  first-start    serve with a fresh SQLite file: creates the schema, generates the ES256
                 signing key, binds, answers /health.
  restart        serve with that file again: opens it and loads the stored key.
  memory         serve with `:memory:` storage (what tests usually do).
  test-control   `memory` with --test-control on.

Usage: python3 scripts/startup-time.py [--runs N] [--binary target/release/authorization-server]
(build first: cargo build --release -p figure2-authorization-server)
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_answer(port, deadline):
    """Polls until /health answers 200; returns the perf_counter time of the answer."""
    while time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(REQUEST)
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return time.perf_counter()
        except OSError:
            time.sleep(0.0002)
    raise SystemExit(f"no answer on port {port} in time")


def serve_once(binary, config, database, extra):
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    args = [binary, "--config", config, "--issuer", issuer, "--listen", f"127.0.0.1:{port}", "--database", database]
    env = dict(os.environ, RUST_LOG="warn")
    start = time.perf_counter()
    child = subprocess.Popen(args + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        answered = first_answer(port, start + 20)
    finally:
        child.terminate()
        child.wait(timeout=10)
    return (answered - start) * 1000


def exec_only(binary):
    start = time.perf_counter()
    subprocess.run([binary, "--version"], stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--binary", default="target/release/authorization-server")
    parser.add_argument("--config", default="config/demo.toml")
    opts = parser.parse_args()
    times = {name: [] for name in ["exec-only", "first-start", "restart", "memory", "test-control"]}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(opts.runs):
            db = os.path.join(tmp, f"run{i}.db")
            times["exec-only"].append(exec_only(opts.binary))
            times["first-start"].append(serve_once(opts.binary, opts.config, db, []))
            times["restart"].append(serve_once(opts.binary, opts.config, db, []))
            times["memory"].append(serve_once(opts.binary, opts.config, ":memory:", []))
            times["test-control"].append(serve_once(opts.binary, opts.config, ":memory:", ["--test-control"]))
    base = statistics.median(times["exec-only"])
    size = os.path.getsize(opts.binary)
    print(f"authorization-server start-up to first answered request ({opts.runs} runs each, "
          f"{os.cpu_count()} cores, binary {size / 1e6:.1f} MB)")
    print(f"{'line':<14} {'median ms':>10} {'p90 ms':>8} {'× exec-only':>12}")
    for name, values in times.items():
        values.sort()
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        median = statistics.median(values)
        print(f"{name:<14} {median:>10.1f} {p90:>8.1f} {median / base:>12.1f}")


if __name__ == "__main__":
    sys.exit(main())
