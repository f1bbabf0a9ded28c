"""Writes of the vouchers app, a module per aggregate: companies, programs, applications
(with their documents and the decision), reviews and objections.

Every workflow step is one service that checks the actor's party (company member or
staff role of the application's city) and the state against `vouchers.workflow`, locks
the application row, runs in a transaction, records the timeline and an audit event,
and enqueues notifications after commit. An illegal step raises `DomainError` and
changes nothing.

The public names are re-exported here, so callers write `services.application_submit`.
"""

from vouchers.services.applications import (
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENTS_PER_APPLICATION,
    application_answer_info,
    application_approve,
    application_create,
    application_fail_screening,
    application_pass_screening,
    application_reject,
    application_request_info,
    application_start_screening,
    application_submit,
    application_update,
    application_withdraw,
    document_add,
    sniff_content_type,
)
from vouchers.services.awards import award_accept, award_decline, award_lapse
from vouchers.services.companies import (
    COMPANY_PROFILE_FIELDS,
    company_create,
    company_invite,
    company_update,
    credit_code_message,
    invitation_accept,
)
from vouchers.services.documents import document_remove, document_replace
from vouchers.services.letters import letter_template_save
from vouchers.services.objections import (
    MAX_OBJECTIONS_PER_PERSON,
    objection_raise,
    objection_resolve,
)
from vouchers.services.outcomes import (
    outcome_document_add,
    outcome_document_remove,
    outcome_report_accept,
    outcome_report_return,
    outcome_report_submit,
    outcome_report_update,
)
from vouchers.services.programs import (
    PROGRAM_FIELDS,
    program_save,
    program_validate,
    rubric_problem,
)
from vouchers.services.reviews import (
    application_break_tie,
    review_assign,
    review_declare,
    review_submit,
)

# Reads that used to live here; they belong to the workflow table now.
from vouchers.workflow import EDITABLE, application_actions, application_problems, parties

__all__ = [
    "COMPANY_PROFILE_FIELDS",
    "EDITABLE",
    "MAX_DOCUMENTS_PER_APPLICATION",
    "MAX_DOCUMENT_BYTES",
    "MAX_OBJECTIONS_PER_PERSON",
    "PROGRAM_FIELDS",
    "application_actions",
    "application_answer_info",
    "application_approve",
    "application_break_tie",
    "application_create",
    "application_fail_screening",
    "application_pass_screening",
    "application_problems",
    "application_reject",
    "application_request_info",
    "application_start_screening",
    "application_submit",
    "application_update",
    "application_withdraw",
    "award_accept",
    "award_decline",
    "award_lapse",
    "company_create",
    "company_invite",
    "company_update",
    "credit_code_message",
    "document_add",
    "document_remove",
    "document_replace",
    "invitation_accept",
    "letter_template_save",
    "objection_raise",
    "objection_resolve",
    "outcome_document_add",
    "outcome_document_remove",
    "outcome_report_accept",
    "outcome_report_return",
    "outcome_report_submit",
    "outcome_report_update",
    "parties",
    "program_save",
    "program_validate",
    "review_assign",
    "review_declare",
    "review_submit",
    "rubric_problem",
    "sniff_content_type",
]
