"""Related parties (issue #19): companies and data centers declare their shareholders and
managers by name and ID number or registration code; when a company asks a data center
to bill its voucher and a code appears on both sides, a finding is raised (in the
request's transaction), for the city's staff to look at before the usage comes in."""

from __future__ import annotations

import re

from compute.integrity.models import FindingRule, RelatedParty, Severity
from compute.integrity.services import FindingDraft, findings_raise
from compute.models import Redemption

_NOT_CODE = re.compile(r"[\s\-]")
# What a declared party's code may be, once normalised: a resident ID number (18
# characters, the last a check digit or X; or the 15 digits of the first generation),
# or a unified social credit code (18 characters: two of the authority and kind, six
# digits of the region, then ten of digits and the capitals other than I, O, Z, S and
# V). The check characters themselves are not verified.
PARTY_CODE = re.compile(r"\d{15}|\d{17}[\dX]|[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}")


def party_code_normalise(code: str) -> str:
    """Codes compare without spaces or dashes and in upper case (an ID number's final X,
    a credit code's letters)."""
    return _NOT_CODE.sub("", code or "").upper()


def party_code_valid(code: str) -> bool:
    """Whether a normalised code has the shape of an ID number or a credit code."""
    return PARTY_CODE.fullmatch(code) is not None


def related_parties_check(redemption: Redemption) -> int:
    """Raise a related-party finding if the voucher's company and the data center share a
    declared shareholder or manager. One query; nothing when none is shared."""
    voucher = redemption.voucher
    company_parties = {
        p.code: p.name for p in RelatedParty.objects.filter(company_id=voucher.company_id)
    }
    if not company_parties:
        return 0
    shared = [
        {"name": p.name, "company_side": company_parties[p.code], "code": p.code}
        for p in RelatedParty.objects.filter(
            data_center_id=redemption.data_center_id, code__in=company_parties
        )
    ]
    if not shared:
        return 0
    for party in shared:  # the code itself is personal data: only its end is shown
        party["code"] = "…" + party["code"][-4:]
    draft = FindingDraft(
        city_id=voucher.city_id,
        data_center_id=redemption.data_center_id,
        rule=FindingRule.RELATED_PARTY,
        severity=Severity.HIGH,
        key=f"redemption {redemption.pk}",
        evidence={
            "redemption": redemption.pk,
            "contract_ref": redemption.contract_ref,
            "shared": shared,
        },
        voucher_id=voucher.pk,
        company_id=voucher.company_id,
    )
    return len(findings_raise([draft]))
