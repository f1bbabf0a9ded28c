"""What compute adds to the controls of the layers below it: data-center operators sign
in under the strict session limits, like city staff (portal/signin.py), and
`verify_ledger` checks every charge and reversal against its usage record
(compute.jobs.ledger_usage_verify, registered into vouchers.ledger)."""

from __future__ import annotations

from compute.jobs import ledger_usage_verify
from portal.models import User
from portal.signin import privileged_check_register
from vouchers.ledger import ledger_check_register


def is_any_operator(user: User) -> bool:
    return user.operated_data_centers.exists()


def security_register() -> None:
    """From `ComputeConfig.ready()`."""
    privileged_check_register(is_any_operator)
    ledger_check_register(ledger_usage_verify)
