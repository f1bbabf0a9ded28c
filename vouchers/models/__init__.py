"""Programs, companies, vouchers and the voucher ledger.

Money is `Decimal` with two places (`MONEY`), never float. A voucher's balance is the
sum of its ledger entries; `Voucher.balance` is a cache updated in the same transaction
as every entry and checked by `manage.py verify_ledger`.
"""

from vouchers.models.applications import (  # noqa: F401 - re-exported
    REVIEW_STATES,
    Application,
    ApplicationState,
    ComputePlanRow,
    Document,
    EligibilityOutcome,
    EligibilityResult,
    InfoRequest,
    Objection,
    ProgramStateCount,
    ReminderSent,
    Review,
    StateChange,
    _document_path,
)
from vouchers.models.base import (  # noqa: F401 - re-exported
    DOCUMENT_TYPES,
    ZERO,
    _localised,
    document_type_label,
    money_field,
)
from vouchers.models.ledger import (  # noqa: F401 - re-exported
    EntryKind,
    LedgerEntry,
    Voucher,
    VoucherStatus,
)
from vouchers.models.letters import (  # noqa: F401 - re-exported
    DecisionLetter,
    LetterKind,
    LetterNumber,
    LetterTemplate,
)
from vouchers.models.outcomes import (  # noqa: F401 - re-exported
    OUTCOME_DOCUMENT_TYPES,
    OUTCOME_OPEN_STATES,
    OUTCOME_WAITING_STATES,
    OutcomeChange,
    OutcomeDocument,
    OutcomeReport,
    OutcomeStage,
    OutcomeState,
)
from vouchers.models.programs import (  # noqa: F401 - re-exported
    Company,
    CompanyInvitation,
    CompanyMember,
    Program,
    ProgramStatus,
    criterion_label,
)
