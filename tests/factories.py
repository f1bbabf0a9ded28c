"""factory_boy factories shared by the suite (one section per app)."""

from __future__ import annotations

import factory
from allauth.account.models import EmailAddress

from compute.models import DataCenter, Hub
from portal.models import City, CityMembership, Role, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.cn")
    display_name = factory.Faker("name", locale="zh_CN")
    password = factory.django.Password("pw-for-tests")

    @factory.post_generation
    def verified(obj, create, extracted, **kwargs):
        if create:
            EmailAddress.objects.get_or_create(
                user=obj, email=obj.email, defaults={"verified": True, "primary": True}
            )


_CITY_CODES = iter(
    f"{a}{b}" for a in "ABCDEFGHJKLMNPQRSTUVWXYZ" for b in "ABCDEFGHJKLMNPQRSTUVWXYZ"
)


class CityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = City
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"city{n}")
    code = factory.LazyFunction(lambda: next(_CITY_CODES))
    name_zh = factory.Sequence(lambda n: f"城市{n}")
    name_en = factory.Sequence(lambda n: f"City {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CityMembership

    user = factory.SubFactory(UserFactory)
    city = factory.SubFactory(CityFactory)
    role = Role.REVIEWER


class DataCenterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataCenter
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"dc{n}")
    name_zh = factory.Sequence(lambda n: f"算力中心{n}")
    name_en = factory.Sequence(lambda n: f"Computing Center {n}")
    operator_zh = "中国电信"
    operator_en = "China Telecom"
    hub = Hub.GUIZHOU
    cluster_zh = "贵安"
    cluster_en = "Gui'an"
