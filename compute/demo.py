"""Demo data of the compute app: six data centers in the national compute hubs."""

from __future__ import annotations

from compute.models import DataCenter, Hub

# slug, name, operator and cluster in Chinese and English, hub.
DATA_CENTERS = [
    (
        "guian",
        ("贵安算力中心", "Gui'an Computing Center"),
        ("中国电信天翼云", "China Telecom Cloud"),
        ("贵安", "Gui'an"),
        Hub.GUIZHOU,
    ),
    (
        "zhongwei",
        ("中卫云计算中心", "Zhongwei Cloud Computing Center"),
        ("中国移动云", "China Mobile Cloud"),
        ("中卫", "Zhongwei"),
        Hub.NINGXIA,
    ),
    (
        "horinger",
        ("和林格尔智算中心", "Horinger Intelligent Computing Center"),
        ("中国联通云", "China Unicom Cloud"),
        ("和林格尔", "Horinger"),
        Hub.INNER_MONGOLIA,
    ),
    (
        "qingyang",
        ("庆阳东数西算产业园算力中心", "Qingyang Computing Center"),
        ("甘肃省算力运营公司", "Gansu Computing Operations Co."),
        ("庆阳", "Qingyang"),
        Hub.GANSU,
    ),
    (
        "shaoguan",
        ("韶关数据中心集群算力中心", "Shaoguan Computing Center"),
        ("广东省算力运营公司", "Guangdong Computing Operations Co."),
        ("韶关", "Shaoguan"),
        Hub.GREATER_BAY,
    ),
    (
        "wuhu",
        ("芜湖数据中心集群算力中心", "Wuhu Computing Center"),
        ("安徽省算力运营公司", "Anhui Computing Operations Co."),
        ("芜湖", "Wuhu"),
        Hub.YANGTZE_DELTA,
    ),
]


def seed_compute() -> dict[str, DataCenter]:
    """The demo's data centers; their names in both languages are (re)written on every
    seed, so a database made before the names were translated reads right too."""
    centers: dict[str, DataCenter] = {}
    for slug, name, operator, cluster, hub in DATA_CENTERS:
        names = {
            "name_zh": name[0],
            "name_en": name[1],
            "operator_zh": operator[0],
            "operator_en": operator[1],
            "cluster_zh": cluster[0],
            "cluster_en": cluster[1],
        }
        center, created = DataCenter.objects.get_or_create(
            slug=slug,
            defaults={
                **names,
                "hub": hub,
                "state_run": True,
                "contact_email": f"ops@{slug}.dc.demo.suanli.cn",
            },
        )
        if not created:
            DataCenter.objects.filter(pk=center.pk).update(**names)
        centers[slug] = center
    return centers


# Which data centers serve which demo city (first one: where demo vouchers are redeemed).
SERVES = {
    "beijing": ["horinger", "zhongwei", "guian"],
    "shanghai": ["wuhu", "qingyang", "guian"],
    "shenzhen": ["shaoguan", "guian", "zhongwei"],
    "hangzhou": ["wuhu", "guian"],
    "chengdu": ["guian", "qingyang"],
    "guizhou": ["guian", "zhongwei"],
}


FEED_BASE_PORT = 8100


def operator_email(slug: str) -> str:
    return f"ops@{slug}.dc.demo.suanli.cn"


def seed_compute_links() -> int:
    """Registrations, program links, operator users and redemptions for the demo.

    Runs after the vouchers app's seeding: every program of a city accepts the city's
    data centers, and each active voucher gets an active redemption at the first one,
    so `simulate_push` has something to bill. Returns the number of new redemptions.
    """
    from datetime import date

    from django.contrib.auth.hashers import make_password

    from compute.models import Redemption, RedemptionStatus, Registration
    from portal.demo import DEMO_PASSWORD, _user, demo_second_factor
    from portal.models import City
    from vouchers.models import Program, Voucher, VoucherStatus

    centers = {dc.slug: dc for dc in DataCenter.objects.all()}
    password_hash = make_password(DEMO_PASSWORD)
    # Each demo data center offers its feed from `run_datacenter_sim --demo` on this
    # machine; the portal's sync pulls from there.
    for i, slug in enumerate(sorted(centers)):
        DataCenter.objects.filter(pk=centers[slug].pk, feed_url="").update(
            feed_url=f"http://127.0.0.1:{FEED_BASE_PORT + i}/feed",
            feed_token=f"demo-feed-{slug}",
        )
    for slug, center in centers.items():
        ops = _user(operator_email(slug), f"{center.name_zh}运维", "zh-hans", password_hash)
        center.operators.add(ops)
        demo_second_factor(ops)
    created = 0
    for city in City.objects.filter(slug__in=SERVES):
        served = [centers[s] for s in SERVES[city.slug] if s in centers]
        for center in served:
            Registration.objects.get_or_create(
                city=city, data_center=center, defaults={"starts_on": date(2026, 1, 1)}
            )
            center.programs.add(*Program.objects.filter(city=city))
        if not served:
            continue
        for voucher in Voucher.objects.filter(city=city, status=VoucherStatus.ACTIVE):
            _, new = Redemption.objects.get_or_create(
                voucher=voucher,
                data_center=served[0],
                defaults={
                    "status": RedemptionStatus.ACTIVE,
                    "contract_ref": f"{served[0].slug.upper()}-{voucher.code[-4:]}",
                },
            )
            created += new
    return created
