"""`POST /experiments/api/v1/events`: exposure and metric events from applications, with a flag API key.

Authentication, the evaluate permission and the per-key rate limit are the flag APIs' own
(`strategies.flags.ofrep`); the body may be larger than theirs (a batch holds up to 5,000 events),
up to EXPERIMENT_EVENTS_MAX_BODY_BYTES. The answer is 200 when every event was taken (new or a
duplicate), 207 when some were rejected, 400 when the body is not a batch at all; always
`{"accepted", "duplicates", "rejected": [{"index", "field", "error"}]}` (plus `errorDetails` on 400).
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from strategies.experiments import ingest
from strategies.flags import ofrep
from strategies.flags import services as flag_services

MAX_BODY_BYTES = getattr(settings, "EXPERIMENT_EVENTS_MAX_BODY_BYTES", 2 * 1024 * 1024)


def _answer(body: dict, status: int) -> JsonResponse:
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


@csrf_exempt
@login_not_required
def experiment_events(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return ofrep.error_answer(405, "Use POST.", Allow="POST")
    caller = ofrep.key_caller(request)
    if isinstance(caller, JsonResponse):
        return caller
    if not caller.can_evaluate:
        return ofrep.error_answer(403, "This API key may read the flag definitions but not report events.")
    wait = ofrep.calls_retry_after(caller)
    if wait is not None:
        return ofrep.error_answer(429, f"Too many calls with this key; retry in {wait} s.", Retry_After=str(wait))
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES:
        return ofrep.error_answer(413, f"The body is larger than {MAX_BODY_BYTES} bytes; send smaller batches.")
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return _answer({"errorDetails": "The body is not JSON.", "accepted": 0, "duplicates": 0, "rejected": []}, 400)
    try:
        if not isinstance(body, dict):
            raise ValueError('The body is a JSON object: {"events": [...]}.')
        outcome = ingest.ingest(body.get("events"), environment_id=caller.environment_id)
    except ValueError as exc:
        return _answer({"errorDetails": str(exc), "accepted": 0, "duplicates": 0, "rejected": []}, 400)
    flag_services.api_key_touch(caller.key_id, caller.last_used_at)
    return _answer(outcome.body(), 207 if outcome.rejected else 200)
