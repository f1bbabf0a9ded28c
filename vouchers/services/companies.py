"""Companies: registration (by unified social credit code), the profile its members
keep current, and invitations to join."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.errors import DomainError
from portal.models import User
from portal.queue import publish_on_commit
from vouchers.credit_code import credit_code_problem
from vouchers.models import Company, CompanyInvitation, CompanyMember
from vouchers.services._steps import invalid
from vouchers.tasks import invitation_send

COMPANY_PROFILE_FIELDS = (
    "legal_name",
    "registered_city",
    "registered_address",
    "founded_on",
    "headcount",
    "revenue_last_year",
)


def credit_code_message(code: str) -> str | None:
    problem = credit_code_problem(code)
    return {
        None: None,
        "length": _("A unified social credit code has 18 characters."),
        "characters": _(
            "Only digits and the capital letters A-H, J-N, P-R, T, U, W-Y are used "
            "(no I, O, S, V or Z)."
        ),
        "check": _(
            "The last character does not match the first 17 (GB 32100-2015 check); "
            "please check the code on the business licence."
        ),
    }[problem]


MAX_HEADCOUNT = 10_000_000  # the form's bound too; the column holds 2,147,483,647


def _check_profile(fields: dict[str, Any]) -> None:
    headcount = fields.get("headcount")
    if headcount is not None and not 0 <= headcount <= MAX_HEADCOUNT:
        raise invalid("headcount", _("A headcount from 0 to %(n)s.") % {"n": f"{MAX_HEADCOUNT:,}"})


def company_create(*, actor: User, legal_name: str, credit_code: str, **fields: Any) -> Company:
    _check_profile(fields)
    code = (credit_code or "").strip().upper()
    message = credit_code_message(code)
    if message:
        raise invalid("credit_code", message)
    if not (legal_name or "").strip():
        raise invalid("legal_name", _("Give the company's legal name."))
    try:
        with transaction.atomic():
            company = Company.objects.create(
                legal_name=legal_name.strip(), credit_code=code, **fields
            )
            CompanyMember.objects.create(company=company, user=actor, is_owner=True)
            audit_record(
                action="company.create",
                city=company.registered_city,
                actor=actor,
                target=company,
                data={"credit_code": code},
            )
    except IntegrityError as error:
        raise invalid(
            "credit_code", _("A company with this credit code is already registered.")
        ) from error
    return company


def company_update(*, company: Company, actor: User, values: dict[str, Any]) -> Company:
    """Members keep the profile current (eligibility reads it at each submission). The
    credit code identifies the company and never changes."""
    if not (values.get("legal_name") or company.legal_name or "").strip():
        raise invalid("legal_name", _("Give the company's legal name."))
    _check_profile(values)
    with transaction.atomic():
        company = Company.objects.select_for_update().get(pk=company.pk)
        if not CompanyMember.objects.filter(company=company, user=actor).exists():
            raise DomainError(_("Not found."), code="not_found")
        changed = {}
        for field in COMPANY_PROFILE_FIELDS:
            if field in values and getattr(company, field) != values[field]:
                setattr(company, field, values[field])
                changed[field] = str(values[field])
        if changed:
            company.legal_name = company.legal_name.strip()
            company.save()
            audit_record(
                action="company.update",
                city=company.registered_city,
                actor=actor,
                target=company,
                data=changed,
            )
    return company


def company_invite(*, company: Company, actor: User, email: str) -> CompanyInvitation:
    if not CompanyMember.objects.filter(company=company, user=actor, is_owner=True).exists():
        raise DomainError(_("Only the company's owner may invite members."), code="forbidden")
    email = (email or "").strip().lower()
    if "@" not in email:
        raise invalid("email", _("Give an e-mail address."))
    invitation = CompanyInvitation.objects.create(
        company=company, email=email, token=secrets.token_urlsafe(32), invited_by=actor
    )
    audit_record(action="company.invite", actor=actor, target=company, data={"email": email})
    publish_on_commit(invitation_send, invitation.pk)
    return invitation


def invitation_accept(*, token: str, actor: User) -> Company:
    with transaction.atomic():
        invitation = (
            CompanyInvitation.objects.select_for_update()
            .filter(token=token, accepted_at__isnull=True)
            .first()
        )
        if invitation is None or invitation.email != actor.email.lower():
            raise DomainError(_("This invitation is not valid for your account."), code="not_found")
        CompanyMember.objects.get_or_create(company=invitation.company, user=actor)
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        audit_record(action="company.join", actor=actor, target=invitation.company)
    return invitation.company
