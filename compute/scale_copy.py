"""Writing model rows by COPY for `compute.scale` (seed_scale): a row's named columns,
every other column its field's default, so a field added to a model later does not
break the load."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from django.db.models import Model

from portal.db import copy_rows, copy_text

CHUNK = 50_000  # rows per COPY


class ModelCopier:
    """Lines for one model's COPY, sent CHUNK at a time. The columns named are given
    per row; every other concrete column gets its field's default (the time of the
    load for auto_now fields; left to the database where it has a default of its
    own), so a field added to the model later does not break the load."""

    def __init__(self, model: type[Model], columns: str, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        given = [c.strip() for c in columns.split(",")]
        rest: list[str] = []
        self.tail: list[str] = []
        for f in model._meta.concrete_fields:
            if f.column in given or f.primary_key or f.has_db_default():
                continue
            rest.append(f.column)  # type: ignore[arg-type]  # set for concrete fields
            self.tail.append(_field(_default(f, now)))
        self.sql = f"COPY {model._meta.db_table} ({', '.join(given + rest)}) FROM STDIN"
        self.suffix = "".join("\t" + v for v in self.tail)
        self.lines: list[str] = []
        self.count = 0

    def add(self, *fields: object) -> None:
        self.lines.append("\t".join(_field(f) for f in fields) + self.suffix)
        if len(self.lines) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            copy_rows(self.sql, "\n".join(self.lines) + "\n")
            self.count += len(self.lines)
            self.lines = []


def _default(f, now: datetime) -> object:
    if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
        return now
    if f.has_default():
        value = f.get_default()
        return json.dumps(value) if isinstance(value, dict | list) else value
    if f.null:
        return None
    return ""


def _field(value: object) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return copy_text(value)
    return str(value)


def year_later(day: date) -> date:
    try:
        return day.replace(year=day.year + 1) - timedelta(days=1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


class VoucherTarget:
    """A voucher as `audit_record` names its target, without loading the row."""

    class _meta:
        label_lower = "vouchers.voucher"

    def __init__(self, pk: int) -> None:
        self.pk = pk
