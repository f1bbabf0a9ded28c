"""A batch's results as docs/api.md gives them: one entry per record in the order sent,
written once as JSON text (`UsageBatch.results_json`), and the three counts."""

from __future__ import annotations

import re
from typing import NamedTuple

import orjson

from compute.ingest.check import Invalid, Staged
from compute.ingest.plan import Outcome, Plan, rejection_messages
from portal.db import text_storable

# Text that needs no escaping inside a JSON string: printable ASCII but `"` and `\`.
_JSON_PLAIN = re.compile(r"[ !#-\[\]-~]*\Z")


def json_string(value: str) -> str:
    """`value` as a JSON string literal. The one place results' text is quoted: a valid
    record_id is plain ASCII and is written as it is; anything else is made storable
    (`portal.db.text_storable`: NUL and unpaired surrogates become U+FFFD) and quoted
    by orjson."""
    if _JSON_PLAIN.match(value):
        return f'"{value}"'
    return orjson.dumps(text_storable(value)).decode()


class Results(NamedTuple):
    json: str
    accepted: int
    duplicate: int
    rejected: int


def results(staged: Staged, outcomes: list[Plan]) -> Results:
    """Each record's result, in the order sent. `outcomes`: one per first occurrence. A
    repeat of a record_id within the batch follows its first occurrence (an accepted
    first makes it a duplicate) if it says the same, and is a conflict if not."""
    names = staged.record_ids
    if (
        not staged.settled
        and all(plan.outcome == Outcome.ACCEPTED for plan in outcomes)
        and _JSON_PLAIN.match("".join(names))  # type: ignore[arg-type]  # all valid: str
    ):
        # The usual batch: every record accepted, every record_id plain (which
        # `json_string` would write as it is, checked here once for the batch).
        parts = [
            f'{{"record_id":"{record_id}","status":"accepted",'
            f'"covered_amount":"{plan.covered}","error":null}}'
            for record_id, plan in zip(names, outcomes, strict=True)
        ]
        return Results("[" + ",".join(parts) + "]", len(parts), 0, 0)
    messages = rejection_messages()
    by_ordinal = {
        occurrence.ordinal: plan
        for occurrence, plan in zip(staged.first_occurrences, outcomes, strict=True)
    }
    parts = []
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for ordinal, record_id in enumerate(staged.record_ids):
        settled = staged.settled.get(ordinal)
        if settled is None:
            outcome, covered = by_ordinal[ordinal][:2]
            message = None
        elif isinstance(settled, Invalid):
            outcome, covered, message = Outcome.INVALID, None, settled.message
        elif settled.same:  # a repeat that says the same as its first occurrence
            outcome, covered = by_ordinal[settled.first][:2]
            message = None
            if outcome == Outcome.ACCEPTED:
                outcome = Outcome.DUPLICATE
        else:
            outcome, covered, message = Outcome.CONFLICT, None, None
        if outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE):
            status, error = outcome.value, "null"
            amount = f'"{covered:f}"'
        else:
            status, amount = "rejected", "null"
            text = message if message is not None else messages[outcome]
            error = f'{{"code":"{outcome.value}","message":{json_string(text)}}}'
        counts[status] += 1
        name = "null" if record_id is None else json_string(record_id)
        parts.append(
            f'{{"record_id":{name},"status":"{status}","covered_amount":{amount},"error":{error}}}'
        )
    return Results(
        "[" + ",".join(parts) + "]", counts["accepted"], counts["duplicate"], counts["rejected"]
    )
