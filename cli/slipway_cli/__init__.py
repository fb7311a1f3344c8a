"""`slipway`: the command-line client of Slipway's REST API v1, for pipelines (stdlib only)."""

__version__ = "0.1.0"
