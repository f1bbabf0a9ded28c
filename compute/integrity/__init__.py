"""Integrity checks on usage (issue #19, docs/architecture.md "Integrity checks").

`pipeline` runs the cheap checks (price band, plan) inside usage ingestion, set-wise;
`nightly` the costly ones (capacity per hour bucket, patterns) in SQL from Celery beat;
`parties` the related-party check at redemption; `services` raises findings and carries
out staff decisions (confirm: void the records through the ledger; clear: release held
charges), each audited in its transaction.
"""
