"""What compute adds to the portal's security controls (portal/signin.py): data-center
operators sign in under the strict session limits, like city staff."""

from __future__ import annotations

from portal.models import User
from portal.signin import privileged_check_register


def is_any_operator(user: User) -> bool:
    return user.operated_data_centers.exists()


def security_register() -> None:
    """From `ComputeConfig.ready()`."""
    privileged_check_register(is_any_operator)
