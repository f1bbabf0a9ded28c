"""The idempotency key of usage records, `(data_center, record_id)` once for all time,
kept in `compute_usagerecordkey` (compute.partition_models.UsageRecordKey): the records'
table is partitioned by month, where a unique index holds only within one month.

`apply` writes a batch's keys by one COPY just before its records (same transaction,
same record_id order, so two batches sharing record_ids still wait for each other in
one order). A record_id sent before fails that COPY on the key's primary key
(`KEY_CONSTRAINT`), however many months apart, before any record is written; then the
records sent before are looked up through their keys (`plan.stored_records`) and the
batch is planned again — a duplicate or a conflict, never a second charge. Records
deleted under the locks (`apply._charge`) take their keys with them (`RECORDS_DELETE`).
"""

from __future__ import annotations

from portal.db import copy_lines_plain, copy_rows, copy_text

KEY_CONSTRAINT = "compute_usagerecordkey_pkey"

_KEYS_COPY = (
    "COPY compute_usagerecordkey (data_center_id, record_id, usage_record_id, ended_at) FROM STDIN"
)

# The records that `settle` rejected after all, and their keys: the record_id may be
# sent again (as before partitioning, when the key was the records' own index).
RECORDS_DELETE = (
    "WITH gone AS (DELETE FROM compute_usagerecord"
    " WHERE id = ANY(string_to_array(%s, E'\\n')::bigint[])"
    " RETURNING data_center_id, record_id)"
    " DELETE FROM compute_usagerecordkey k USING gone"
    " WHERE k.data_center_id = gone.data_center_id AND k.record_id = gone.record_id"
)


def keys_copy(data_center_id: int, keys: list[tuple[str, int, str]]) -> None:
    """COPY the keys (record_id, usage record id, ended_at as sent), in the order given.
    Four short fields a record: the one cost per record that partitioning added."""
    head = f"{data_center_id}\t"
    text = "".join([f"{head}{name}\t{pk}\t{ended}\n" for name, pk, ended in keys])
    if not copy_lines_plain(text, lines=len(keys), columns=4):
        text = "".join(
            [f"{head}{copy_text(name)}\t{pk}\t{copy_text(ended)}\n" for name, pk, ended in keys]
        )
    copy_rows(_KEYS_COPY, text)
