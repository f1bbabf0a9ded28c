"""Demo data of the portal app: the six cities, their staff and some startup users.

Idempotent: everything is looked up by a natural key and created only when missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.contrib.auth.hashers import make_password

from portal.audit import SYSTEM
from portal.models import City, Role, User
from portal.services import membership_grant

DEMO_PASSWORD = "suanli-demo-2026"  # noqa: S105 - published demo login, printed by make demo
# The authenticator-app secret of every demo login that must sign in with a second
# factor (platform admin, city staff, data-center operators): published in the README
# so a newcomer can add it to an authenticator app or run `oathtool --totp -b <secret>`.
DEMO_TOTP_SECRET = "SUANLIDEMOTWOFACTORSECRETKEYABCD"  # noqa: S105 - published, demo only


@dataclass(frozen=True)
class DemoCity:
    slug: str
    code: str
    name_zh: str
    name_en: str


CITIES = [
    DemoCity("beijing", "BJ", "北京市", "Beijing"),
    DemoCity("shanghai", "SH", "上海市", "Shanghai"),
    DemoCity("shenzhen", "SZ", "深圳市", "Shenzhen"),
    DemoCity("hangzhou", "HZ", "杭州市", "Hangzhou"),
    DemoCity("chengdu", "CD", "成都市", "Chengdu"),
    DemoCity("guizhou", "GZ", "贵州省", "Guizhou"),
]

# Two reviewers per city so that programs needing two reviews can run.
STAFF = [
    (Role.REVIEWER, "reviewer", "评审员甲", "Reviewer A"),
    (Role.REVIEWER, "reviewer2", "评审员乙", "Reviewer B"),
    (Role.APPROVER, "approver", "审批人", "Approver"),
    (Role.PROGRAM_MANAGER, "manager", "项目主管", "Program manager"),
    (Role.AUDITOR, "auditor", "审计员", "Auditor"),
]

STARTUPS = [
    ("founder@zhipu-demo.cn", "李明", "zh-hans"),
    ("founder@moonlake-ai.cn", "王芳", "zh-hans"),
    ("ceo@deepriver-tech.cn", "张伟", "zh-hans"),
    ("cto@lingxi-robotics.cn", "刘洋", "zh-hans"),
    ("founder@qianfan-bio.cn", "陈静", "en"),
    ("founder@xingchen-vision.cn", "赵磊", "en"),
]


def staff_email(city_slug: str, key: str) -> str:
    return f"{key}@{city_slug}.demo.suanli.cn"


def _user(email: str, name: str, language: str, password_hash: str, **extra) -> User:
    user, _ = User.objects.get_or_create(
        email=email,
        defaults={
            "display_name": name,
            "preferred_language": language,
            "password": password_hash,
            **extra,
        },
    )
    EmailAddress.objects.get_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    return user


def demo_second_factor(user: User) -> None:
    """Enrol the demo's published authenticator secret (and recovery codes) for a user
    who must sign in with a second factor, unless they have one already."""
    if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
        TOTP.activate(user, DEMO_TOTP_SECRET)
    RecoveryCodes.activate(user)  # keeps existing codes


def seed_portal() -> dict[str, City]:
    password_hash = make_password(DEMO_PASSWORD)
    admin = _user(
        "admin@demo.suanli.cn",
        "平台管理员",
        "zh-hans",
        password_hash,
        is_staff=True,
        is_superuser=True,
    )
    demo_second_factor(admin)
    cities: dict[str, City] = {}
    for demo in CITIES:
        city, _ = City.objects.get_or_create(
            slug=demo.slug,
            defaults={"code": demo.code, "name_zh": demo.name_zh, "name_en": demo.name_en},
        )
        cities[demo.slug] = city
        for role, key, name_zh, _name_en in STAFF:
            user = _user(
                staff_email(demo.slug, key),
                f"{demo.name_zh}{name_zh}",
                "zh-hans" if key != "auditor" else "en",
                password_hash,
            )
            membership_grant(actor=SYSTEM, city=city, user=user, role=role)
            demo_second_factor(user)
    for email, name, language in STARTUPS:
        _user(email, name, language, password_hash)
    return cities


def describe_logins() -> list[str]:
    lines = [
        f"password for every demo login: {DEMO_PASSWORD}",
        f"second factor of staff, admin and operators: authenticator secret {DEMO_TOTP_SECRET}"
        f" (a code: oathtool --totp -b {DEMO_TOTP_SECRET})",
        "platform admin: admin@demo.suanli.cn",
    ]
    for demo in CITIES[:2]:
        lines.append(
            f"{demo.name_en} staff: "
            + ", ".join(staff_email(demo.slug, key) for _, key, _, _ in STAFF)
        )
    lines.append("(other cities alike: reviewer@<city>.demo.suanli.cn, ...)")
    lines.append("startups: " + ", ".join(email for email, _, _ in STARTUPS))
    return lines
