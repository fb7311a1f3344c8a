"""`slipway`: register a release, wait for its approval, promote it and follow the operation — from a pipeline.

Reads SLIPWAY_URL and SLIPWAY_TOKEN from the environment (`--url`, `--token` override them). Human output
by default; `--json` prints the final API object with an `exit_code` (progress goes to stderr then).

Exit codes: 0 done (approved, succeeded), 1 rejected / failed / rolled back, 2 expired or timed out,
3 promotion blocked (409), 4 refused by the API (bad input, token, permission, conflict), 5 Slipway unreachable
or failing, 64 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from . import __version__
from .client import Client, SlipwayError

OK, FAILED, TIMEOUT, BLOCKED, REFUSED, UNAVAILABLE, USAGE = 0, 1, 2, 3, 4, 5, 64

OPERATION_GOOD = {"succeeded"}
OPERATION_BAD = {"failed", "rolled_back", "cancelled"}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Body fields of a registration → the flags that set them, to name the flag in a field error.
REGISTER_FLAGS = {
    "application": "--app",
    "version": "--version",
    "build_id": "--build-id",
    "commit_sha": "--commit",
    "committed_at": "--committed-at",
    "branch": "--branch",
    "notes": "--notes",
    "artifact_url": "--artifact-url",
    "deployed_slot": "--slot",
}


class Usage(Exception):
    """A usage or configuration error: exit 64."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would exit 2, which means "timed out" here
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def duration(text: str) -> float:
    """90s, 10m, 2h, 1d, 1h30m, 0.5s, or plain seconds → seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90s, 10m, 2h)")
    return sum(float(n) * UNITS[u] for n, u in parts)


def option(text: str) -> tuple[str, Any]:
    """key=value; the value is read as JSON when it is JSON (numbers, true, lists), as text otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"not key=value: {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class Command:
    """What every command shares: the client, the output streams, --json."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.json = bool(getattr(args, "json", False))
        self.out = out
        self.err = err
        url = getattr(args, "url", None) or os.environ.get("SLIPWAY_URL", "")
        token = getattr(args, "token", None) or os.environ.get("SLIPWAY_TOKEN", "")
        if not url:
            raise Usage("no Slipway URL: set SLIPWAY_URL (or pass --url)")
        if not re.match(r"^https?://", url):
            raise Usage(f"SLIPWAY_URL must start with http:// or https://, not {url!r}")
        if not token:
            raise Usage("no API token: set SLIPWAY_TOKEN (or pass --token)")
        self.client = Client(url, token, log=self.progress)
        # One key per invocation and step, reused by the client's retries; --idempotency-key makes it
        # stable across reruns of the pipeline step too.
        given = getattr(args, "idempotency_key", None)
        self.key_base = given or str(uuid.uuid4())

    def key(self, step: str) -> str:
        """The Idempotency-Key of this invocation's POST (`step` names it in a generated key)."""
        return self.key_base if getattr(self.args, "idempotency_key", None) else f"slipway-{step}-{self.key_base}"

    def say(self, line: str = "") -> None:
        """A line of the human result (nothing with --json)."""
        if not self.json:
            print(line, file=self.out, flush=True)

    def progress(self, line: str) -> None:
        """A progress line: on stdout for people, on stderr with --json so stdout stays JSON."""
        print(line, file=self.err if self.json else self.out, flush=True)

    def done(self, code: int, body: Any) -> int:
        if self.json:
            payload = dict(body) if isinstance(body, dict) else {"result": body}
            payload["exit_code"] = code
            print(json.dumps(payload, indent=2, sort_keys=False), file=self.out, flush=True)
        return code

    # --- shared look-ups -------------------------------------------------------------------------------

    def release_id(self) -> int:
        if self.args.release:
            return self.args.release
        app, version = getattr(self.args, "app", None), getattr(self.args, "version", None)
        if not (app and version):
            raise Usage("name the release: --release ID, or --app SLUG --version VERSION")
        page = self.client.get("/releases", {"application": app, "version": version, "limit": 1})
        if not page["items"]:
            raise SlipwayError(f"There is no release {version} of {app!r}.", status=404)
        return int(page["items"][0]["id"])

    def follow(self, operation: dict[str, Any], *, timeout: float, interval: float, good: set[str]) -> int:
        """Poll the operation until it ends, printing each step as it changes."""
        deadline = time.monotonic() + timeout
        seen: dict[int, tuple[str, int]] = {}
        last_status = ""
        while True:
            total = len(operation["steps"])
            for step in operation["steps"]:
                state = (step["status"], step["progress"])
                if seen.get(step["position"]) != state and step["status"] != "pending":
                    seen[step["position"]] = state
                    progress = f" {step['progress']} %" if step["status"] in ("running", "waiting") else ""
                    self.progress(f"  [{step['position']}/{total}] {step['title']}: {step['status']}{progress}")
            if operation["status"] != last_status:
                last_status = operation["status"]
                waiting = f" — {operation['waiting_for']}" if operation.get("waiting_for") else ""
                self.progress(f"Operation {operation['id']}: {operation['status']}{waiting}")
            if operation["status"] in good:
                self.say(f"Operation {operation['id']} {operation['status']}.")
                return self.done(OK, operation)
            if operation["status"] in OPERATION_BAD | OPERATION_GOOD:
                self.say(f"Operation {operation['id']} {operation['status']}.")
                print(f"error: {operation['error'] or 'no reason given'}", file=self.err, flush=True)
                return self.done(FAILED, operation)
            if time.monotonic() >= deadline:
                message = f"operation {operation['id']} is still {last_status}"
                print(f"error: timed out after {human_duration(timeout)}: {message}", file=self.err, flush=True)
                return self.done(TIMEOUT, operation)
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
            operation = self.client.get(f"/operations/{operation['id']}")


# --- commands -------------------------------------------------------------------------------------------


def release_register(cmd: Command) -> int:
    args = cmd.args
    notes = args.notes or ""
    if args.notes_file:
        try:
            with open(args.notes_file, encoding="utf-8") if args.notes_file != "-" else sys.stdin as source:
                notes = source.read()
        except OSError as exc:
            raise Usage(f"cannot read --notes-file: {exc}") from None
    body: dict[str, Any] = {"application": args.app, "version": args.version}
    for field, value in (
        ("build_id", args.build_id),
        ("commit_sha", args.commit),
        ("committed_at", args.committed_at),
        ("branch", args.branch),
        ("notes", notes),
        ("artifact_url", args.artifact_url),
        ("deployed_slot", args.slot),
    ):
        if value:
            body[field] = value
    status, release = cmd.client.post("/releases", body, idempotency_key=cmd.key("register"))
    if args.quiet and not cmd.json:
        print(release["id"], file=cmd.out, flush=True)
        return OK
    verb = "Registered" if status == 201 else "Already registered:"
    cmd.say(f"{verb} {release['application']} {release['version']} as release {release['id']} ({release['status']})")
    cmd.say(f"  {cmd.client.base.removesuffix('/api/v1')}{release['links']['html']}")
    return cmd.done(OK, release)


def approval_request(cmd: Command) -> int:
    body = {k: v for k, v in (("environment", cmd.args.environment), ("reason", cmd.args.reason)) if v}
    release_id = cmd.release_id()
    _, approval = cmd.client.post(f"/releases/{release_id}/approval", body, idempotency_key=cmd.key("approval"))
    cmd.say(
        f"Approval requested for {approval['environment_name']}: {approval['approvals']} of "
        f"{approval['approvals_required']} approvals, expires {approval['expires_at']}"
    )
    return cmd.done(OK, approval)


def approval_wait(cmd: Command) -> int:
    args = cmd.args
    release_id = cmd.release_id()
    deadline = time.monotonic() + args.timeout
    last: tuple[Any, ...] = ()
    while True:
        state = cmd.client.get(f"/releases/{release_id}/approval")
        release = state["release"]
        current = state["requests"][0] if state["requests"] else None
        if current is None:
            if release["status"] in ("approved", "rolling_out", "live"):
                cmd.say(f"Release {release['id']} ({release['version']}) is {release['status']}: nothing to approve.")
                return cmd.done(OK, state)
            key: tuple[Any, ...] = ("none", release["status"])
            line = f"Release {release['id']} ({release['version']}) has no approval request yet ({release['status']})"
        else:
            key = (current["id"], current["status"], current["approvals"], len(current["decisions"]))
            line = (
                f"Approval for {current['environment_name']}: {current['approvals']} of "
                f"{current['approvals_required']} approvals ({current['status']}, expires {current['expires_at']})"
            )
        if key != last:
            last = key
            cmd.progress(line)
            for decision in (current or {}).get("decisions", [])[-1:]:
                comment = f": {decision['comment']}" if decision["comment"] else ""
                cmd.progress(f"  {decision['verdict']} by {decision['approver']}{comment}")
        if current is not None and current["status"] == "approved":
            cmd.say(f"Approved: release {release['id']} ({release['version']}) may be promoted.")
            return cmd.done(OK, state)
        if current is not None and current["status"] == "rejected":
            rejection = next((d for d in current["decisions"] if d["verdict"] == "reject"), None)
            who = f" by {rejection['approver']}" if rejection else ""
            comment = f": {rejection['comment']}" if rejection and rejection["comment"] else ""
            print(f"error: release {release['id']} was rejected{who}{comment}", file=cmd.err, flush=True)
            return cmd.done(FAILED, state)
        if current is not None and current["status"] == "expired":
            print(f"error: the approval request expired at {current['expires_at']}", file=cmd.err, flush=True)
            return cmd.done(TIMEOUT, state)
        if release["status"] in ("rejected", "rolled_back", "failed", "superseded"):
            print(f"error: release {release['id']} is {release['status']}", file=cmd.err, flush=True)
            return cmd.done(FAILED, state)
        if time.monotonic() >= deadline:
            message = f"timed out after {human_duration(args.timeout)} waiting for approval"
            print(f"error: {message}", file=cmd.err, flush=True)
            return cmd.done(TIMEOUT, state)
        time.sleep(max(0.0, min(args.interval, deadline - time.monotonic())))


def promote(cmd: Command) -> int:
    args = cmd.args
    body: dict[str, Any] = {"parameters": dict(args.option or [])}
    if args.strategy:
        body["strategy"] = args.strategy
    if args.reason:
        body["reason"] = args.reason
    release_id = cmd.release_id()
    try:
        _, operation = cmd.client.post(f"/releases/{release_id}/promote", body, idempotency_key=cmd.key("promote"))
    except SlipwayError as exc:
        # 409: the policy blocks it (with `blockers`), or the release cannot be promoted as it stands.
        if exc.status != 409 or exc.kind == "in-progress":
            raise
        print(f"blocked: {exc.detail}", file=cmd.err, flush=True)
        for blocker in exc.blockers:
            print(f"  - {blocker}", file=cmd.err, flush=True)
        return cmd.done(BLOCKED, exc.body)
    cmd.progress(
        f"Operation {operation['id']} started: {operation['strategy']} of {operation['application']} "
        f"{operation['release']['version']} to {operation['environment']}"
    )
    cmd.say(f"  {cmd.client.base.removesuffix('/api/v1')}{operation['links']['html']}")
    if not args.wait:
        return cmd.done(OK, operation)
    return cmd.follow(operation, timeout=args.timeout, interval=args.interval, good=OPERATION_GOOD)


def rollback(cmd: Command) -> int:
    args = cmd.args
    body = {"reason": args.reason}
    if args.operation:
        _, operation = cmd.client.post(
            f"/operations/{args.operation}/rollback", body, idempotency_key=cmd.key("rollback")
        )
    elif args.app:
        _, operation = cmd.client.post(f"/applications/{args.app}/rollback", body, idempotency_key=cmd.key("rollback"))
    else:
        raise Usage("name what to roll back: --app SLUG or --operation ID")
    cmd.progress(f"Rollback: operation {operation['id']} ({operation['kind']}) is {operation['status']}")
    if not args.wait:
        return cmd.done(OK, operation)
    # Aborting a promotion ends it rolled back; a production rollback is an operation that succeeds.
    return cmd.follow(
        operation, timeout=args.timeout, interval=args.interval, good={"succeeded", "rolled_back", "cancelled"}
    )


def status(cmd: Command) -> int:
    args = cmd.args
    if args.operation:
        operation = cmd.client.get(f"/operations/{args.operation}")
        _print_operation(cmd, operation)
        return cmd.done(OK, operation)
    if args.release or args.version:
        release = cmd.client.get(f"/releases/{cmd.release_id()}")
        approval = cmd.client.get(f"/releases/{release['id']}/approval")
        operations = cmd.client.get("/operations", {"release": release["id"], "limit": 1})["items"]
        cmd.say(f"Release {release['id']}: {release['application']} {release['version']} — {release['status']}")
        cmd.say(f"  registered {release['created_at']} by {release['created_by'] or '-'}")
        if release["commit_sha"]:
            cmd.say(f"  commit {release['commit_sha']} {release['branch']}".rstrip())
        for request in approval["requests"][:1]:
            cmd.say(
                f"  approval for {request['environment_name']}: {request['status']}, "
                f"{request['approvals']} of {request['approvals_required']}"
            )
        for operation in operations:
            cmd.say(f"  latest operation {operation['id']}: {operation['kind']} {operation['status']}")
            if operation["error"]:
                cmd.say(f"    {operation['error']}")
        return cmd.done(
            OK, {**release, "approval": approval["requests"][:1], "latest_operation": (operations or [None])[0]}
        )
    if args.app:
        application = cmd.client.get(f"/applications/{args.app}")
        live = application["live_release"]
        cmd.say(f"{application['name']} ({application['slug']}), team {application['team'] or '-'}")
        cmd.say(f"  live: {live['version'] + ' (release ' + str(live['id']) + ')' if live else 'nothing'}")
        for env in application["environments"]:
            slot = env["slot"]
            cmd.say(
                f"  {env['name']:<14} {slot['name']:<12} {slot['running_version'] or '-':<16} "
                f"{slot['traffic_percent']:>3} %  {slot['health']}"
            )
        return cmd.done(OK, application)
    raise Usage("say what to show: --release ID, --app SLUG [--version V] or --operation ID")


def _print_operation(cmd: Command, operation: dict[str, Any]) -> None:
    cmd.say(
        f"Operation {operation['id']}: {operation['kind']} ({operation['strategy']}) of {operation['application']} "
        f"{operation['release']['version']} to {operation['environment']} — {operation['status']}"
    )
    if operation["waiting_for"]:
        cmd.say(f"  waiting for: {operation['waiting_for']}")
    if operation["error"]:
        cmd.say(f"  error: {operation['error']}")
    total = len(operation["steps"])
    for step in operation["steps"]:
        cmd.say(f"  [{step['position']}/{total}] {step['title']}: {step['status']} {step['progress']} %")


# --- the parser -----------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    # SUPPRESS: the options may come before or after the command without one erasing the other.
    common.add_argument("--url", default=argparse.SUPPRESS, help="Slipway's address (default: $SLIPWAY_URL)")
    common.add_argument("--token", default=argparse.SUPPRESS, help="an API token (default: $SLIPWAY_TOKEN)")
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON, with exit_code"
    )
    top = Parser(prog="slipway", description=__doc__, parents=[common], formatter_class=argparse.RawTextHelpFormatter)
    top.add_argument("--version", action="version", version=f"slipway {__version__}")
    commands = top.add_subparsers(dest="command", required=True, parser_class=Parser)

    def release_ref(p: argparse.ArgumentParser, *, app: bool = True) -> None:
        p.add_argument("--release", type=int, help="the release's id")
        if app:
            p.add_argument("--app", help="with --version: the release by application and version")
            p.add_argument("--version", help="the release's version (with --app)")

    def waiting(p: argparse.ArgumentParser, default_timeout: str, default_interval: str) -> None:
        p.add_argument("--timeout", type=duration, default=duration(default_timeout), help="e.g. 90s, 10m, 2h")
        p.add_argument("--interval", type=duration, default=duration(default_interval), help="between polls")

    def keyed(p: argparse.ArgumentParser) -> None:
        p.add_argument("--idempotency-key", help="stable across reruns of the step (e.g. $BUILD_ID); default: random")

    release = commands.add_parser("release", help="register releases").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    register = release.add_parser("register", parents=[common], help="register the build a pipeline deployed")
    register.add_argument("--app", required=True, help="the application's slug")
    register.add_argument("--version", required=True)
    register.add_argument("--build-id")
    register.add_argument("--commit", help="the commit's SHA")
    register.add_argument("--committed-at", help="when the commit was made, ISO 8601 with a zone")
    register.add_argument("--branch")
    notes = register.add_mutually_exclusive_group()
    notes.add_argument("--notes")
    notes.add_argument("--notes-file", help="read the notes from a file (- for stdin)")
    register.add_argument("--artifact-url")
    register.add_argument("--slot", help="the slot it was deployed to, e.g. staging (asks for approval)")
    register.add_argument("-q", "--quiet", action="store_true", help="print only the release's id")
    keyed(register)
    register.set_defaults(run=release_register)

    approval = commands.add_parser("approval", help="request or wait for approval").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    request = approval.add_parser("request", parents=[common], help="ask the approvers of the next environment")
    release_ref(request)
    request.add_argument("--environment", help="the stage, e.g. production (default: the next one)")
    request.add_argument("--reason")
    keyed(request)
    request.set_defaults(run=approval_request)
    wait = approval.add_parser(
        "wait", parents=[common], help="wait until approved (0), rejected (1), expired or timed out (2)"
    )
    release_ref(wait)
    waiting(wait, "2h", "10s")
    wait.set_defaults(run=approval_wait)

    promote_p = commands.add_parser("promote", parents=[common], help="promote a release to production")
    release_ref(promote_p)
    promote_p.add_argument("--strategy", help="blue_green, canary, rings (default: the application's)")
    promote_p.add_argument(
        "--option", type=option, action="append", metavar="KEY=VALUE", help="a strategy option (repeatable)"
    )
    promote_p.add_argument("--reason")
    promote_p.add_argument("--wait", action="store_true", help="follow the operation until it ends")
    waiting(promote_p, "2h", "3s")
    keyed(promote_p)
    promote_p.set_defaults(run=promote)

    status_p = commands.add_parser("status", parents=[common], help="a release, an application or an operation")
    release_ref(status_p)
    status_p.add_argument("--operation", type=int)
    status_p.set_defaults(run=status)

    rollback_p = commands.add_parser("rollback", parents=[common], help="roll back production or an operation")
    rollback_p.add_argument("--app", help="roll back this application's production")
    rollback_p.add_argument("--operation", type=int, help="abort this operation and undo it")
    rollback_p.add_argument("--reason", required=True, help="recorded in the audit trail")
    rollback_p.add_argument("--wait", action="store_true")
    waiting(rollback_p, "30m", "3s")
    keyed(rollback_p)
    rollback_p.set_defaults(run=rollback)
    return top


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = parser().parse_args(argv)
    run: Callable[[Command], int] = args.run
    as_json = bool(getattr(args, "json", False))
    try:
        return run(Command(args, out, err))
    except Usage as exc:
        print(f"slipway: error: {exc}", file=err, flush=True)
        return USAGE
    except SlipwayError as exc:
        code = REFUSED if exc.status is not None and 400 <= exc.status < 500 else UNAVAILABLE
        print(f"error: {exc.detail}", file=err, flush=True)
        flags = REGISTER_FLAGS if run is release_register else {}
        for problem in exc.errors:
            field = problem.get("field", "")
            flag = f" ({flags[field]})" if field in flags else ""
            print(f"  {field}{flag}: {problem.get('message', '')}", file=err, flush=True)
        if as_json:
            print(json.dumps({**exc.body, "exit_code": code}, indent=2), file=out, flush=True)
        return code
    except KeyboardInterrupt:
        print("slipway: interrupted", file=err, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
