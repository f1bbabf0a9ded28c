"""Webhooks: the portal tells a data center (or a city's own system) what changed, as it
happens, instead of making it poll (issue #19 item 3).

- `models`: an endpoint (its URL, the events it wants, a per-endpoint secret) and a
  delivery (one event to one endpoint: its payload, attempts, response codes).
- `signing`: HMAC-SHA-256 over `<timestamp>.<body>` with the endpoint's secret, sent as
  `Suanli-Signature: t=<unix seconds>,v1=<hex>`; `signature_verify` is the receiver's
  recipe (docs/api.md, Webhooks).
- `services`: registering and revoking endpoints (audited), `webhook_emit` (a delivery
  per subscribed endpoint, published once the transaction commits) and
  `delivery_attempt` (one POST; retried with exponential backoff for 24 hours).

Events carry a unique id (`Suanli-Event-Id` and the body's `id`): a receiver that gets
one twice must do nothing the second time.
"""
