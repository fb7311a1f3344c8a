"""The Microsoft Entra ID side: a throwaway TLS certificate and an OAuth2 token endpoint.

MSAL (under azure-identity's ClientSecretCredential) only talks to https authorities, so the login
server is served over TLS with a self-signed certificate made here; tests point requests at it with
REQUESTS_CA_BUNDLE. It answers the two requests MSAL makes for a client-credentials grant with
instance discovery off: the tenant's OpenID configuration, and the token request.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost valid for a day; returns (certificate, key) PEM paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Slipway test Azure emulator")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "emulator-cert.pem", directory / "emulator-key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificate_path, key_path


@dataclass
class ServicePrincipal:
    tenant_id: str
    client_id: str
    client_secret: str


def openid_configuration(authority: str, tenant: str) -> dict[str, Any]:
    base = f"{authority}/{tenant}"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "issuer": f"{base}/v2.0",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "tenant_region_scope": "EU",
    }


def token_answer(principal: ServicePrincipal, expected_scope: str, tenant: str, raw_form: bytes) -> tuple[int, dict]:
    """(status, body) for a client-credentials token request, in Entra ID's words when it refuses."""
    form = {name: values[0] for name, values in parse_qs(raw_form.decode()).items()}
    if tenant != principal.tenant_id:
        return 400, {"error": "invalid_request", "error_description": f"AADSTS90002: Tenant '{tenant}' not found."}
    if form.get("grant_type") != "client_credentials":
        return 400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003: unsupported grant type."}
    if form.get("client_id") != principal.client_id:
        return 400, {
            "error": "unauthorized_client",
            "error_description": f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
            f"found in the directory '{tenant}'.",
        }
    if not secrets.compare_digest(form.get("client_secret", ""), principal.client_secret):
        return 401, {
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the "
            f"request is the client secret value, not the client secret ID, for a secret added to app "
            f"'{principal.client_id}'.",
            "error_codes": [7000215],
        }
    if form.get("scope") != expected_scope:
        return 400, {
            "error": "invalid_scope",
            "error_description": f"AADSTS70011: The provided value for scope {form.get('scope')} is not valid; "
            f"this emulator issues tokens for {expected_scope}.",
        }
    return 200, {
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": "emulator." + secrets.token_urlsafe(24),
    }
