"""Data centers: the registered compute providers whose GPU time vouchers pay for."""

from __future__ import annotations

from django.db import models
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _


class Hub(models.TextChoices):
    """National compute hubs of the "East Data, West Computing" (东数西算) plan."""

    JING_JIN_JI = "jing_jin_ji", _("Beijing-Tianjin-Hebei")
    YANGTZE_DELTA = "yangtze_delta", _("Yangtze River Delta")
    GREATER_BAY = "greater_bay", _("Guangdong-Hong Kong-Macao")
    CHENGYU = "chengyu", _("Chengdu-Chongqing")
    GUIZHOU = "guizhou", _("Guizhou")
    INNER_MONGOLIA = "inner_mongolia", _("Inner Mongolia")
    GANSU = "gansu", _("Gansu")
    NINGXIA = "ningxia", _("Ningxia")


class DataCenter(models.Model):
    slug = models.SlugField(_("slug"), max_length=40, unique=True)
    name_zh = models.CharField(_("name (Chinese)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=120)
    operator = models.CharField(_("operator"), max_length=120)
    hub = models.CharField(_("national hub"), max_length=20, choices=Hub.choices)
    cluster = models.CharField(_("cluster"), max_length=80, help_text=_("e.g. Gui'an, Zhongwei"))
    state_run = models.BooleanField(_("state-run"), default=True)
    contact_email = models.EmailField(_("contact email"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("data center")
        verbose_name_plural = _("data centers")
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.name_zh if (get_language() or "").startswith("zh") else self.name_en
