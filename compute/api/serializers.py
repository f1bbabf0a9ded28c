"""Input and output shapes of the API (docs/api.md). Outputs are also what /api/schema/
publishes, so field types here are the contract."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from compute.ingest import MAX_RECORDS


class MoneyField(serializers.DecimalField):
    """Money as a string with exactly two decimals."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=14, decimal_places=2, coerce_to_string=True, **kwargs)


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()), required=False
    )


class ErrorBody(serializers.Serializer):
    error = ErrorDetail()


class PingOut(serializers.Serializer):
    data_center = serializers.CharField()


class Rates(serializers.Serializer):
    domestic = serializers.DecimalField(max_digits=3, decimal_places=2)
    other = serializers.DecimalField(max_digits=3, decimal_places=2)


class VoucherOut(serializers.Serializer):
    code = serializers.CharField()
    city = serializers.CharField(source="city.slug")
    program = serializers.CharField(source="program.slug")
    company = serializers.CharField(source="company.legal_name")
    status = serializers.ChoiceField(
        choices=["active", "suspended", "expired", "exhausted", "revoked"]
    )
    currency = serializers.SerializerMethodField()
    face_value = MoneyField()
    balance = MoneyField()
    valid_from = serializers.DateField()
    valid_until = serializers.DateField()
    rates = serializers.SerializerMethodField()

    def get_currency(self, obj) -> str:
        return "CNY"

    def get_rates(self, obj) -> Rates:
        return {  # type: ignore[return-value]
            "domestic": f"{obj.program.rate_domestic:.2f}",
            "other": f"{obj.program.rate_other:.2f}",
        }


class RedemptionOut(serializers.Serializer):
    id = serializers.IntegerField()
    voucher = serializers.CharField(source="voucher.code")
    company = serializers.CharField(source="voucher.company.legal_name")
    status = serializers.ChoiceField(
        choices=["requested", "active", "rejected", "cancelled", "closed"]
    )
    contract_ref = serializers.CharField()
    amount_cap = MoneyField(allow_null=True)
    covered_total = MoneyField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class RedemptionListQuery(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["requested", "active", "rejected", "cancelled", "closed"], required=False
    )
    updated_since = serializers.DateTimeField(required=False)


# Text a person typed: no control characters (the schema says so, so generated clients
# and schemathesis know what is refused).
PLAIN_TEXT = r"^[^\x00-\x1f]*$"


class AcceptIn(serializers.Serializer):
    contract_ref = serializers.RegexField(
        PLAIN_TEXT, max_length=100, required=False, allow_blank=True
    )


class ReasonIn(serializers.Serializer):
    reason = serializers.RegexField(PLAIN_TEXT, min_length=1, max_length=300)


class UsageRecordIn(serializers.Serializer):
    """For the schema only: records are validated by `compute.ingest.check.record_parse`."""

    record_id = serializers.RegexField(r"^[A-Za-z0-9._:-]{1,64}$")
    voucher = serializers.CharField(max_length=24)
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField()
    resource = serializers.CharField(max_length=64)
    domestic = serializers.BooleanField()
    quantity = serializers.DecimalField(max_digits=14, decimal_places=3, min_value=Decimal("0.001"))
    amount = MoneyField(min_value=Decimal("0"))


class BatchIn(serializers.Serializer):
    records = serializers.ListField(child=UsageRecordIn(), min_length=1, max_length=MAX_RECORDS)


class BatchAccepted(serializers.Serializer):
    id = serializers.IntegerField()
    # A repeated Idempotency-Key answers with the first batch's status, whatever it is.
    status = serializers.ChoiceField(choices=["queued", "processing", "done", "failed"])
    received = serializers.IntegerField()
    url = serializers.URLField()


class RecordError(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[
            "invalid",
            "unknown_voucher",
            "not_authorized",
            "voucher_inactive",
            "outside_validity",
            "conflict",
        ]
    )
    message = serializers.CharField()


class RecordResult(serializers.Serializer):
    record_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"])
    covered_amount = MoneyField(allow_null=True)
    error = RecordError(allow_null=True)


class Counts(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    rejected = serializers.IntegerField()


class BatchOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["queued", "processing", "done", "failed"])
    received = serializers.IntegerField()
    failure_reason = serializers.CharField(
        help_text="Why a `failed` batch could not be applied (empty otherwise). Its records "
        "were not applied: send them again in a new batch, or retry the batch from the console."
    )
    counts = Counts()
    results = RecordResult(many=True)


class UsageRecordOut(serializers.Serializer):
    record_id = serializers.CharField()
    voucher = serializers.CharField(source="voucher.code")
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField()
    resource = serializers.CharField()
    domestic = serializers.BooleanField()
    quantity = serializers.DecimalField(max_digits=14, decimal_places=3)
    amount = MoneyField()
    covered_amount = MoneyField()
    status = serializers.ChoiceField(choices=["accepted", "void"])
    # Charged, but not paid to you until the city's staff clear an integrity finding
    # on it (compute/integrity/); a confirmed finding voids it.
    held = serializers.BooleanField()
    batch = serializers.IntegerField(source="batch_id")
    created_at = serializers.DateTimeField()


class UsageRecordListQuery(serializers.Serializer):
    voucher = serializers.CharField(max_length=24, required=False)
    status = serializers.ChoiceField(choices=["accepted", "void"], required=False)
    since = serializers.DateTimeField(required=False)


class RedemptionPage(serializers.Serializer):
    results = RedemptionOut(many=True)
    next = serializers.URLField(allow_null=True)


class UsageRecordPage(serializers.Serializer):
    results = UsageRecordOut(many=True)
    next = serializers.URLField(allow_null=True)


class SettlementOut(serializers.Serializer):
    id = serializers.IntegerField()
    city = serializers.CharField(source="city.slug")
    period = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=["draft", "issued", "confirmed", "paid"])
    records = serializers.IntegerField()
    amount_total = MoneyField()
    covered_total = MoneyField()

    def get_period(self, obj) -> str:
        return f"{obj.period:%Y-%m}"


class SettlementLineOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["usage", "adjustment"])
    record_id = serializers.CharField()
    voucher = serializers.CharField(source="voucher_code")
    amount = MoneyField()
    covered_amount = MoneyField()


class SettlementDetailOut(SettlementOut):
    lines = SettlementLineOut(many=True, source="lines.all")


class SettlementPage(serializers.Serializer):
    results = SettlementOut(many=True)
    next = serializers.URLField(allow_null=True)


class SettlementListQuery(serializers.Serializer):
    period = serializers.RegexField(r"^[1-9]\d{3}-(0[1-9]|1[0-2])$", required=False)
