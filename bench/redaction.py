"""What the secret redaction (portal/redaction.py) costs: per log record and per audit payload.

Run on demand, never part of the test suite (no database, no Redis):

    .venv/bin/python bench/redaction.py [--rounds 20000]

Prints microseconds per call (median of 5 runs) for: a log record made through the installed record factory
versus a plain one, `redact_text` on typical lines, and `redact_data` on audit before/after payloads.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portal.core.redaction import install_log_redaction, redact_data, redact_text

LINES = {
    "request line": "GET /apps/checkout-web/releases/2.10.0/ 200 12.4ms",
    "with a token": "API call refused: Authorization: Bearer slw_0a1b2c3d_Zm9vYmFyYmF6cXV4cXV1eHh5enp5MDEyMzQ1Njc4",
    "long (2 kB)": "operation 4711 step swap resumed; " * 60,
}
PAYLOADS = {
    "release snapshot": {"status": "live", "version": "2.10.0", "application": "checkout-web", "approved_by": ["ada"]},
    "flag definition (40 rules)": {
        "key": "dark-mode",
        "state": "ENABLED",
        "rules": [{"if": [{"in": [{"var": "email"}, ["a@example.com", "b@example.com"]]}, "on", "off"]}] * 40,
    },
}


def per_call_us(fn, rounds: int) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        runs.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    rounds = parser.parse_args().rounds

    logger = logging.getLogger("bench.redaction")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    logger.setLevel(logging.INFO)
    args = ("checkout-web", 42)
    plain = per_call_us(lambda: logger.info("promoted %s in operation %s", *args), rounds)
    install_log_redaction()
    redacted = per_call_us(lambda: logger.info("promoted %s in operation %s", *args), rounds)
    print(f"log record, plain factory:      {plain:7.2f} µs")
    print(f"log record, redacting factory:  {redacted:7.2f} µs  (+{redacted - plain:.2f} µs per record)")
    for name, line in LINES.items():
        print(f"redact_text, {name:<18} {per_call_us(lambda line=line: redact_text(line), rounds):7.2f} µs")
    for name, payload in PAYLOADS.items():
        us = per_call_us(lambda payload=payload: redact_data(payload), max(rounds // 10, 100))
        print(f"redact_data, {name:<26} {us:7.2f} µs")


if __name__ == "__main__":
    main()
