"""Usage ingestion: receiving batches and applying them to vouchers, in bulk.

The package, in the order a batch goes through it: `body` (the bytes as received),
`receive` (stored, then enqueued), `check` (every record, before any lock), `plan`
(what each comes to as things stand), `apply` (written, then charged under the locks)
and `results` (docs/api.md's per-record results).

The hot path (tests/bench measures it). Receiving checks only the envelope and stores
the body exactly as it came; a Celery task then applies the batch in one transaction:
1. Before any lock, so that workers do it in parallel: every record is checked in plain
   Python (`check.record_parse`) and a record_id repeated within the batch is settled against
   its first occurrence; the vouchers named, their terms and their active redemptions
   here are read; each first occurrence is planned (`plan.plan`) and the ones to be charged
   are written by one COPY, with their full share as covered amount. A record_id this
   data center sent before makes that COPY fail on the unique index (after waiting for
   a batch writing the same one to commit): the records sent before are then looked up
   and compared field by field, and the batch planned again.
2. The plan's results are written to the batch (they usually stand). Then, under the
   locks: the vouchers (`vouchers.ledger.vouchers_lock`, in id order); if each is still
   active with enough balance, one UPDATE adds the planned totals to the redemptions
   where each is still the active one with enough cap left, and the charge entries and
   balances go in by `vouchers.ledger.ledger_charge_many` (one COPY, one UPDATE). If
   anything changed meanwhile, the redemptions are locked too and `apply.settle` decides
   every record again, `covered = min(share, balance left, cap left)` in the order
   sent, rejecting the records of a voucher suspended or revoked, or of a redemption
   closed; the few written records that changed are updated or deleted, and the
   results written again. No record costs a round trip.
The batch row is locked first, so two workers never apply one batch at once, and its
status is committed with the charges, so a batch applied twice (a redelivered task, the
sweeper) finds itself `done` and changes nothing.
"""

from compute.ingest.apply import usage_batch_apply
from compute.ingest.body import MAX_BODY_BYTES, MAX_RECORDS, BatchBody, body_records
from compute.ingest.check import FUTURE_TOLERANCE, RecordFields, record_parse
from compute.ingest.plan import Outcome, rejection_messages
from compute.ingest.receive import usage_batch_receive

__all__ = [
    "FUTURE_TOLERANCE",
    "MAX_BODY_BYTES",
    "MAX_RECORDS",
    "BatchBody",
    "Outcome",
    "RecordFields",
    "body_records",
    "record_parse",
    "rejection_messages",
    "usage_batch_apply",
    "usage_batch_receive",
]
