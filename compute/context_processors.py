from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from compute.models import DataCenter
from vouchers.models import Voucher


def navigation(request: HttpRequest) -> dict:
    """Links to "my vouchers" and the data-center console, for those who have them.
    Lazy: a page that never shows the navigation runs no query."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"has_vouchers": False, "operates_data_center": False}
    return {
        "has_vouchers": SimpleLazyObject(
            lambda: Voucher.objects.filter(company__members=user).exists()
        ),
        "operates_data_center": SimpleLazyObject(
            lambda: user.is_superuser or DataCenter.objects.filter(operators=user).exists()
        ),
    }
