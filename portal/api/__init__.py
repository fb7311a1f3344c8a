"""The REST API v1 for pipelines (Django Ninja), its OpenAPI document and reference page, and API tokens.

`endpoints` declares the endpoints (thin: they call the domain's services); `routing` the API object
and the `endpoint` decorator; `auth` tokens, sessions, scopes and the rate limit; `problems` the
RFC 9457 errors; `idempotency` the Idempotency-Key store; `tokens` issuing and revoking tokens;
`views` the tokens page, the reference page and openapi.json; `urls` where they are mounted.
"""
