"""Users, cities (the tenants), staff roles and the tamper-evident audit trail."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Email is the login; roles come from city memberships and company membership."""

    email = models.EmailField(_("email address"), unique=True)
    display_name = models.CharField(_("display name"), max_length=120, blank=True)
    preferred_language = models.CharField(
        _("preferred language"),
        max_length=10,
        choices=settings.LANGUAGES,
        default=settings.LANGUAGE_CODE,
    )
    is_staff = models.BooleanField(
        _("platform staff"),
        default=False,
        help_text=_("May sign in to the platform admin site."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)
    # The header's unread count, kept with each notification created or read
    # (portal.notifications), so that no page pays a query for it.
    unread_notifications = models.PositiveIntegerField(default=0)
    # Kinds of notification (portal.notifications.KINDS) the user gets no e-mail for;
    # the in-portal entry is always made.
    email_off = models.JSONField(_("no e-mail for"), default=list, blank=True)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.display_name or self.email

    def get_full_name(self) -> str:
        return self.display_name or self.email

    def get_short_name(self) -> str:
        return self.display_name or self.email.split("@")[0]


# First path segments the site itself uses; a city with one of these slugs would be unreachable.
RESERVED_SLUGS = frozenset(
    {"admin", "accounts", "api", "static", "media", "i18n", "staff", "company", "my", "dc"}
    | {"healthz", "metrics"}
)


def validate_city_slug(value: str) -> None:
    if value in RESERVED_SLUGS:
        raise ValidationError(_("“%(slug)s” is reserved by the site."), params={"slug": value})


class City(models.Model):
    """A tenant: one city government running its own voucher programs."""

    slug = models.SlugField(_("slug"), max_length=40, unique=True, validators=[validate_city_slug])
    name_zh = models.CharField(_("name (Chinese)"), max_length=80)
    name_en = models.CharField(_("name (English)"), max_length=80)
    code = models.CharField(
        _("voucher prefix"),
        max_length=3,
        unique=True,
        help_text=_("Two or three capital letters that start this city's voucher codes, e.g. SH."),
    )
    timezone = models.CharField(_("time zone"), max_length=64, default="Asia/Shanghai")
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("city")
        verbose_name_plural = _("cities")
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(code__regex=r"^[A-Z]{2,3}$"), name="city_code_capitals"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        """The name in the active language."""
        return self.name_zh if (get_language() or "").startswith("zh") else self.name_en


class Role(models.TextChoices):
    REVIEWER = "reviewer", _("Reviewer")
    APPROVER = "approver", _("Approver")
    PROGRAM_MANAGER = "program_manager", _("Program manager")
    AUDITOR = "auditor", _("Auditor")


# Roles that may read every staff page of their city; only some of them may act.
STAFF_ROLES = frozenset(Role.values)


class CityMembership(models.Model):
    """One staff role a user holds in one city. A user may hold several roles in a city."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    city = models.ForeignKey(City, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("city membership")
        verbose_name_plural = _("city memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "city", "role"], name="membership_unique_role"),
        ]
        indexes = [models.Index(fields=["city", "role"])]

    def __str__(self) -> str:
        return f"{self.user} · {self.city.slug} · {self.role}"


class StaffInvitation(models.Model):
    """A program manager's invitation to a staff role, for an e-mail address with no
    account yet: accepted by signing in with that address and opening its link
    (`portal.services.staff_invitation_accept`), which grants the role."""

    city = models.ForeignKey(City, on_delete=models.CASCADE, related_name="staff_invitations")
    email = models.EmailField(_("email address"))
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    token = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(_("invited at"), default=timezone.now)
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("staff invitation")
        verbose_name_plural = _("staff invitations")
        indexes = [models.Index(fields=["city", "email"], name="staffinvite_city_email")]

    def __str__(self) -> str:
        return f"{self.email} · {self.city_id} · {self.role}"


class AuditEvent(models.Model):
    """An append-only record of something that changed.

    Events form one hash chain per city (platform-wide events, with no city, form their
    own chain). Each event stores the SHA-256 of its predecessor and its own hash over its
    content, so editing an event breaks its own hash and deleting one breaks the link of
    its successor and leaves a gap in `seq`. PostgreSQL refuses UPDATE and DELETE on the
    table (see migration 0002), so tampering needs a superuser who disables the trigger;
    the hash is an HMAC under a key outside the database (`key_id`), so that superuser
    cannot re-hash a rewritten history, and the heads anchored outside the database
    (portal/anchors.py) reveal a truncated or wholly replaced one.
    """

    city = models.ForeignKey(
        City, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    seq = models.PositiveBigIntegerField(_("sequence"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    actor_label = models.CharField(
        _("actor"),
        max_length=200,
        blank=True,
        help_text=_("Who acted, as text: a user's email, a data center, or 'system'."),
    )
    action = models.CharField(_("action"), max_length=80)
    target_type = models.CharField(_("target type"), max_length=80, blank=True)
    target_id = models.CharField(_("target id"), max_length=80, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # The id of the key the hash is an HMAC under (portal.audit.key_id); empty: an event
    # written before the chain was keyed, hashed with plain SHA-256.
    key_id = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["city_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["city", "seq"], name="audit_city_seq_unique"),
            models.UniqueConstraint(
                fields=["seq"],
                condition=models.Q(city__isnull=True),
                name="audit_platform_seq_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["city", "-created_at"]),
            models.Index(fields=["target_type", "target_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.action} #{self.seq}"


class SignIn(models.Model):
    """A sign-in to the site, kept so that its owner can see where they are signed in
    and what signed in as them (portal/signin.py). Its session is alive while the
    session store still holds `session_key`; `ended_at` is set when it is seen gone."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sign_ins"
    )
    session_key = models.CharField(max_length=40, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("browser"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("signed in at"), default=timezone.now)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        verbose_name = _("sign-in")
        verbose_name_plural = _("sign-ins")
        indexes = [models.Index(fields=["user", "-created_at"], name="signin_user_created")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.created_at:%Y-%m-%d %H:%M}"


class Notification(models.Model):
    """A message to one user in the portal, made wherever an e-mail is sent (whether or
    not the user takes e-mail for its kind): in their language, with the page to act on."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(_("kind"), max_length=40)
    subject = models.CharField(_("subject"), max_length=300)
    body = models.TextField(_("message"))
    path = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="notification_user_created")]

    def __str__(self) -> str:
        return self.subject
