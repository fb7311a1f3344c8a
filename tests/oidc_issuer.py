"""A small, real OpenID Connect issuer on loopback, for the single sign-on tests.

It speaks real HTTP from a thread: the discovery document, a JWKS holding a freshly generated RSA key, an
authorize endpoint that redirects back with a one-time code, and a token endpoint that checks the client's
secret, the redirect URI and the PKCE verifier and answers with an RS256-signed ID token (PyJWT, which
mozilla-django-oidc verifies with). A test tells it who signs in next (`sign_in_as`) and how to misbehave
(`misbehave`): another audience, an expired token, a signature by a key it does not publish, another issuer,
another nonce.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

MISBEHAVIOURS = frozenset({"audience", "expired", "other_key", "issuer", "nonce", "token_error"})


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    code_challenge: str
    claims: dict[str, Any]


@dataclass
class LoopbackIssuer:
    client_id: str = "slipway-test-client"
    client_secret: str = field(default_factory=lambda: f"client-secret-{secrets.token_urlsafe(16)}")
    kid: str = "test-key-1"

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # never published
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self.user: dict[str, Any] = {}
        self.faults: set[str] = set()
        self.issued_tokens: list[str] = []  # every id_token and access_token handed out, to look for in logs
        self.codes: list[str] = []
        self.token_requests: list[dict[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-issuer", daemon=True)

    # --- what a test says --------------------------------------------------------------------------------

    def start(self) -> LoopbackIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sign_in_as(self, subject: str, *, groups: list[str] | None = None, **claims: Any) -> None:
        """Who the next authorize request signs in (an Entra-like user: oid, sub, names, groups)."""
        self.user = {
            "oid": subject,
            "sub": f"pairwise-{subject}",
            "preferred_username": claims.pop("preferred_username", f"{subject}@example.com"),
            "email": claims.pop("email", f"{subject}@example.com"),
            "name": claims.pop("name", "Test User"),
            "groups": list(groups or []),
            **claims,
        }

    def misbehave(self, *faults: str) -> None:
        unknown = set(faults) - MISBEHAVIOURS
        assert not unknown, f"unknown misbehaviour(s) {unknown}; choose among {sorted(MISBEHAVIOURS)}"
        self.faults = set(faults)

    # --- the issuer's documents and tokens -------------------------------------------------------------------

    def discovery_document(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "end_session_endpoint": f"{self.url}/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims = {
            **grant.claims,
            "iss": "https://attacker.example.com" if "issuer" in self.faults else self.url,
            "aud": "someone-else" if "audience" in self.faults else grant.client_id,
            "iat": now - 7200 if "expired" in self.faults else now,
            "nbf": now - 7200 if "expired" in self.faults else now,
            "exp": now - 3600 if "expired" in self.faults else now + 3600,
            "nonce": "not-the-nonce-you-sent" if "nonce" in self.faults else grant.nonce,
        }
        key = self.other_key if "other_key" in self.faults else self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def _authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return 400, {}, b"unknown client or response type"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return 400, {}, b"PKCE (S256) is required"
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[code] = _Grant(
                client_id=query["client_id"],
                redirect_uri=query["redirect_uri"],
                nonce=query.get("nonce", ""),
                code_challenge=query["code_challenge"],
                claims=dict(self.user),
            )
            self.codes.append(code)
        location = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, {"Location": location}, b""

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)  # one use only
        if grant is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client"}
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant.code_challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verifier does not match"}
        if "token_error" in self.faults:
            return 400, {"error": "invalid_grant", "error_description": f"refused; echoing {self.client_secret}"}
        id_token = self.id_token(grant)
        access_token = f"access-{secrets.token_urlsafe(24)}"
        self.issued_tokens += [id_token, access_token]
        return 200, {"id_token": id_token, "access_token": access_token, "token_type": "Bearer", "expires_in": 3600}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the tests read the portal's log, not this one

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, data: dict[str, Any]) -> None:
                self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/.well-known/openid-configuration":
                    self._json(200, issuer.discovery_document())
                elif parts.path == "/jwks":
                    self._json(200, issuer.jwks())
                elif parts.path == "/authorize":
                    status, headers, body = issuer._authorize(query)
                    self._send(status, body, headers)
                else:
                    self._send(404, b"not found")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path == "/token":
                    self._json(*issuer._token(form))
                else:
                    self._send(404, b"not found")

        return Handler
