"""A real OpenFeature client: the Python SDK with its OFREP provider, against the live portal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason

from tests.flags.conftest import KEY

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def client_for(live_server: Any) -> Iterator[Any]:
    def make(key: str = KEY) -> Any:
        api.set_provider(OFREPProvider(live_server.url, headers_factory=lambda: {"Authorization": f"Bearer {key}"}))
        return api.get_client()

    yield make
    api.shutdown()


def test_an_openfeature_client_gets_every_type_over_ofrep(
    client_for: Any, api_key: str, make_flag: Any, staff_segment: Any
) -> None:
    make_flag("kill-switch", default_variant="on")
    make_flag(
        "dark",
        rules={
            "rules": [
                {
                    "match": "any",
                    "conditions": [{"attribute": "", "op": "in_segment", "value": "staff"}],
                    "serve": {"variant": "on"},
                }
            ]
        },
    )
    make_flag(
        "colour",
        flag_type="string",
        variants={"blue": "#00f", "green": "#0f0"},
        default_variant="blue",
        rules={
            "rules": [
                {"conditions": [{"attribute": "country", "op": "is", "value": "NL"}], "serve": {"variant": "green"}}
            ]
        },
    )
    make_flag("max-items", flag_type="number", variants={"few": 3, "many": 30}, default_variant="many")
    make_flag("ratio", flag_type="number", variants={"low": 0.25, "high": 0.75}, default_variant="high")
    make_flag(
        "layout", flag_type="object", variants={"grid": {"columns": 3}, "list": {"columns": 1}}, default_variant="grid"
    )
    client = client_for()
    staff = EvaluationContext("alice", {"email": "alice@example.com", "country": "NL"})
    customer = EvaluationContext("carl", {"email": "carl@customer.org"})

    assert client.get_boolean_value("kill-switch", False, customer) is True
    assert client.get_boolean_value("dark", False, staff) is True
    assert client.get_boolean_value("dark", True, customer) is False
    assert client.get_string_value("colour", "none", staff) == "#0f0"
    assert client.get_string_value("colour", "none", customer) == "#00f"
    assert client.get_integer_value("max-items", 0, customer) == 30
    assert client.get_float_value("ratio", 0.0, customer) == 0.75
    assert client.get_object_value("layout", {}, customer) == {"columns": 3}
    details = client.get_boolean_details("dark", False, staff)
    assert (details.variant, details.reason) == ("on", Reason.TARGETING_MATCH)


def test_the_client_falls_back_to_its_default_on_errors(client_for: Any, api_key: str, make_flag: Any) -> None:
    make_flag("split", rules={"fallthrough": {"split": [["on", 50], ["off", 50]]}})
    client = client_for()

    missing = client.get_boolean_details("nope", True, EvaluationContext("u"))
    no_key = client.get_boolean_details("split", True, EvaluationContext(None, {"country": "DE"}))
    wrong_type = client.get_string_details("split", "x", EvaluationContext("u"))
    unauthorised = client_for("slwf_wrong").get_boolean_details("split", True, EvaluationContext("u"))

    assert (missing.value, missing.error_code) == (True, "FLAG_NOT_FOUND")
    assert (no_key.value, no_key.error_code) == (True, "TARGETING_KEY_MISSING")
    assert (wrong_type.value, wrong_type.error_code) == ("x", "TYPE_MISMATCH")
    assert (unauthorised.value, unauthorised.error_code) == (True, "GENERAL")
