"""The interop table's data and page (scripts/interop-table.sh calls this).

  interop_table.py collect OUT RUNS        JSON of the measured verdicts on stdout; fails if
                                           a client's runs disagree
  interop_table.py compare EXPECTED ACTUAL fails if any verdict changed
  interop_table.py changed-clients EXPECTED ACTUAL
                                           the clients whose verdicts changed, one per line
  interop_table.py render EXPECTED NOTES   docs/interop.md on stdout; fails if a failed
                                           check has no note saying what it is, or a note
                                           is about a check that did not fail

Only verdicts (pass, FAIL, skip) are compared: reasons carry token fingerprints and
timings that change from run to run.
"""
import datetime
import json
import pathlib
import sys
import tomllib

SERVERS = {
    "authlib": ("Authlib", "Authlib {Authlib} (Flask {Flask}, SQLAlchemy {SQLAlchemy})",
                "interop/servers/authlib/server.py"),
    "django-oauth-toolkit": ("django-oauth-toolkit",
                             "django-oauth-toolkit {django-oauth-toolkit} (Django {Django}, oauthlib {oauthlib})",
                             "interop/servers/django-oauth-toolkit/server.py"),
    "oidc-provider": ("oidc-provider", "oidc-provider {oidc-provider} (npm)",
                      "interop/servers/oidc-provider/server.mjs"),
}
CLIENTS = {
    "authlib-requests": ("Authlib OAuth2Session", "Authlib {Authlib} (requests {requests})",
                         "interop/clients/authlib-requests/client.py"),
    "authlib-httpx": ("Authlib AsyncOAuth2Client", "Authlib {Authlib} (httpx {httpx})",
                      "interop/clients/authlib-httpx/client.py"),
    "requests-oauthlib": ("requests-oauthlib OAuth2Session",
                          "requests-oauthlib {requests-oauthlib} (oauthlib {oauthlib})",
                          "interop/clients/requests-oauthlib/client.py"),
    "requests-auth": ("requests-auth OAuth2ResourceOwnerPasswordCredentials", "requests-auth {requests-auth}",
                      "interop/clients/requests-auth/client.py"),
    "authlib-httpx-default-leeway": ("Authlib AsyncOAuth2Client, default leeway (60 s), 30-second tokens",
                                     "Authlib {Authlib} (httpx {httpx})",
                                     "interop/clients/authlib-httpx/client.py"),
}
STRONG = {"MUST", "MUST NOT"}


def report(path):
    data = json.loads(pathlib.Path(path).read_text())
    return {
        r["id"]: {"verdict": r["verdict"], "keyword": r["keyword"], "reason": r["reason"], "summary": r["summary"],
                  "section": r["section"]}
        for r in data["results"]
    }


def collect(out, runs):
    out = pathlib.Path(out)
    versions = json.loads((out / "versions.json").read_text())
    versions.update(json.loads((out / "versions-npm.json").read_text()))
    result = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"), "versions": versions,
              "servers": {}, "clients": {}}
    for name in SERVERS:
        base = out / "servers" / name
        result["servers"][name] = {"command": (base.with_suffix(".cmd")).read_text().strip(),
                                   "results": report(base.with_suffix(".json"))}
    unstable = []
    for name in CLIENTS:
        reports = [report(out / "clients" / f"{name}.run{i}.json") for i in range(1, runs + 1)]
        # Re-measured alone after a changed verdict (scripts/interop-table.sh): that run counts.
        again = out / "clients" / f"{name}.runagain.json"
        if again.exists():
            reports[0] = report(again)
        verdicts = [{k: v["verdict"] for k, v in r.items()} for r in reports]
        for i, v in enumerate(verdicts[1:], start=2):
            for check in sorted(set(v) | set(verdicts[0])):
                if v.get(check) != verdicts[0].get(check):
                    unstable.append(f"{name} {check}: run 1 {verdicts[0].get(check)}, run {i} {v.get(check)}")
        result["clients"][name] = {"command": (out / "clients" / f"{name}.run1.cmd").read_text().strip(),
                                   "runs": len(reports), "results": reports[0],
                                   "identical_runs": not any(u.startswith(name + " ") for u in unstable)}
    print(json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False))
    if unstable:
        print("FAIL: a client's runs disagree:\n  " + "\n  ".join(unstable), file=sys.stderr)
        sys.exit(1)


def verdicts(data):
    return {(kind, name, check): r["verdict"]
            for kind in ("servers", "clients") for name, target in data[kind].items()
            for check, r in target["results"].items()}


def changes(expected, actual):
    """(kind, target, check) -> (expected verdict, measured verdict), for each that differs."""
    want, got = verdicts(json.loads(pathlib.Path(expected).read_text())), verdicts(
        json.loads(pathlib.Path(actual).read_text()))
    return {k: (want.get(k), got.get(k)) for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)}


def compare(expected, actual):
    changed = [f"{k[1]} {k[2]}: expected {w}, got {g}" for k, (w, g) in changes(expected, actual).items()]
    if changed:
        print("FAIL: the interop table changed (if on purpose: bash scripts/interop-table.sh --update,\n"
              "then say in interop/notes.toml what each new failure is):\n  " + "\n  ".join(changed), file=sys.stderr)
        sys.exit(1)
    print(f"{len(verdicts(json.loads(pathlib.Path(actual).read_text())))} verdicts as expected")


def changed_clients(expected, actual):
    """The clients whose verdicts changed, one per line; what changed goes to stderr."""
    changed = {k: v for k, v in changes(expected, actual).items() if k[0] == "clients"}
    for k, (w, g) in changed.items():
        print(f"   changed in the side-by-side run: {k[1]} {k[2]}: expected {w}, got {g}", file=sys.stderr)
    print("\n".join(sorted({k[1] for k in changed})))


def counts(results):
    c = {"pass": 0, "fail": 0, "strong": 0, "skip": 0}
    for r in results.values():
        c[r["verdict"]] += 1
        if r["verdict"] == "fail" and r["keyword"] in STRONG:
            c["strong"] += 1
    return c


def md(text):
    return text.replace("|", "\\|").replace("\n", " ")


def render(expected, notes_path):
    data = json.loads(pathlib.Path(expected).read_text())
    notes = tomllib.loads(pathlib.Path(notes_path).read_text())
    v = data["versions"]
    by_key = {}
    for n in notes.get("note", []):
        for t in n["targets"]:
            by_key[(t, n["check"])] = n
    missing = []
    lines = []
    w = lines.append
    w("# Interop table: `figure2 check` and `figure2 check-client` against real servers and clients")
    w("")
    w(f"Measured **{data['date']}** by `scripts/interop-table.sh` (generated from `interop/expected.json` and "
      "`interop/notes.toml`; do not edit by hand). Each server runs the smallest configuration its documentation "
      "gives that issues refresh tokens, each client library is wrapped in the smallest adapter that uses it as "
      "documented, with no refresh logic of its own (files under `interop/`). Everything runs on 127.0.0.1.")
    w("")
    w("Reproduce, and compare with this page's verdicts (CI does this in `.ci/run`):")
    w("")
    w("```sh")
    w("bash scripts/interop-table.sh            # fails if the checker crashes, a client's two runs differ, or a verdict changed")
    w("bash scripts/interop-table.sh --update   # re-measure: rewrites interop/expected.json and this page")
    w("```")
    w("")
    w("Every failed check below is classified: **deviation** (the library breaks the RFC text quoted), **not a "
      "deviation** (an optional behaviour not taken, or a configuration choice), or **checker limit** (the "
      "checker was wrong; those found while measuring were fixed, see the end).")
    w("")
    w("## Headline")
    w("")
    w("| target | version | pass | fail (of which MUST/MUST NOT) | skip | deviations | not deviations | runs identical |")
    w("|---|---|---|---|---|---|---|---|")
    sections = []
    for kind, table in (("servers", SERVERS), ("clients", CLIENTS)):
        for name, (title, version, path) in table.items():
            target = data[kind][name]
            c = counts(target["results"])
            kinds = {"deviation": 0, "not a deviation": 0, "checker limit": 0}
            failed = [(cid, r) for cid, r in target["results"].items() if r["verdict"] == "fail"]
            for cid, _ in failed:
                note = by_key.get((name, cid))
                if note is None:
                    missing.append(f"{name} {cid}")
                else:
                    kinds[note["kind"]] += 1
            runs = f"{target['runs']} of {target['runs']}" if kind == "clients" and target["identical_runs"] else (
                "no" if kind == "clients" else "—")
            w(f"| [{title}](#{name}) | {version.format(**v)} | {c['pass']} | {c['fail']} ({c['strong']}) | "
              f"{c['skip']} | {kinds['deviation']} | {kinds['not a deviation']} | {runs} |")
            s = []
            s.append(f"### {name}")
            s.append("")
            s.append(f"**{title}**, {version.format(**v)}: [`{path}`](../{path}). "
                     f"{c['pass']} passed, {c['fail']} failed, {c['skip']} skipped"
                     + (f"; {target['runs']} runs with identical verdicts." if kind == "clients" else "."))
            s.append("")
            s.append("```sh")
            s.append(target["command"])
            s.append("```")
            s.append("")
            if failed:
                s.append("| check | key word | what the checker saw | verdict | why |")
                s.append("|---|---|---|---|---|")
                for cid, r in failed:
                    note = by_key.get((name, cid), {"kind": "UNCLASSIFIED", "text": ""})
                    seen = r["reason"]
                    seen = seen if len(seen) <= 300 else seen[:297] + "..."
                    s.append(f"| `{cid}` ({md(r['section'])}) | {r['keyword']} | {md(seen)} | **{note['kind']}** | "
                             f"{md(note['text'])} |")
                s.append("")
            skipped = {}
            for cid, r in target["results"].items():
                if r["verdict"] == "skip":
                    skipped.setdefault(r["reason"], []).append(cid)
            if skipped:
                s.append("<details><summary>Skipped, and why</summary>")
                s.append("")
                for reason, ids in sorted(skipped.items(), key=lambda kv: -len(kv[1])):
                    s.append(f"- {md(reason)}: " + ", ".join(f"`{i}`" for i in ids))
                s.append("")
                s.append("</details>")
                s.append("")
            sections.append(s)
        if kind == "servers":
            pass
    w("")
    w("`$OUT` in the commands is the script's scratch directory; ports are the script's defaults.")
    w("")
    w("## Servers")
    w("")
    for s in sections[: len(SERVERS)]:
        lines.extend(s)
    w("## Clients")
    w("")
    w(notes.get("clients_intro", "").strip())
    w("")
    for s in sections[len(SERVERS):]:
        lines.extend(s)
    w("## Checker limits found while measuring, and fixed")
    w("")
    for f in notes.get("fixed", []):
        w(f"- **{f['check']}**: {f['text']}")
    w("")
    failed_keys = {(name, cid) for kind in ("servers", "clients") for name, target in data[kind].items()
                   for cid, r in target["results"].items() if r["verdict"] == "fail"}
    stale = sorted(f"{t} {c}" for (t, c) in by_key if (t, c) not in failed_keys)
    if stale:
        print("FAIL: notes in interop/notes.toml for checks that did not fail:\n  " + "\n  ".join(stale),
              file=sys.stderr)
        sys.exit(1)
    if missing:
        print("FAIL: failed checks without a note in interop/notes.toml:\n  " + "\n  ".join(missing), file=sys.stderr)
        sys.exit(1)
    print("\n".join(lines).rstrip() + "\n", end="")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "collect":
        collect(sys.argv[2], int(sys.argv[3]))
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3])
    elif cmd == "changed-clients":
        changed_clients(sys.argv[2], sys.argv[3])
    elif cmd == "render":
        render(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
