"""A stand-in for an RQ worker that starts a swap, persists its resume token, then polls until killed.

Run as `python -m tests.azure.swap_worker '<application json>' <token file>` with the AZURE_* variables
(and REQUESTS_CA_BUNDLE) of the emulator in the environment. Settings come from the environment as in
production; only the polling interval is shortened, as the test settings do.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django.conf import settings

    settings.AZURE_POLLING_INTERVAL = float(os.environ.get("SLIPWAY_TEST_POLLING_INTERVAL", "0.05"))

    from releases.catalog.models import Application
    from releases.catalog.providers.azure import AzureProvider

    coordinates, token_file = json.loads(sys.argv[1]), Path(sys.argv[2])
    application = Application(**coordinates)
    handle = AzureProvider.for_application(application).begin_swap(application, "staging")
    # Write then rename, so the test never reads half a token (the engine stores it on the step instead).
    partial = token_file.with_suffix(".partial")
    partial.write_text(handle.resume_token)
    partial.rename(token_file)
    handle.result()  # the test kills this process while the swap is held in progress
    print("swap finished in the worker", flush=True)


if __name__ == "__main__":
    main()
