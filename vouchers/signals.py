"""Signals later apps listen to (vouchers may not import them: portal ← vouchers ←
compute). Sent inside the transaction that made the change, before its audit event, so
a receiver's rows are written in the same transaction."""

from __future__ import annotations

from django.dispatch import Signal

# A voucher was suspended, resumed, revoked or expired: `voucher` (locked, saved, with
# its new status). compute tells the data centers holding it by webhook.
voucher_status_changed = Signal()
