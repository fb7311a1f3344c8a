"""Azure App Service through azure-mgmt-web (and Azure Monitor through azure-mgmt-monitor).

One credential per process per kind, one `AzureProvider` (with its SDK clients) per credential and
endpoint. Every SDK failure leaves this module as one of the `ProviderError` family, with the ARM
error code and message kept (`status`, `code`, `str()`); secrets never appear in those messages.

Retries: the SDK's own retry policy is switched off (`retry_total=0`) so that every 409, 429 and
5xx reaches the caller, which retries with `call_with_retry` and records each attempt on the step.

Plain http: the resource manager may be an `http://` URL only when its host is a loopback address
(a local emulator); `LoopbackHttpPolicy` lets bearer tokens travel over http to those hosts alone
and refuses any other non-https request (including a long-running operation's Location header).

See docs/azure.md for connecting a real subscription.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.identity import (
    AzureAuthorityHosts,
    ClientSecretCredential,
    CredentialUnavailableError,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.web import WebSiteManagementClient
from azure.mgmt.web.models import (
    CsmSlotEntity,
    Experiments,
    RampUpRule,
    SiteConfigResource,
    SlotConfigNamesResource,
    StringDictionary,
)
from django.conf import settings

from releases.catalog.models import Application, AzureCredential
from releases.catalog.providers import (
    PRODUCTION_SLOT,
    AuthError,
    ConflictError,
    HealthResult,
    MetricsSample,
    NotFoundError,
    PermanentError,
    ProviderError,
    SlotState,
    TransientError,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline import PipelineRequest
    from azure.core.polling import LROPoller
    from azure.mgmt.web.models import Site

# The app setting that carries the version a slot runs (set by the pipeline that deploys it).
DEFAULT_VERSION_SETTING = "SLIPWAY_VERSION"
# App Service's swap warm-up: which path to ping on the source slot's instances, and which statuses count.
WARMUP_PATH_SETTING = "WEBSITE_SWAP_WARMUP_PING_PATH"
WARMUP_STATUSES_SETTING = "WEBSITE_SWAP_WARMUP_PING_STATUSES"
# Health checks: connect and read timeouts (seconds). Short: a page that polls slots must not hang.
HEALTH_TIMEOUT_S = (3.05, 10.0)
# Azure Monitor metrics for App Service (namespace Microsoft.Web/sites); HttpResponseTime is in seconds.
METRIC_NAMES = ("Requests", "Http5xx", "HttpResponseTime")
# Authority hosts whose tenants MSAL can discover itself; for any other (Azure Stack, a test emulator)
# instance discovery is switched off so that MSAL never asks the public cloud about a private authority.
_KNOWN_AUTHORITY_HOSTS = frozenset(
    urlsplit(str(host) if "://" in str(host) else f"https://{host}").hostname
    for host in (
        AzureAuthorityHosts.AZURE_PUBLIC_CLOUD,
        AzureAuthorityHosts.AZURE_GOVERNMENT,
        AzureAuthorityHosts.AZURE_CHINA,
    )
)


def version_setting() -> str:
    return getattr(settings, "AZURE_VERSION_SETTING", "") or DEFAULT_VERSION_SETTING


# --- plain http for loopback only --------------------------------------------------------------
def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1): the only hosts plain http may reach."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class InsecureEndpointError(AzureError):
    """A request was about to leave over plain http for a host that is not loopback."""


class LoopbackHttpPolicy(SansIOHTTPPolicy):
    """Per-call policy: allow bearer tokens over http to loopback hosts, refuse every other non-https URL.

    azure-core's BearerTokenCredentialPolicy refuses non-https URLs unless the request's context options
    carry `enforce_https=False` (it pops the option in `_enforce_https` and keeps it for retries). This
    policy runs before it (per-call policies precede the retry and authentication policies) and sets the
    option only for loopback hosts; for any other http URL it raises before anything is sent.
    """

    def on_request(self, request: PipelineRequest[Any]) -> None:
        parts = urlsplit(request.http_request.url)
        scheme = parts.scheme.lower()
        if scheme == "https":
            return
        if scheme == "http" and is_loopback_host(parts.hostname):
            request.context.options["enforce_https"] = False
            return
        raise InsecureEndpointError(
            f"Refusing to send an Azure request over {scheme or 'no scheme'}:// to {parts.hostname or '?'}: "
            "only https is allowed, except for loopback addresses (a local emulator)."
        )


def check_resource_manager_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return
    raise PermanentError(
        f"AZURE_RESOURCE_MANAGER_URL must be an https:// URL (plain http is accepted only for a loopback "
        f"emulator such as http://127.0.0.1:PORT), not {url!r}.",
        code="InsecureEndpoint",
    )


# --- credentials -------------------------------------------------------------------------------
_credentials: dict[tuple[str, ...], TokenCredential] = {}
_providers: dict[tuple[Any, ...], AzureProvider] = {}
_cache_lock = threading.Lock()


def _digest(secret: str) -> str:
    # Cache keys must change when the secret rotates, without holding the secret itself.
    return hashlib.sha256(secret.encode()).hexdigest()


def _missing(*names: str) -> None:
    missing = [name for name in names if not getattr(settings, name, "")]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise AuthError(
            f"The service principal credential needs {', '.join(missing)} in the environment; "
            f"{'it' if len(missing) == 1 else 'they'} {verb} not set.",
            code="MissingSetting",
        )


def _credential_recipe(kind: str) -> tuple[tuple[str, ...], Callable[[], TokenCredential]]:
    """The cache key and the factory for a credential of this kind, from settings (never the database)."""
    authority = settings.AZURE_AUTHORITY_HOST.rstrip("/")
    client_id = settings.AZURE_CLIENT_ID or None
    authority_host = urlsplit(authority).hostname
    private_authority = authority_host not in _KNOWN_AUTHORITY_HOSTS
    if kind == AzureCredential.MANAGED_IDENTITY:
        # System-assigned identity unless AZURE_CLIENT_ID names a user-assigned one.
        return (kind, client_id or ""), lambda: ManagedIdentityCredential(client_id=client_id)
    if kind == AzureCredential.CLIENT_SECRET:
        _missing("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
        tenant, secret = settings.AZURE_TENANT_ID, settings.AZURE_CLIENT_SECRET
        key = (kind, tenant, settings.AZURE_CLIENT_ID, _digest(secret), authority)
        return key, lambda: ClientSecretCredential(
            tenant, settings.AZURE_CLIENT_ID, secret, authority=authority, disable_instance_discovery=private_authority
        )
    if kind == AzureCredential.DEFAULT:
        # Production credentials only: environment (service principal), workload identity, managed
        # identity. Developer and interactive ones are excluded explicitly, whatever AZURE_TOKEN_CREDENTIALS says.
        return (kind, client_id or "", authority), lambda: DefaultAzureCredential(
            authority=authority,
            managed_identity_client_id=client_id,
            exclude_shared_token_cache_credential=True,
            exclude_visual_studio_code_credential=True,
            exclude_cli_credential=True,
            exclude_developer_cli_credential=True,
            exclude_powershell_credential=True,
            exclude_interactive_browser_credential=True,
            exclude_broker_credential=True,
        )
    raise AuthError(f"Unknown Azure credential kind {kind!r}.", code="UnknownCredential")


def credential_for(kind: str) -> TokenCredential:
    """The process-wide credential of this kind (built on first use; rebuilt only if its settings change)."""
    key, factory = _credential_recipe(kind)
    with _cache_lock:
        credential = _credentials.get(key)
        if credential is None:
            try:
                credential = factory()
            except ValueError as exc:  # azure-identity validates tenant ids and authorities
                raise AuthError(
                    _scrub(f"The {kind} credential cannot be built: {exc}"), code="InvalidSetting"
                ) from None
            _credentials[key] = credential
    return credential


def _scrub(message: str) -> str:
    """Defence in depth: never let the client secret through, whatever a library put in a message."""
    secret = getattr(settings, "AZURE_CLIENT_SECRET", "")
    return message.replace(secret, "***") if secret else message


# --- errors ------------------------------------------------------------------------------------
def _arm_error(exc: HttpResponseError) -> tuple[str, str]:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or ""
    message = getattr(error, "message", None) or ""
    if not message:
        message = (exc.message or exc.reason or exc.__class__.__name__).splitlines()[0]
    return code, message


def _retry_after(exc: HttpResponseError) -> float | None:
    """Seconds from a Retry-After header given in seconds (ARM's form); None when absent or a date."""
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None


def translate_error(exc: BaseException, doing: str) -> ProviderError:
    """Map an azure-core / azure-identity exception to the provider error family."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, InsecureEndpointError):
        return PermanentError(_scrub(f"{doing} failed: {exc.message}"), code="InsecureEndpoint")
    if isinstance(exc, CredentialUnavailableError):
        return AuthError(
            _scrub(f"{doing} failed: no Azure credential is available: {exc.message}"), code="CredentialUnavailable"
        )
    if isinstance(exc, HttpResponseError):
        # A failed long-running operation can arrive in a 200 (its status in the body): no HTTP status then.
        status = exc.status_code if exc.status_code and exc.status_code >= 400 else None
        code, message = _arm_error(exc)
        text = _scrub(f"{doing} failed: {message}")
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            return AuthError(text, status=status, code=code or "AuthenticationFailed")
        if status == 404:
            return NotFoundError(text, status=status, code=code or "NotFound")
        retry_after = _retry_after(exc)
        if status == 409:
            return ConflictError(text, status=status, code=code or "Conflict", retry_after=retry_after)
        if status == 429 or (status is not None and status >= 500):
            return TransientError(text, status=status, code=code, retry_after=retry_after)
        return PermanentError(text, status=status, code=code)
    if isinstance(exc, ClientAuthenticationError):  # a token request refused without an HTTP response
        return AuthError(_scrub(f"{doing} failed: {exc.message}"), code="AuthenticationFailed")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientError(_scrub(f"{doing} failed: {exc.message}"), code=exc.__class__.__name__)
    if isinstance(exc, AzureError):
        return PermanentError(_scrub(f"{doing} failed: {exc.message}"), code=exc.__class__.__name__)
    return PermanentError(_scrub(f"{doing} failed: {exc}"), code=exc.__class__.__name__)


@contextmanager
def _azure(doing: str) -> Iterator[None]:
    try:
        yield
    except AzureError as exc:
        raise translate_error(exc, doing) from exc


# --- swaps -------------------------------------------------------------------------------------
class AzureSwapHandle:
    """A slot swap in flight: the SDK's LROPoller (which polls in a background thread)."""

    def __init__(self, poller: LROPoller[None], doing: str) -> None:
        self._poller = poller
        self._doing = doing
        # The token is the swap's first response (202 + Location), not the request: resuming polls, never re-POSTs.
        self._resume_token = poller.continuation_token()

    @property
    def resume_token(self) -> str:
        return self._resume_token

    def done(self) -> bool:
        return self._poller.done()

    def result(self, timeout: float | None = None) -> None:
        """Wait for the swap. Raises its ProviderError if it failed, TimeoutError if still running after `timeout`."""
        try:
            self._poller.result(timeout)
        except AzureError as exc:
            raise translate_error(exc, self._doing) from exc
        if not self._poller.done():
            raise TimeoutError(f"{self._doing}: still in progress after {timeout} s")


# --- the provider ------------------------------------------------------------------------------
class AzureProvider:
    """The HostingProvider for App Service. Build it with `AzureProvider.for_application(application)`."""

    def __init__(
        self,
        credential: TokenCredential,
        *,
        resource_manager_url: str,
        polling_interval: float,
        timeout_s: float,
    ) -> None:
        check_resource_manager_url(resource_manager_url)
        self._credential = credential
        self._rm = resource_manager_url.rstrip("/")
        self._polling_interval = polling_interval
        self._timeout_s = timeout_s
        self._web_clients: dict[str, WebSiteManagementClient] = {}
        self._monitor_clients: dict[str, MonitorManagementClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_application(cls, application: Application) -> AzureProvider:
        url = settings.AZURE_RESOURCE_MANAGER_URL.rstrip("/")
        check_resource_manager_url(url)
        credential = credential_for(application.azure_credential)
        key = (id(credential), url, settings.AZURE_POLLING_INTERVAL, settings.AZURE_HTTP_TIMEOUT)
        with _cache_lock:
            provider = _providers.get(key)
            if provider is None:
                provider = cls(
                    credential,
                    resource_manager_url=url,
                    polling_interval=settings.AZURE_POLLING_INTERVAL,
                    timeout_s=settings.AZURE_HTTP_TIMEOUT,
                )
                _providers[key] = provider
        return provider

    # -- clients --
    def _client_options(self) -> dict[str, Any]:
        return {
            "base_url": self._rm,
            "credential_scopes": [f"{self._rm}/.default"],
            "polling_interval": self._polling_interval,
            "per_call_policies": [LoopbackHttpPolicy()],
            "retry_total": 0,  # callers retry (call_with_retry), so that each attempt is recorded
            "connection_timeout": self._timeout_s,
            "read_timeout": self._timeout_s,
        }

    def _web(self, application: Application) -> WebSiteManagementClient:
        subscription = application.azure_subscription_id
        with self._lock:
            client = self._web_clients.get(subscription)
            if client is None:
                client = WebSiteManagementClient(self._credential, subscription, **self._client_options())
                self._web_clients[subscription] = client
        return client

    def _monitor(self, application: Application) -> MonitorManagementClient:
        subscription = application.azure_subscription_id
        with self._lock:
            client = self._monitor_clients.get(subscription)
            if client is None:
                options = self._client_options()
                client = MonitorManagementClient(self._credential, subscription, options.pop("base_url"), **options)
                self._monitor_clients[subscription] = client
        return client

    @staticmethod
    def _site(application: Application) -> tuple[str, str]:
        return application.azure_resource_group, application.azure_site_name

    def _get_site(self, application: Application, slot: str) -> Site:
        rg, site = self._site(application)
        web = self._web(application)
        with _azure(f"Reading slot {slot} of {site}"):
            if slot == PRODUCTION_SLOT:
                return web.web_apps.get(rg, site)
            return web.web_apps.get_slot(rg, site, slot)

    # -- reads --
    def slot_states(self, application: Application, *, probe: bool = True) -> list[SlotState]:
        rg, site = self._site(application)
        web = self._web(application)
        with _azure(f"Listing the slots of {site}"):
            production = web.web_apps.get(rg, site)
            slots = sorted(web.web_apps.list_slots(rg, site), key=_slot_name)
            rules = _ramp_up_rules(web.web_apps.get_configuration(rg, site))
        sites: list[tuple[str, Site]] = [(PRODUCTION_SLOT, production)] + [(_slot_name(s), s) for s in slots]
        versions = {name: self.get_app_settings(application, name).get(version_setting(), "") for name, _ in sites}
        shares = _shares(rules, {name: s.default_host_name or "" for name, s in sites})
        routed_elsewhere = sum(shares.values())
        health: list[HealthResult | None] = [None] * len(sites)  # not probed: the provider does not say
        if probe:
            with ThreadPoolExecutor(max_workers=min(8, len(sites))) as pool:
                health = list(pool.map(lambda item: self._probe_site(item[1], application.health_check_path), sites))
        return [
            SlotState(
                name=name,
                version=versions[name],
                healthy=result.healthy if result else None,
                traffic_percent=max(0, 100 - routed_elsewhere) if name == PRODUCTION_SLOT else shares.get(name, 0),
                hostname=s.default_host_name or "",
                state=s.state or "",
                detail=result.detail if result else "",
            )
            for (name, s), result in zip(sites, health, strict=True)
        ]

    def check_health(self, application: Application, slot: str) -> HealthResult:
        """GET https://<slot host><health path> (http for loopback hosts). Never raises for an unhealthy app:
        an error status, a timeout or a refused connection is an unhealthy result with the reason in `detail`."""
        return self._probe_site(self._get_site(application, slot), application.health_check_path)

    def _probe_site(self, site: Site, path: str) -> HealthResult:
        if (site.state or "Running").lower() == "stopped":
            return HealthResult(healthy=False, status_code=None, detail="The slot is stopped.")
        return probe(site.default_host_name or "", path)

    # -- swaps --
    def begin_swap(self, application: Application, source: str, target: str = PRODUCTION_SLOT) -> AzureSwapHandle:
        if source == target:
            raise ValueError("A swap needs two different slots.")
        rg, site = self._site(application)
        web = self._web(application)
        doing = f"Swapping {source} into {target} on {site}"
        with _azure(doing):
            if PRODUCTION_SLOT in (source, target):
                other = target if source == PRODUCTION_SLOT else source
                poller = web.web_apps.begin_swap_slot_with_production(
                    rg, site, CsmSlotEntity(target_slot=other, preserve_vnet=True)
                )
            else:
                poller = web.web_apps.begin_swap_slot(
                    rg, site, source, CsmSlotEntity(target_slot=target, preserve_vnet=True)
                )
        return AzureSwapHandle(poller, doing)

    def resume_swap(self, application: Application, resume_token: str) -> AzureSwapHandle:
        """Poll a swap started elsewhere. The token replays the swap's first answer, so nothing is POSTed again."""
        rg, site = self._site(application)
        web = self._web(application)
        doing = f"Resuming a swap on {site}"
        with _azure(doing):
            try:
                poller = web.web_apps.begin_swap_slot_with_production(
                    rg,
                    site,
                    None,  # type: ignore[arg-type]  # unused when resuming from a continuation token
                    continuation_token=resume_token,
                )
            except (ValueError, TypeError, KeyError) as exc:
                raise PermanentError(
                    f"{doing} failed: the resume token is not a swap's token ({exc.__class__.__name__}).",
                    code="InvalidResumeToken",
                ) from None
        return AzureSwapHandle(poller, doing)

    def apply_swap_preview(self, application: Application, source: str, target: str = PRODUCTION_SLOT) -> None:
        rg, site = self._site(application)
        web = self._web(application)
        entity = CsmSlotEntity(target_slot=target, preserve_vnet=True)
        with _azure(f"Applying {target}'s settings to {source} on {site} (swap with preview)"):
            if source == PRODUCTION_SLOT:
                web.web_apps.apply_slot_config_to_production(rg, site, entity)
            else:
                web.web_apps.apply_slot_configuration_slot(rg, site, source, entity)

    def cancel_swap_preview(self, application: Application, source: str) -> None:
        rg, site = self._site(application)
        web = self._web(application)
        with _azure(f"Restoring {source}'s own settings on {site} (swap with preview cancelled)"):
            if source == PRODUCTION_SLOT:
                web.web_apps.reset_production_slot_config(rg, site)
            else:
                web.web_apps.reset_slot_configuration_slot(rg, site, source)

    # -- traffic --
    def get_traffic(self, application: Application) -> dict[str, int]:
        rg, site = self._site(application)
        web = self._web(application)
        with _azure(f"Reading the traffic routing of {site}"):
            rules = _ramp_up_rules(web.web_apps.get_configuration(rg, site))
        return {rule.name or "": _percent(rule) for rule in rules if _percent(rule) > 0}

    def set_traffic(self, application: Application, slot: str, percent: int) -> None:
        if slot == PRODUCTION_SLOT:
            raise ValueError("Production takes the traffic no rule routes elsewhere; set the other slots' shares.")
        if not 0 <= percent <= 100:
            raise ValueError(f"A traffic share is 0-100 %, not {percent}.")
        rg, site = self._site(application)
        web = self._web(application)
        host = self._get_site(application, slot).default_host_name or ""
        doing = f"Routing {percent} % of {site}'s traffic to {slot}"
        with _azure(doing):
            rules = _ramp_up_rules(web.web_apps.get_configuration(rg, site))
        mine = [rule for rule in rules if rule.name == slot or (host and rule.action_host_name == host)]
        others = [rule for rule in rules if rule not in mine]
        if percent == 0 and not mine:
            return
        if len(mine) == 1 and _percent(mine[0]) == percent and mine[0].action_host_name == host and percent > 0:
            return  # already so: no write
        elsewhere = sum(_percent(rule) for rule in others)
        if elsewhere + percent > 100:
            raise PermanentError(
                f"{doing} failed: other slots already take {elsewhere} %, so at most {100 - elsewhere} % is left.",
                code="TrafficOverAllocated",
            )
        if percent > 0:
            others.append(RampUpRule(action_host_name=host, reroute_percentage=float(percent), name=slot))
        with _azure(doing):
            web.web_apps.update_configuration(
                rg, site, SiteConfigResource(experiments=Experiments(ramp_up_rules=others))
            )

    # -- app settings --
    def get_app_settings(self, application: Application, slot: str) -> dict[str, str]:
        rg, site = self._site(application)
        web = self._web(application)
        with _azure(f"Reading the app settings of {slot} on {site}"):
            if slot == PRODUCTION_SLOT:
                result = web.web_apps.list_application_settings(rg, site)
            else:
                result = web.web_apps.list_application_settings_slot(rg, site, slot)
        return dict(result.properties or {})

    def update_app_settings(self, application: Application, slot: str, changes: dict[str, str | None]) -> None:
        """Merge `changes` (None deletes). App Service replaces the whole set on write, so read, merge, write."""
        current = self.get_app_settings(application, slot)
        merged = dict(current)
        for name, value in changes.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        if merged == current:
            return
        rg, site = self._site(application)
        web = self._web(application)
        with _azure(f"Updating the app settings of {slot} on {site}"):
            if slot == PRODUCTION_SLOT:
                web.web_apps.update_application_settings(rg, site, StringDictionary(properties=merged))
            else:
                web.web_apps.update_application_settings_slot(rg, site, slot, StringDictionary(properties=merged))

    def get_sticky_settings(self, application: Application) -> list[str]:
        rg, site = self._site(application)
        web = self._web(application)
        with _azure(f"Reading the slot-sticky settings of {site}"):
            names = web.web_apps.list_slot_configuration_names(rg, site)
        return sorted(names.app_setting_names or [])

    def set_sticky_settings(self, application: Application, names: list[str]) -> None:
        """Make exactly `names` sticky (connection-string and storage names are kept as they are)."""
        rg, site = self._site(application)
        web = self._web(application)
        doing = f"Updating the slot-sticky settings of {site}"
        with _azure(doing):
            current = web.web_apps.list_slot_configuration_names(rg, site)
            if sorted(current.app_setting_names or []) == sorted(set(names)):
                return
            web.web_apps.update_slot_configuration_names(
                rg,
                site,
                SlotConfigNamesResource(
                    app_setting_names=sorted(set(names)),
                    connection_string_names=current.connection_string_names or [],
                    azure_storage_config_names=current.azure_storage_config_names or [],
                ),
            )

    def configure_swap_warmup(
        self, application: Application, slots: list[str] | None = None, statuses: str = "200,202"
    ) -> None:
        """Have App Service ping the health path (and accept only `statuses`) before it swaps a slot in.

        Sets WEBSITE_SWAP_WARMUP_PING_PATH / _STATUSES to the same values on every slot (default: all
        of the site's slots), so they are the same whichever way a swap goes and need not be sticky.
        """
        if slots is None:
            rg, site = self._site(application)
            with _azure(f"Listing the slots of {site}"):
                others = sorted(_slot_name(s) for s in self._web(application).web_apps.list_slots(rg, site))
            slots = [PRODUCTION_SLOT, *others]
        for slot in slots:
            self.update_app_settings(
                application,
                slot,
                {WARMUP_PATH_SETTING: application.health_check_path, WARMUP_STATUSES_SETTING: statuses},
            )

    def restart(self, application: Application, slot: str) -> None:
        rg, site = self._site(application)
        web = self._web(application)
        with _azure(f"Restarting {slot} of {site}"):
            if slot == PRODUCTION_SLOT:
                web.web_apps.restart(rg, site)
            else:
                web.web_apps.restart_slot(rg, site, slot)

    # -- metrics --
    def metrics(self, application: Application, slot: str, *, minutes: int = 5) -> MetricsSample:
        """Azure Monitor's Requests, Http5xx and HttpResponseTime for the slot, per minute, over `minutes`.

        Latencies are a sample of per-minute *averages* (Monitor keeps no per-request values), in ms.
        Monitor lags a minute or two behind real time, so the newest minute may be missing.
        """
        rg, site = self._site(application)
        subscription = application.azure_subscription_id
        resource_id = f"subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{site}"
        if slot != PRODUCTION_SLOT:
            resource_id += f"/slots/{slot}"
        # Whole minutes, the last `minutes` complete ones. Monitor's time is real time, not Slipway's clock.
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        start = end - timedelta(minutes=minutes)
        timespan = f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}"
        with _azure(f"Reading the metrics of {slot} on {site}"):
            response = self._monitor(application).metrics.list(
                resource_id,
                timespan=timespan,
                interval="PT1M",
                metricnames=",".join(METRIC_NAMES),
                aggregation="Total,Average",
            )
        requests_total = errors_total = 0.0
        latencies: list[float] = []
        for metric in response.value or []:
            name = (metric.name.value if metric.name else "") or ""
            points = [point for series in metric.timeseries or [] for point in series.data or []]
            if name.lower() == "requests":
                requests_total += sum(point.total or 0 for point in points)
            elif name.lower() == "http5xx":
                errors_total += sum(point.total or 0 for point in points)
            elif name.lower() == "httpresponsetime":
                latencies += [point.average * 1000 for point in points if point.average is not None]
        return MetricsSample(requests=round(requests_total), errors=round(errors_total), latencies_ms=latencies)


# --- helpers -----------------------------------------------------------------------------------
def _slot_name(site: Site) -> str:
    # ARM names a slot "<site>/<slot>".
    return (site.name or "").rsplit("/", 1)[-1]


def _ramp_up_rules(config: SiteConfigResource) -> list[RampUpRule]:
    experiments = config.experiments
    return list(experiments.ramp_up_rules or []) if experiments else []


def _percent(rule: RampUpRule) -> int:
    return round(rule.reroute_percentage or 0)


def _shares(rules: list[RampUpRule], hosts: dict[str, str]) -> dict[str, int]:
    by_host = {host: name for name, host in hosts.items() if host}
    shares: dict[str, int] = {}
    for rule in rules:
        name = rule.name if rule.name in hosts else by_host.get(rule.action_host_name or "")
        if name and name != PRODUCTION_SLOT:
            shares[name] = shares.get(name, 0) + _percent(rule)
    return shares


def probe(host: str, path: str) -> HealthResult:
    """GET the health path of one host: 2xx is healthy; redirects are not followed (a login page is not health)."""
    if not host:
        return HealthResult(healthy=False, status_code=None, detail="The slot has no host name.")
    scheme = "http" if is_loopback_host(urlsplit(f"//{host}").hostname) else "https"
    url = f"{scheme}://{host}{path}"
    started = time.monotonic()
    try:
        response = requests.get(
            url, timeout=HEALTH_TIMEOUT_S, allow_redirects=False, headers={"User-Agent": "Slipway health check"}
        )
    except requests.Timeout:
        return HealthResult(
            healthy=False, status_code=None, detail=f"No answer from {url} within {HEALTH_TIMEOUT_S[1]:g} s."
        )
    except requests.RequestException as exc:
        return HealthResult(
            healthy=False, status_code=None, detail=f"Could not reach {url} ({exc.__class__.__name__})."
        )
    latency_ms = (time.monotonic() - started) * 1000
    healthy = 200 <= response.status_code < 300
    return HealthResult(
        healthy=healthy,
        status_code=response.status_code,
        detail=f"HTTP {response.status_code} {response.reason} from {url}",
        latency_ms=latency_ms,
    )
