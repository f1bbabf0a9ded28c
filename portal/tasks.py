from __future__ import annotations

import logging

from celery import shared_task

from portal.audit import audit_chain_verify as _verify

log = logging.getLogger(__name__)


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def audit_chain_verify() -> int:
    """Nightly check of the audit chains; a broken link is logged as an error."""
    problems = _verify()
    for problem in problems:
        log.error("audit chain broken: %s", problem.describe())
    return len(problems)
