"""The Azure Resource Manager side: Microsoft.Web sites and slots (api-version 2025-05-01 and older), and
Microsoft.Insights metrics, as JSON over HTTP. Request in, (status, body, headers) out; no sockets here.

Shapes follow the Microsoft.Web REST API: resources are `{id, name, type, location, kind, properties}`,
errors `{"error": {"code", "message"}}`, a slot swap answers 202 with an absolute `Location` (and, in
"azure-async-operation" style, an `Azure-AsyncOperation`) that answers 202 until the swap is done,
then 200 — or the swap's error.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.azure_emulator.state import DEFAULT_ERRORS, PRODUCTION, EmulatedSite, EmulatedSlot, Fault, SwapOperation

if TYPE_CHECKING:
    from tests.azure_emulator.emulator import AzureEmulator

WEB_API_VERSIONS = frozenset({"2025-05-01", "2024-11-01", "2024-04-01", "2023-12-01", "2023-01-01", "2022-09-01"})
MONITOR_API_VERSIONS = frozenset({"2024-02-01", "2023-10-01", "2021-05-01", "2019-07-01", "2018-01-01"})
POLL_API_VERSION = "2025-05-01"

SITE_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Web/sites/(?P<site>[^/]+)"
    r"(?:/slots/(?P<slot>[^/]+))?(?P<rest>(?:/.*)?)$",
    re.IGNORECASE,
)

# (method, rest of the path after the site or slot, lower case) -> route name. `None` in the rest: a pattern.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", ""): "get_site",
    ("GET", "/slots"): "list_slots",
    ("POST", "/slotsswap"): "swap",
    ("POST", "/applyslotconfig"): "apply_slot_config",
    ("POST", "/resetslotconfig"): "reset_slot_config",
    ("POST", "/restart"): "restart",
    ("GET", "/config/web"): "config_web_get",
    ("PATCH", "/config/web"): "config_web_update",
    ("PUT", "/config/web"): "config_web_update",
    ("POST", "/config/appsettings/list"): "appsettings_list",
    ("PUT", "/config/appsettings"): "appsettings_put",
    ("GET", "/config/slotconfignames"): "slot_config_names_get",
    ("PUT", "/config/slotconfignames"): "slot_config_names_put",
    ("GET", "/providers/microsoft.insights/metrics"): "metrics",
}
PRODUCTION_ONLY = frozenset({"list_slots", "slot_config_names_get", "slot_config_names_put"})
# Refused with 409 while a swap runs on the site (as App Service does for writes).
MUTATING = frozenset(
    {
        "swap",
        "apply_slot_config",
        "reset_slot_config",
        "restart",
        "config_web_update",
        "appsettings_put",
        "slot_config_names_put",
    }
)
OPERATION_PATH = re.compile(r"^/(operationresults|operations)/(?P<id>[0-9a-f-]+)$")
METRICS = {
    "requests": ("Requests", "Count"),
    "http5xx": ("Http5xx", "Count"),
    "httpresponsetime": ("HttpResponseTime", "Seconds"),
}


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}}, headers or {})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any


@dataclass
class Resolved:
    route: str
    site_name: str = ""
    slot: str = PRODUCTION
    operation_id: str = ""
    match: re.Match[str] | None = None


def resolve(request: Request) -> Resolved | None:
    match = SITE_PATH.match(request.path)
    if not match:
        return None
    rest = match["rest"].lower().rstrip("/")
    slot = match["slot"] or PRODUCTION
    operation = OPERATION_PATH.match(rest)
    if operation and request.method == "GET":
        route = "swap_status" if operation[1] == "operationresults" else "swap_async_status"
        return Resolved(route, match["site"], slot, operation["id"], match)
    route = ROUTES.get((request.method, rest))
    if route is None or (route in PRODUCTION_ONLY and match["slot"]):
        return None
    return Resolved(route, match["site"], slot, match=match)


def handle(emulator: AzureEmulator, request: Request) -> tuple[Answer, Resolved | None]:
    """Answer one ARM request. The caller holds the emulator's lock."""
    token = request.headers.get("authorization", "")
    if not token.startswith("Bearer ") or token.removeprefix("Bearer ") not in emulator.issued_tokens:
        return (
            error(
                401,
                "InvalidAuthenticationToken",
                "The access token is missing or invalid.",
                {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token is invalid"'},
            ),
            None,
        )
    resolved = resolve(request)
    if resolved is None:
        return error(404, "NotFound", f"No route for {request.method} {request.path}."), None
    versions = MONITOR_API_VERSIONS if resolved.route == "metrics" else WEB_API_VERSIONS
    api_version = request.query.get("api-version", "")
    if api_version not in versions:
        return (
            error(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{api_version}' is invalid. "
                f"The supported versions are '{','.join(sorted(versions))}'.",
            ),
            resolved,
        )
    fault = emulator.take_fault(resolved.route, resolved.site_name)
    if fault is not None:
        if fault.delay_s:
            emulator.lock.release()  # let other requests through while this one is slow
            try:
                time.sleep(fault.delay_s)
            finally:
                emulator.lock.acquire()
        if fault.status is not None:
            return _fault_answer(fault), resolved
    match = resolved.match
    assert match is not None
    site = emulator.sites.get((match["sub"].lower(), match["rg"].lower(), match["site"].lower()))
    if site is None:
        return (
            error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Web/sites/{match['site']}' under resource group '{match['rg']}' was not "
                "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            ),
            resolved,
        )
    if resolved.slot not in site.slots:
        return (
            error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Web/sites/{site.name}/slots/{resolved.slot}' under resource group "
                f"'{site.resource_group}' was not found.",
            ),
            resolved,
        )
    if resolved.route in MUTATING and site.current is not None:
        return _busy(site, site.current), resolved
    return HANDLERS[resolved.route](emulator, site, resolved, request), resolved


def _fault_answer(fault: Fault) -> Answer:
    status = fault.status or 500
    code, message = DEFAULT_ERRORS.get(status, ("Error", "Injected failure."))
    headers = dict(fault.headers)
    if status == 429:
        headers.setdefault("Retry-After", "1")
    return error(status, fault.code or code, fault.message or message, headers)


def _busy(site: EmulatedSite, operation: SwapOperation) -> Answer:
    return error(
        409,
        "Conflict",
        f"Cannot modify this site '{site.name}' because another operation is in progress. Details: Id: "
        f"{operation.id}, OperationName: SwapSiteSlots, CreatedTime: {time.strftime('%m/%d/%Y %H:%M:%S')}, "
        f"WorkerName: , DestinationSlot: {operation.slots[1]}, SourceSlot: {operation.slots[0]}",
    )


# --- resources ---------------------------------------------------------------------------------
def site_resource(site: EmulatedSite, slot: EmulatedSlot) -> dict[str, Any]:
    production = slot.name == PRODUCTION
    properties: dict[str, Any] = {
        "name": site.name if production else f"{site.name}({slot.name})",
        "state": slot.state,
        "hostNames": [slot.host],
        "enabledHostNames": [slot.host],
        "defaultHostName": slot.host,
        "enabled": slot.state == "Running",
        "availabilityState": "Normal",
        "resourceGroup": site.resource_group,
        "httpsOnly": False,
        "repositorySiteName": site.name,
        "usageState": "Normal",
    }
    if site.slot_swap_status:
        properties["slotSwapStatus"] = site.slot_swap_status
    return {
        "id": site.slot_id(slot.name),
        "name": site.name if production else f"{site.name}/{slot.name}",
        "type": "Microsoft.Web/sites" if production else "Microsoft.Web/sites/slots",
        "kind": "app,linux",
        "location": site.location,
        "properties": properties,
    }


def _config_resource(site: EmulatedSite, slot: EmulatedSlot, name: str, properties: Any) -> dict[str, Any]:
    return {
        "id": f"{site.slot_id(slot.name)}/config/{name}",
        "name": name,
        "type": "Microsoft.Web/sites/config" if slot.name == PRODUCTION else "Microsoft.Web/sites/slots/config",
        "location": site.location,
        "properties": properties,
    }


# --- handlers ----------------------------------------------------------------------------------
def get_site(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    return Answer(200, site_resource(site, site.slots[resolved.slot]))


def list_slots(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    names = sorted(name for name in site.slots if name != PRODUCTION)
    skip = int(request.query.get("$skipToken", "0") or 0)
    page = names[skip : skip + site.page_size]
    body: dict[str, Any] = {"value": [site_resource(site, site.slots[name]) for name in page], "nextLink": None}
    if skip + site.page_size < len(names):
        body["nextLink"] = (
            f"{emulator.arm_url}{site.id}/slots?api-version={request.query['api-version']}"
            f"&$skipToken={skip + site.page_size}"
        )
    return Answer(200, body)


def swap(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    body = request.body if isinstance(request.body, dict) else {}
    target = body.get("targetSlot")
    if not isinstance(target, str) or not target:
        return error(400, "BadRequest", "The parameter targetSlot has an invalid value.")
    if "preserveVnet" not in body:
        return error(400, "BadRequest", "The parameter preserveVnet is required.")
    if target not in site.slots:
        return error(404, "ResourceNotFound", f"Cannot find the slot '{target}' of site '{site.name}'.")
    if target == resolved.slot:
        return error(400, "BadRequest", "Source and target slot cannot be the same.")
    pair = (resolved.slot, target)
    if site.preview and set(pair) != {site.preview.source, site.preview.target}:
        return error(
            400,
            "BadRequest",
            f"Cannot swap slots {pair[0]} and {pair[1]}: a swap with preview between {site.preview.source} and "
            f"{site.preview.target} is in progress. Complete or cancel it first.",
        )
    operation = site.start_swap(*pair)
    return Answer(202, None, _poll_headers(emulator, site, operation))


def _poll_headers(emulator: AzureEmulator, site: EmulatedSite, operation: SwapOperation) -> dict[str, str]:
    base = site.poll_base_url or emulator.arm_url
    headers = {"Location": f"{base}{site.id}/operationresults/{operation.id}?api-version={POLL_API_VERSION}"}
    if site.lro_style == "azure-async-operation":
        headers["Azure-AsyncOperation"] = f"{base}{site.id}/operations/{operation.id}?api-version={POLL_API_VERSION}"
    if site.retry_after is not None:
        headers["Retry-After"] = str(site.retry_after)
    return headers


def _operation(site: EmulatedSite, resolved: Resolved) -> SwapOperation | None:
    return site.operations.get(resolved.operation_id)


def swap_status(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    """The Location URL: 202 while the swap runs, then 200 (or the swap's error)."""
    operation = _operation(site, resolved)
    if operation is None:
        return error(404, "NotFound", f"Operation {resolved.operation_id} was not found.")
    site.advance(operation)
    if operation.status == "InProgress":
        return Answer(202, None, _poll_headers(emulator, site, operation))
    if operation.status == "Failed":
        code, message = operation.error or ("SwapFailed", "The swap failed.")
        return error(400, code, message)
    return Answer(200, None)


def swap_async_status(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    """The Azure-AsyncOperation URL: 200 with the status in the body."""
    operation = _operation(site, resolved)
    if operation is None:
        return error(404, "NotFound", f"Operation {resolved.operation_id} was not found.")
    site.advance(operation)
    body: dict[str, Any] = {
        "id": f"{site.id}/operations/{operation.id}",
        "name": operation.id,
        "status": operation.status,
    }
    if operation.status == "Failed":
        code, message = operation.error or ("SwapFailed", "The swap failed.")
        body["error"] = {"code": code, "message": message}
    headers = {"Retry-After": str(site.retry_after)} if site.retry_after is not None else {}
    return Answer(200, body, headers)


def apply_slot_config(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    body = request.body if isinstance(request.body, dict) else {}
    target = body.get("targetSlot")
    if target not in site.slots or target == resolved.slot:
        return error(400, "BadRequest", f"The parameter targetSlot has an invalid value '{target}'.")
    if site.preview and (site.preview.source, site.preview.target) != (resolved.slot, target):
        return error(409, "Conflict", "Another swap with preview is in progress on this site.")
    if site.preview is None:
        site.apply_preview(resolved.slot, target)
    return Answer(200, None)


def reset_slot_config(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    site.reset_preview(resolved.slot)
    return Answer(200, None)


def restart(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    site.slots[resolved.slot].restarts += 1
    return Answer(200, None)


def config_web_get(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    slot = site.slots[resolved.slot]
    return Answer(200, _config_resource(site, slot, "web", slot.site_config))


def config_web_update(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    slot = site.slots[resolved.slot]
    body = request.body if isinstance(request.body, dict) else None
    properties = body.get("properties") if body else None
    if not isinstance(properties, dict):
        return error(400, "InvalidRequestContent", "The request content must have a 'properties' object.")
    experiments = properties.get("experiments")
    if experiments is not None:
        problem = _check_rules(site, slot, experiments)
        if problem:
            return error(400, "BadRequest", problem)
    if request.method == "PUT":
        slot.site_config = dict(properties)
    else:
        slot.site_config = {**slot.site_config, **properties}
    return Answer(200, _config_resource(site, slot, "web", slot.site_config))


def _check_rules(site: EmulatedSite, slot: EmulatedSlot, experiments: Any) -> str:
    rules = experiments.get("rampUpRules") if isinstance(experiments, dict) else None
    if rules is None:
        return ""
    if slot.name != PRODUCTION and rules:
        return "Routing rules can only be set on the production slot."
    hosts = {other.host for other in site.slots.values() if other.name != PRODUCTION}
    total = 0.0
    for rule in rules:
        if rule.get("actionHostName") not in hosts:
            host = rule.get("actionHostName")
            return f"Ramp-up rule '{rule.get('name')}': actionHostName '{host}' is not a slot of the site."
        percent = rule.get("reroutePercentage")
        if not isinstance(percent, int | float) or not 0 <= percent <= 100:
            return f"Ramp-up rule '{rule.get('name')}': reroutePercentage must be between 0 and 100."
        total += percent
    if total > 100:
        return f"The ramp-up rules route {total:g} % of the traffic; at most 100 % can be routed."
    return ""


def appsettings_list(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    slot = site.slots[resolved.slot]
    return Answer(200, _config_resource(site, slot, "appsettings", dict(slot.app_settings)))


def appsettings_put(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    slot = site.slots[resolved.slot]
    body = request.body if isinstance(request.body, dict) else None
    properties = body.get("properties") if body else None
    if not isinstance(properties, dict) or not all(isinstance(v, str) for v in properties.values()):
        return error(400, "InvalidRequestContent", "App settings must be a 'properties' object of strings.")
    slot.app_settings = dict(properties)  # a PUT replaces the whole set
    return Answer(200, _config_resource(site, slot, "appsettings", dict(slot.app_settings)))


def _slot_config_names(site: EmulatedSite) -> dict[str, Any]:
    return _config_resource(
        site,
        site.production,
        "slotConfigNames",
        {
            "appSettingNames": list(site.sticky_app_settings),
            "connectionStringNames": list(site.sticky_connection_strings),
            "azureStorageConfigNames": [],
        },
    )


def slot_config_names_get(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    return Answer(200, _slot_config_names(site))


def slot_config_names_put(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    body = request.body if isinstance(request.body, dict) else None
    properties = body.get("properties") if body else None
    if not isinstance(properties, dict):
        return error(400, "InvalidRequestContent", "The request content must have a 'properties' object.")
    site.sticky_app_settings = list(properties.get("appSettingNames") or [])
    site.sticky_connection_strings = list(properties.get("connectionStringNames") or [])
    return Answer(200, _slot_config_names(site))


def metrics(emulator: AzureEmulator, site: EmulatedSite, resolved: Resolved, request: Request) -> Answer:
    slot = site.slots[resolved.slot]
    names = [name.strip() for name in request.query.get("metricnames", "").split(",") if name.strip()]
    unknown = [name for name in names if name.lower() not in METRICS]
    if not names or unknown:
        return error(
            400,
            "BadRequest",
            f"Failed to find metric configuration for provider: Microsoft.Web, resource Type: sites, metric: "
            f"{','.join(unknown) or '(none)'}",
        )
    if request.query.get("interval", "PT1M").upper() != "PT1M":
        return error(400, "BadRequest", "The emulator serves only the PT1M interval.")
    try:
        start_text, end_text = request.query["timespan"].split("/")
        start = datetime.fromisoformat(start_text.replace("Z", "+00:00"))
        end = datetime.fromisoformat(end_text.replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return error(400, "BadRequest", "timespan must be 'start/end' in ISO 8601.")
    aggregations = {a.strip().lower() for a in request.query.get("aggregation", "Average").split(",")}
    first = start.astimezone(UTC).replace(second=0, microsecond=0)
    minutes = max(0, math.ceil((end - first).total_seconds() / 60))
    stamps = [first + timedelta(minutes=i) for i in range(minutes)]
    resource_id = site.slot_id(slot.name)
    value = []
    for name in names:
        display, unit = METRICS[name.lower()]
        data = []
        for stamp in stamps:
            point: dict[str, Any] = {"timeStamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}
            m = slot.metrics
            if display == "HttpResponseTime":
                if m.requests:
                    if "average" in aggregations:
                        point["average"] = m.response_time_ms / 1000
                    if "total" in aggregations:
                        point["total"] = m.response_time_ms / 1000 * m.requests
            else:
                count = m.requests if display == "Requests" else m.errors
                if "total" in aggregations:
                    point["total"] = float(count)
                if "average" in aggregations:
                    point["average"] = float(count)
            data.append(point)
        value.append(
            {
                "id": f"{resource_id}/providers/Microsoft.Insights/metrics/{display}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": display, "localizedValue": display},
                "displayDescription": f"{display} served by the app",
                "unit": unit,
                "timeseries": [{"metadatavalues": [], "data": data}],
                "errorCode": "Success",
            }
        )
    return Answer(
        200,
        {
            "cost": len(stamps) * len(names),
            "timespan": request.query["timespan"],
            "interval": "PT1M",
            "value": value,
            "namespace": "Microsoft.Web/sites" if slot.name == PRODUCTION else "Microsoft.Web/sites/slots",
            "resourceregion": "westeurope",
        },
    )


HANDLERS = {
    "get_site": get_site,
    "list_slots": list_slots,
    "swap": swap,
    "swap_status": swap_status,
    "swap_async_status": swap_async_status,
    "apply_slot_config": apply_slot_config,
    "reset_slot_config": reset_slot_config,
    "restart": restart,
    "config_web_get": config_web_get,
    "config_web_update": config_web_update,
    "appsettings_list": appsettings_list,
    "appsettings_put": appsettings_put,
    "slot_config_names_get": slot_config_names_get,
    "slot_config_names_put": slot_config_names_put,
    "metrics": metrics,
}


def parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
