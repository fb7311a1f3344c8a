"""The servers: ARM over plain http on loopback, the login endpoint over TLS, one web server per slot.

Everything binds to 127.0.0.1 on a free port and runs in daemon threads; `stop()` closes it all.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.azure_emulator import arm
from tests.azure_emulator.identity import (
    ServicePrincipal,
    openid_configuration,
    token_answer,
    write_self_signed_certificate,
)
from tests.azure_emulator.state import (
    PRODUCTION,
    VERSION_SETTING,
    EmulatedSite,
    EmulatedSlot,
    Fault,
    MinuteMetrics,
    Record,
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests session expects
    wbufsize = -1  # one write per response (headers and body apart would meet Nagle and delayed ACKs: 40 ms)
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        payload = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", "emulator")
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self.dispatch()

    def do_POST(self) -> None:
        self.dispatch()

    def do_PUT(self) -> None:
        self.dispatch()

    def do_PATCH(self) -> None:
        self.dispatch()

    def do_DELETE(self) -> None:
        self.dispatch()

    def dispatch(self) -> None:
        raise NotImplementedError


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: AzureEmulator
    slot_key: tuple[tuple[str, str, str], str]


class _ArmHandler(_Handler):
    def dispatch(self) -> None:
        emulator = self.server.emulator
        parts = urlsplit(self.path)
        raw = self._body()
        request = arm.Request(
            method=self.command,
            path=unquote(parts.path),
            query={name: values[0] for name, values in parse_qs(parts.query, keep_blank_values=True).items()},
            headers={name.lower(): value for name, value in self.headers.items()},
            body=arm.parse_body(raw),
        )
        with emulator.lock:
            answer, resolved = arm.handle(emulator, request)
            emulator.records.append(
                Record(
                    server="arm",
                    method=self.command,
                    path=request.path,
                    route=resolved.route if resolved else "unknown",
                    status=answer.status,
                    site=resolved.site_name if resolved else "",
                    slot=resolved.slot if resolved else "",
                    query=request.query,
                    body=request.body,
                )
            )
        self._send(answer.status, answer.body, answer.headers)


class _LoginHandler(_Handler):
    def dispatch(self) -> None:
        emulator = self.server.emulator
        path = urlsplit(self.path).path
        segments = path.strip("/").split("/")
        tenant = segments[0] if segments else ""
        raw = self._body()
        if self.command == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
            route, status, body = "openid_configuration", 200, openid_configuration(emulator.authority, tenant)
        elif self.command == "POST" and path.endswith("/oauth2/v2.0/token"):
            route = "token"
            status, body = token_answer(emulator.principal, f"{emulator.arm_url}/.default", tenant, raw)
            if status == 200:
                with emulator.lock:
                    emulator.issued_tokens.add(body["access_token"])
        else:
            route, status, body = "unknown", 404, {"error": "not_found", "error_description": path}
        with emulator.lock:
            # Never the body: it carries the client secret.
            emulator.records.append(Record(server="login", method=self.command, path=path, route=route, status=status))
        self._send(status, body)


class _SiteHandler(_Handler):
    """A slot's own web app: answers its health path with what the deployed content says."""

    def dispatch(self) -> None:
        emulator = self.server.emulator
        site_key, slot_name = self.server.slot_key
        path = urlsplit(self.path).path
        with emulator.lock:
            site = emulator.sites.get(site_key)
            slot = site.slots.get(slot_name) if site else None
            if site is None or slot is None:
                status, body = 404, {"status": "gone"}
            elif slot.state != "Running":
                status, body = 403, {"status": "stopped", "detail": "Error 403 - This web app is stopped."}
            elif path != site.health_path:
                status, body = 404, {"status": "not found", "path": path}
            else:
                healthy = site.answers_healthy(slot)
                status = 200 if healthy else 503
                body = {
                    "status": "healthy" if healthy else "unhealthy",
                    "slot": slot.name,
                    "version": slot.version,
                }
            emulator.records.append(
                Record(
                    server="site",
                    method=self.command,
                    path=path,
                    route="health",
                    status=status,
                    site=site.name if site else "",
                    slot=slot_name,
                )
            )
        self._send(status, body)


def _serve(server: _Server, poll_interval: float = 0.05) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True)
    thread.start()
    return thread


class AzureEmulator:
    """A loopback Azure: ARM (Microsoft.Web + Insights metrics), Entra ID's token endpoint, and the slots' apps."""

    def __init__(self, directory: Path, principal: ServicePrincipal) -> None:
        self.lock = threading.RLock()
        self.principal = principal
        self.sites: dict[tuple[str, str, str], EmulatedSite] = {}
        self.records: list[Record] = []
        self.faults: list[Fault] = []
        self.issued_tokens: set[str] = set()
        self._site_servers: dict[tuple[str, str, str], list[_Server]] = {}

        self._arm = _Server(("127.0.0.1", 0), _ArmHandler)
        self._arm.emulator = self
        self.arm_url = f"http://127.0.0.1:{self._arm.server_address[1]}"

        certificate, key = write_self_signed_certificate(directory)
        self.ca_file = str(certificate)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self._login = _Server(("127.0.0.1", 0), _LoginHandler)
        self._login.socket = context.wrap_socket(self._login.socket, server_side=True)
        self._login.emulator = self
        self.authority = f"https://127.0.0.1:{self._login.server_address[1]}"
        self._threads = [_serve(self._arm), _serve(self._login)]

    @classmethod
    def start(cls, directory: Path, principal: ServicePrincipal) -> AzureEmulator:
        return cls(directory, principal)

    def stop(self) -> None:
        self.reset()
        for server in (self._arm, self._login):
            server.shutdown()
            server.server_close()

    def reset(self) -> None:
        """Forget sites, faults and records (issued tokens stay valid: credentials cache them per process)."""
        with self.lock:
            servers = [server for group in self._site_servers.values() for server in group]
            self._site_servers.clear()
            self.sites.clear()
            self.faults.clear()
            self.records.clear()
        for server in servers:
            server.shutdown()
            server.server_close()

    # -- the world --
    def add_site(
        self,
        subscription: str,
        resource_group: str,
        name: str,
        versions: dict[str, str],
        *,
        app_settings: dict[str, dict[str, str]] | None = None,
        sticky: list[str] | None = None,
    ) -> EmulatedSite:
        """A site with one slot per entry of `versions` (which must include "production")."""
        assert PRODUCTION in versions, "a site always has its production slot"
        key = (subscription.lower(), resource_group.lower(), name.lower())
        site = EmulatedSite(
            subscription=subscription, resource_group=resource_group, name=name, sticky_app_settings=list(sticky or [])
        )
        servers = []
        for slot_name, version in versions.items():
            server = _Server(("127.0.0.1", 0), _SiteHandler)
            server.emulator = self
            server.slot_key = (key, slot_name)
            servers.append(server)
            settings = {VERSION_SETTING: version, **(app_settings or {}).get(slot_name, {})}
            site.slots[slot_name] = EmulatedSlot(
                name=slot_name,
                app_settings=settings,
                host=f"127.0.0.1:{server.server_address[1]}",
                site_config={
                    "numberOfWorkers": 1,
                    "alwaysOn": True,
                    "http20Enabled": True,
                    "minTlsVersion": "1.2",
                    "experiments": {"rampUpRules": []},
                },
                metrics=MinuteMetrics(),
            )
        with self.lock:
            self.sites[key] = site
            self._site_servers[key] = servers
        for server in servers:
            _serve(server, poll_interval=0.01)
        return site

    def site(self, name: str) -> EmulatedSite:
        with self.lock:
            (site,) = [site for site in self.sites.values() if site.name == name]
            return site

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self.lock:
            yield

    # -- faults --
    def inject(
        self,
        route: str,
        status: int | None,
        *,
        times: int = 1,
        code: str = "",
        message: str = "",
        site: str | None = None,
        delay_s: float = 0.0,
    ) -> Fault:
        """The next `times` requests to `route` answer `status` (ARM error body; default code and message
        per status). `delay_s` makes them slow first; with status None they then answer normally."""
        fault = Fault(
            route=route, status=status, remaining=times, code=code, message=message, site=site, delay_s=delay_s
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, route: str, site: str) -> Fault | None:
        for fault in self.faults:
            if fault.route == route and fault.remaining > 0 and fault.site in (None, site):
                fault.remaining -= 1
                return fault
        return None

    # -- what was asked --
    def requests(self, route: str | None = None, *, site: str | None = None, server: str | None = None) -> list[Record]:
        with self.lock:
            return [
                record
                for record in self.records
                if (route is None or record.route == route)
                and (site is None or record.site == site)
                and (server is None or record.server == server)
            ]

    def calls(self, route: str, *, site: str | None = None) -> int:
        return len(self.requests(route, site=site))
