"""Demo data of the compute app: six data centers in the national compute hubs."""

from __future__ import annotations

from compute.models import DataCenter, Hub

DATA_CENTERS = [
    ("guian", "贵安算力中心", "Gui'an Computing Center", "中国电信天翼云", Hub.GUIZHOU, "Gui'an"),
    (
        "zhongwei",
        "中卫云计算中心",
        "Zhongwei Cloud Computing Center",
        "中国移动云",
        Hub.NINGXIA,
        "Zhongwei",
    ),
    (
        "horinger",
        "和林格尔智算中心",
        "Horinger Intelligent Computing Center",
        "中国联通云",
        Hub.INNER_MONGOLIA,
        "Horinger",
    ),
    (
        "qingyang",
        "庆阳东数西算产业园算力中心",
        "Qingyang Computing Center",
        "甘肃省算力运营公司",
        Hub.GANSU,
        "Qingyang",
    ),
    (
        "shaoguan",
        "韶关数据中心集群算力中心",
        "Shaoguan Computing Center",
        "广东省算力运营公司",
        Hub.GREATER_BAY,
        "Shaoguan",
    ),
    (
        "wuhu",
        "芜湖数据中心集群算力中心",
        "Wuhu Computing Center",
        "安徽省算力运营公司",
        Hub.YANGTZE_DELTA,
        "Wuhu",
    ),
]


def seed_compute() -> dict[str, DataCenter]:
    centers: dict[str, DataCenter] = {}
    for slug, name_zh, name_en, operator, hub, cluster in DATA_CENTERS:
        center, _ = DataCenter.objects.get_or_create(
            slug=slug,
            defaults={
                "name_zh": name_zh,
                "name_en": name_en,
                "operator": operator,
                "hub": hub,
                "cluster": cluster,
                "state_run": True,
                "contact_email": f"ops@{slug}.dc.demo.suanli.cn",
            },
        )
        centers[slug] = center
    return centers
