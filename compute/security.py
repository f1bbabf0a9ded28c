"""What compute adds to the controls of the layers below it: data-center operators sign
in under the strict session limits, like city staff (portal/signin.py), and
`verify_ledger` checks every charge and reversal against its usage record
(compute.jobs.ledger_usage_verify, registered into vouchers.ledger); and its sensitive
actions ask for a recent authentication (portal/reauth.py): revoking or suspending a
voucher, issuing or revoking an API key, issuing a statement or marking it paid."""

from __future__ import annotations

from compute.jobs import ledger_usage_verify
from portal.models import User
from portal.reauth import post_action_in, post_field_in, sensitive_register
from portal.signin import privileged_check_register
from vouchers.ledger import ledger_check_register


def is_any_operator(user: User) -> bool:
    return user.operated_data_centers.exists()


def security_register() -> None:
    """From `ComputeConfig.ready()`."""
    privileged_check_register(is_any_operator)
    ledger_check_register(ledger_usage_verify)
    sensitive_register("compute:staff_voucher_status", post_action_in("revoke", "suspend"))
    sensitive_register("compute:console_keys")
    sensitive_register("compute:console_revoke")
    sensitive_register("compute:staff_settlement", post_field_in("step", "issue", "mark_paid"))
    sensitive_register("compute:staff_finding")  # confirm (voids records) or clear
    sensitive_register("compute:staff_program_integrity")  # holds and price bands
