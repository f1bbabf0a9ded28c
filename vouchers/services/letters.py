"""Letter templates: a program's wording of its decision letters, edited by the city's
program managers. Issued letters never change (`vouchers.letters.letter_issue`)."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.errors import DomainError
from portal.models import Role, User
from portal.tenancy import has_role
from vouchers.letters import TEMPLATE_FIELDS, template_problems
from vouchers.models import LetterKind, LetterTemplate, Program


def letter_template_save(
    *, program: Program, kind: str, actor: User, values: dict[str, str]
) -> LetterTemplate:
    """Save the program's wording of one kind of letter, both languages at once; every
    field's problems (an unknown placeholder among them) are reported together."""
    if not has_role(actor, program.city, Role.PROGRAM_MANAGER):
        raise DomainError(_("Only the city's program managers edit programs."), code="forbidden")
    if kind not in LetterKind.values:
        raise DomainError(_("Not found."), code="not_found")
    errors = template_problems(values)
    if errors:
        raise DomainError(_("Please correct the fields below."), fields=errors)
    clean = {field: values[field].strip() for field in TEMPLATE_FIELDS}
    with transaction.atomic():
        template, _created = LetterTemplate.objects.update_or_create(
            program=program, kind=kind, defaults=clean
        )
        audit_record(
            action="program.letter_template",
            city=program.city,
            actor=actor,
            target=program,
            data={"kind": kind, **clean},
        )
    return template
