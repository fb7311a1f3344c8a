"""Outgoing webhooks: per-application subscriptions to events, signed JSON deliveries, retried by RQ.

events.py (event types, payloads), services.py (subscriptions, audited; `webhook_emit`),
delivery.py (the job, signing), views.py / forms.py / urls.py (the pages). See docs/webhooks.md.
"""
