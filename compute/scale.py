"""A city at national scale for the dashboards' benchmark (`manage.py seed_scale`, issue
#12 item 11): by default 100,000 applications, 20,000 vouchers and 2,000,000 usage
records with their ledger charges, spread over the last 12 months and the demo data
centers, written with COPY in one transaction (minutes, not hours).

What it writes is what the services would have written, consistently, so that
`verify_ledger` and `verify_audit` pass afterwards:

- one company per application; applications in every state, the first `vouchers` of
  them approved, each with its voucher (face value allocated from the program, an
  issue entry in the ledger) and one active redemption at one of the city's data
  centers;
- usage records in time order, each charging its voucher the covered share (the
  program's rate for domestic or other chips, never past the balance) through one
  ledger charge entry whose `balance_after` continues the voucher's chain; the
  redemptions' `covered_total` and the vouchers' balances are the sums;
- one done batch per data center and month holding that month's records;
- audit events through `portal.audit.audit_record` (the chain's own writer, so hashes,
  keys and sequence are the real ones): `voucher.issue` for every voucher, as the
  ledger writes it, and one `scale.seed` event saying what was loaded. Applications,
  companies and usage are not audited one by one (the services audit each
  submission; a usage batch is audited by its data center's API call): the one
  `scale.seed` event stands for them;
- the usage rollups rebuilt from the records, as after any bulk load.

A city that already holds the scale program (`SCALE_PROGRAM`) is refused: run it on
another city, or on a fresh database.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth.hashers import make_password
from django.db import connection, transaction

from compute.demo import SERVES, seed_compute
from compute.models import (
    DataCenter,
    Redemption,
    Registration,
    UsageBatch,
    UsageRecord,
    UsageRecordKey,
)
from compute.rollups import rollups_rebuild
from compute.scale_copy import ModelCopier, VoucherTarget, year_later
from portal.audit import audit_record
from portal.db import new_ids
from portal.demo import DEMO_PASSWORD, _user
from portal.errors import DomainError
from portal.locks import single_writer
from portal.models import City, CityMembership, Role
from vouchers.ledger_chain import ChainWriter
from vouchers.models import Application, ApplicationState, Company, LedgerEntry, Program, Voucher

SCALE_PROGRAM = "scale-2026"
CENT = Decimal("0.01")
# (accelerator, domestic, list price per accelerator-hour in yuan)
RESOURCES = [
    ("Ascend 910B", True, Decimal("12.00")),
    ("MLU370-X8", True, Decimal("8.50")),
    ("Hygon DCU Z100", True, Decimal("7.20")),
    ("NVIDIA H800", False, Decimal("25.00")),
    ("NVIDIA A800", False, Decimal("18.00")),
]
# States of the applications that did not become vouchers, with their weights.
OTHER_STATES = [
    (ApplicationState.SUBMITTED, 10),
    (ApplicationState.SCREENING, 8),
    (ApplicationState.IN_REVIEW, 12),
    (ApplicationState.INFO_REQUESTED, 3),
    (ApplicationState.RECOMMENDED, 4),
    (ApplicationState.NOT_RECOMMENDED, 4),
    (ApplicationState.IN_NOTICE, 3),
    (ApplicationState.REJECTED, 20),
    (ApplicationState.WITHDRAWN, 6),
]
STAFF = [
    ("manager", Role.PROGRAM_MANAGER),
    ("auditor", Role.AUDITOR),
    ("reviewer", Role.REVIEWER),
    ("approver", Role.APPROVER),
]


@dataclass
class ScaleResult:
    city: City
    applications: int
    vouchers: int
    records: int
    charges: int
    logins: list[str] = field(default_factory=list)


def staff_email(role: str, city: City) -> str:
    return f"{role}@{city.slug}.scale.suanli.cn"


def founder_email(city: City) -> str:
    return f"founder@{city.slug}.scale.suanli.cn"


def operator_email(city: City) -> str:
    return f"ops@{city.slug}.scale.suanli.cn"


def _city(slug: str) -> City:
    """The city of that slug, created (with an unused code) if there is none."""
    city = City.objects.filter(slug=slug).first()
    if city is not None:
        return city
    taken = set(City.objects.values_list("code", flat=True))
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    candidates = [slug[:2].upper(), *(f"S{a}{b}" for a in letters for b in letters)]
    code = next(c for c in candidates if c.isalpha() and c not in taken)
    return City.objects.create(
        slug=slug, code=code, name_zh=f"规模测试市（{slug}）", name_en=f"Scale city ({slug})"
    )


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def seed_scale(
    *,
    city_slug: str = "scale",
    applications: int = 100_000,
    vouchers: int = 20_000,
    records: int = 2_000_000,
    seed: int = 2026,
    progress: Callable[[str], None] = lambda _message: None,
) -> ScaleResult:
    """Load a city at scale (see the module's docstring); refuses a city that has it."""
    if not 0 < vouchers <= applications:
        raise DomainError("Need 0 < vouchers <= applications.", code="invalid")
    if records < 0:
        raise DomainError("Records cannot be negative.", code="invalid")
    rng = random.Random(seed)  # noqa: S311 - test data, reproducible by seed
    with transaction.atomic(), single_writer():
        city = _city(city_slug)
        if Program.objects.filter(city=city, slug=SCALE_PROGRAM).exists():
            raise DomainError(
                f"City {city.slug} already has scale data (program {SCALE_PROGRAM}); "
                "run seed_scale with another --city, or on a fresh database.",
                code="conflict",
            )
        world = _World(city=city, rng=rng, progress=progress)
        world.people()
        world.program_and_centers(vouchers)
        world.applications(applications, vouchers)
        world.usage(records)
        world.finish()
        result = ScaleResult(
            city=city,
            applications=applications,
            vouchers=vouchers,
            records=world.records,
            charges=world.charges,
            logins=world.logins,
        )
        audit_record(
            action="scale.seed",
            city=city,
            actor_label="seed_scale",
            target=world.program,
            data={
                "applications": applications,
                "vouchers": vouchers,
                "usage_records": world.records,
                "ledger_charges": world.charges,
            },
        )
    _analyze(progress)
    _rollups_rebuild(progress)
    return result


LOADED_TABLES = (
    "vouchers_company",
    "vouchers_application",
    "vouchers_voucher",
    "vouchers_ledgerentry",
    "compute_redemption",
    "compute_usagebatch",
    "compute_usagerecord",
    "compute_usagerecordkey",
    "portal_auditevent",
)


def _analyze(progress: Callable[[str], None]) -> None:
    """Fresh planner statistics for the tables just loaded: until autovacuum gets to
    them, the planner takes a city's millions of records for a handful and picks nested
    loops that read them all for every page (an export's chunk took 370 ms, not 5).
    Without the tables' ownership (the least-privilege role) PostgreSQL skips it with a
    warning; autovacuum's own ANALYZE follows soon after a load this size anyway."""
    progress("ANALYZE")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(LOADED_TABLES)}")


def _rollups_rebuild(progress: Callable[[str], None]) -> None:
    """The dashboards' daily rollups, written again from the records (a bulk load does
    not go through the ingestion pipeline that keeps them)."""
    progress("rebuilding the usage rollups")
    rollups_rebuild()


class _World:
    """The state of one load: ids handed out, balances and totals as they build up."""

    def __init__(self, *, city: City, rng: random.Random, progress) -> None:
        self.city, self.rng, self.progress = city, rng, progress
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.start = self.now - timedelta(days=365)
        self.logins: list[str] = []
        self.records = self.charges = 0

    # --- people, program, data centers ---------------------------------------------------

    def people(self) -> None:
        password = make_password(DEMO_PASSWORD)
        self.staff = {}
        for role, role_value in STAFF:
            user = _user(
                staff_email(role, self.city), f"{role} ({self.city.slug})", "zh-hans", password
            )
            CityMembership.objects.get_or_create(user=user, city=self.city, role=role_value)
            self.staff[role] = user
            self.logins.append(user.email)
        self.founder = _user(founder_email(self.city), "founder", "zh-hans", password)
        self.operator = _user(operator_email(self.city), "ops", "zh-hans", password)
        self.logins += [self.founder.email, self.operator.email]

    def program_and_centers(self, vouchers: int) -> None:
        centers = seed_compute()
        slugs = SERVES.get(self.city.slug) or sorted(centers)
        self.centers: list[DataCenter] = [centers[s] for s in slugs]
        self.program = Program.objects.create(
            city=self.city,
            slug=SCALE_PROGRAM,
            name_zh="规模测试算力券",
            name_en="Scale-test computing vouchers",
            status="open",
            opens_at=self.start,
            budget=Decimal(vouchers) * Decimal("1000000.00") * Decimal("1.2"),
            award_min=Decimal("100000.00"),
            award_max=Decimal("1000000.00"),
            rate_domestic=Decimal("0.30"),
            rate_other=Decimal("0.20"),
            validity_months=12,
        )
        for center in self.centers:
            Registration.objects.get_or_create(
                city=self.city, data_center=center, defaults={"starts_on": self.start.date()}
            )
            center.programs.add(self.program)
            center.operators.add(self.operator)

    # --- companies, applications, vouchers ----------------------------------------------

    def applications(self, count: int, vouchers: int) -> None:
        rng, city = self.rng, self.city
        self.progress(f"{count:,} companies and applications, {vouchers:,} vouchers")
        company_ids = new_ids("vouchers_company", count)[1]
        app_ids = new_ids("vouchers_application", count)[1]
        voucher_ids = new_ids("vouchers_voucher", vouchers)[1]
        entry_ids = new_ids("vouchers_ledgerentry", vouchers)[1]
        redemption_ids = new_ids("compute_redemption", vouchers)[1]
        companies = ModelCopier(
            Company,
            "id, legal_name, credit_code, registered_city_id, registered_address, created_at",
        )
        apps = ModelCopier(
            Application,
            "id, city_id, program_id, company_id, created_by_id, state, resume_state, title, "
            "summary, model_plans, requested_amount, declares_no_related_party, "
            "declares_no_other_subsidy, declares_true_information, eligibility, "
            "awarded_amount, decision_reason, notice_ends_at, submitted_at, decided_at, "
            "created_at, updated_at",
        )
        states = [s for s, _w in OTHER_STATES]
        weights = [w for _s, w in OTHER_STATES]
        span = (self.now - self.start).total_seconds()
        # The vouchers: (id, company id, face value, issued at, valid from, valid until)
        self.vouchers: list[tuple] = []
        founder = self.founder.pk
        for n in range(count):
            company_id, app_id = company_ids[n], app_ids[n]
            created = self.start + timedelta(seconds=span * 0.8 * n / count)
            companies.add(
                company_id,
                f"规模测试科技有限公司{n:06d}",
                f"9{city.pk % 1000:03d}SCALE{n:09d}"[:18],
                city.pk,
                "",
                created,
            )
            submitted = created + timedelta(hours=rng.randint(1, 72))
            requested = Decimal(rng.randrange(100, 1000)) * 1000
            if n < vouchers:
                state = ApplicationState.APPROVED
                decided: datetime | None = submitted + timedelta(days=rng.randint(10, 40))
                awarded = requested
            else:
                state = rng.choices(states, weights)[0]
                decided = (
                    submitted + timedelta(days=rng.randint(5, 30))
                    if state == ApplicationState.REJECTED
                    else None
                )
                awarded = None
            notice = (
                self.now + timedelta(days=rng.randint(1, 7))
                if state == ApplicationState.IN_NOTICE
                else None
            )
            apps.add(
                app_id,
                city.pk,
                self.program.pk,
                company_id,
                founder,
                state,
                "",
                f"大模型训练项目 {n}",
                "规模测试数据。",
                "",
                requested,
                True,
                True,
                True,
                "pass",
                awarded,
                "",
                notice,
                submitted,
                decided,
                created,
                decided or submitted,
            )
            if n < vouchers:
                self.vouchers.append((voucher_ids[n], company_id, awarded, decided, app_id))
        companies.flush()
        apps.flush()
        self._members()
        self._vouchers(entry_ids, redemption_ids)

    def _members(self) -> None:
        """The founder is a member of the first company (it holds a voucher)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO vouchers_companymember (company_id, user_id, is_owner, created_at)"
                " VALUES (%s, %s, true, now())",
                [self.vouchers[0][1], self.founder.pk],
            )

    def _vouchers(self, entry_ids: list[int], redemption_ids: list[int]) -> None:
        city = self.city
        self.balance: dict[int, Decimal] = {}
        self.chain = ChainWriter()  # seals the entries; its heads go on the vouchers
        self.redemption_of: dict[int, tuple[int, int]] = {}  # voucher → (redemption, dc)
        self.covered_by_redemption: dict[int, Decimal] = {}
        self.valid: list[tuple[datetime, int]] = []  # (issued at, voucher) in issue order
        vouchers = ModelCopier(
            Voucher,
            "id, code, city_id, program_id, company_id, face_value, balance, status, "
            "valid_from, valid_until, status_reason, application_id, issued_at, updated_at, "
            "ledger_head",
        )
        entries = ModelCopier(
            LedgerEntry,
            "id, voucher_id, kind, amount, balance_after, actor_id, actor_label, "
            "usage_record_id, memo, created_at, key_id, mac",
        )
        self._voucher_rows = vouchers
        approver = self.staff["approver"]
        total = Decimal(0)
        self.voucher_codes: dict[int, str] = {}
        for i, (voucher_id, _company, face, issued, _app) in enumerate(self.vouchers):
            code = f"{city.code}-SC-{i:07d}"
            self.voucher_codes[voucher_id] = code
            self.balance[voucher_id] = face
            total += face
            fields: tuple = (entry_ids[i], voucher_id, "issue", face, face, approver.pk)
            fields += (approver.email, None, "", issued)
            entries.add(*fields, self.chain.key_id, self.chain.seal_row(fields))
            center = self.centers[i % len(self.centers)]
            self.redemption_of[voucher_id] = (redemption_ids[i], center.pk)
            self.valid.append((issued, voucher_id))
        entries.flush()
        self.valid.sort()
        self._issued = list(self.vouchers)
        self.program.allocated = total
        Program.objects.filter(pk=self.program.pk).update(allocated=total)

    # --- usage -------------------------------------------------------------------------------

    def usage(self, count: int) -> None:
        rng = self.rng
        self.progress(f"{count:,} usage records and their ledger charges")
        record_ids = new_ids("compute_usagerecord", count)[1] if count else []
        entry_ids = new_ids("vouchers_ledgerentry", count)[1] if count else []
        records = ModelCopier(
            UsageRecord,
            "id, data_center_id, record_id, batch_id, voucher_id, redemption_id, started_at, "
            "ended_at, resource, domestic, quantity, amount, covered_amount, status, "
            "void_reason, created_at",
        )
        entries = ModelCopier(
            LedgerEntry,
            "id, voucher_id, kind, amount, balance_after, actor_id, actor_label, "
            "usage_record_id, memo, created_at, key_id, mac",
        )
        # Each record's idempotency key, as ingestion writes it (compute/ingest/keys.py).
        keys = ModelCopier(UsageRecordKey, "data_center_id, record_id, usage_record_id, ended_at")
        rates = {True: self.program.rate_domestic, False: self.program.rate_other}
        self.batches: dict[tuple[int, str], list] = {}  # (dc, month) → [id, records]
        first_issue = self.valid[0][0]
        span = (self.now - first_issue).total_seconds()
        issued_count = 0
        charge = 0
        for n in range(count):
            started = first_issue + timedelta(seconds=span * n / count + 60)
            while issued_count < len(self.valid) and self.valid[issued_count][0] <= started:
                issued_count += 1
            voucher_id = self.valid[rng.randrange(max(issued_count, 1))][1]
            redemption_id, dc = self.redemption_of[voucher_id]
            resource, domestic, price = RESOURCES[rng.randrange(len(RESOURCES))]
            hours = Decimal(rng.randint(1000, 64000)) / 1000
            ended = started + timedelta(hours=float(hours) / 8)
            amount = _money(hours * price * 8)
            covered = min(_money(amount * rates[domestic]), self.balance[voucher_id])
            batch_id = self._batch(dc, started)
            record_id = record_ids[n]
            records.add(
                record_id,
                dc,
                f"scale-{self.city.slug}-{n:08d}",
                batch_id,
                voucher_id,
                redemption_id,
                started,
                ended,
                resource,
                domestic,
                hours,
                amount,
                covered,
                "accepted",
                "",
                ended,
            )
            keys.add(dc, f"scale-{self.city.slug}-{n:08d}", record_id, ended)
            if covered > 0:
                balance = self.balance[voucher_id] - covered
                self.balance[voucher_id] = balance
                self.covered_by_redemption[redemption_id] = (
                    self.covered_by_redemption.get(redemption_id, Decimal(0)) + covered
                )
                fields: tuple = (entry_ids[charge], voucher_id, "charge", -covered, balance)
                fields += (None, f"data center #{dc}", record_id, "", ended)
                mac = self.chain.seal_row(fields)
                entries.add(*fields, self.chain.key_id, mac)
                charge += 1
        records.flush()
        keys.flush()
        entries.flush()
        self.records, self.charges = count, charge

    def _batch(self, dc: int, at: datetime) -> int:
        key = (dc, at.strftime("%Y-%m"))
        batch = self.batches.get(key)
        if batch is None:
            batch = self.batches[key] = [new_ids("compute_usagebatch", 1)[1][0], 0, at]
        batch[1] += 1
        return batch[0]

    # --- what follows from the rest --------------------------------------------------------

    def finish(self) -> None:
        """Batches, vouchers (with their balances), redemptions (with what they covered)
        and the vouchers' audit events."""
        self.progress("batches, vouchers, redemptions and audit events")
        batches = ModelCopier(
            UsageBatch,
            "id, data_center_id, source, status, idempotency_key, body_hash, received, body, "
            "results_json, accepted, duplicate, rejected, attempts, failure_reason, "
            "created_at, started_at, finished_at",
        )
        for (dc, month), (batch_id, received, at) in self.batches.items():
            batches.add(
                batch_id,
                dc,
                "push",
                "done",
                f"scale-{self.city.slug}-{dc}-{month}",
                "0" * 64,
                received,
                '{"records": []}',
                "[]",
                received,
                0,
                0,
                1,
                "",
                at,
                at,
                at,
            )
        batches.flush()
        vouchers = self._voucher_rows
        redemptions = ModelCopier(
            Redemption,
            "id, voucher_id, data_center_id, status, contract_ref, amount_cap, covered_total, "
            "reason, requested_by_id, created_at, updated_at",
        )
        for voucher_id, company_id, face, issued, app_id in self._issued:
            balance = self.balance[voucher_id]
            valid_from = issued.date()
            vouchers.add(
                voucher_id,
                self.voucher_codes[voucher_id],
                self.city.pk,
                self.program.pk,
                company_id,
                face,
                balance,
                "active" if balance > 0 else "exhausted",
                valid_from,
                year_later(valid_from),
                "",
                app_id,
                issued,
                issued,
                self.chain.heads[voucher_id],
            )
            redemption_id, dc = self.redemption_of[voucher_id]
            redemptions.add(
                redemption_id,
                voucher_id,
                dc,
                "active",
                f"SCALE-{redemption_id}",
                None,
                self.covered_by_redemption.get(redemption_id, Decimal(0)),
                "",
                self.founder.pk,
                issued,
                issued,
            )
        vouchers.flush()
        redemptions.flush()
        approver = self.staff["approver"]
        for voucher_id, _company, face, _issued, _app in self._issued:
            audit_record(
                action="voucher.issue",
                city=self.city,
                actor=approver,
                target=VoucherTarget(voucher_id),  # type: ignore[arg-type]  # pk and label only
                data={
                    "code": self.voucher_codes[voucher_id],
                    "amount": str(face),
                    "program": self.program.pk,
                },
            )
