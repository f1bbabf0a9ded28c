"""Issue an API key for a data center and print it once (it is stored hashed)."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from compute.models import DataCenter
from compute.services import api_key_issue
from portal.audit import SYSTEM
from portal.errors import DomainError


class Command(BaseCommand):
    help = "Issue an API key for a data center; the key is printed once and never again."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the data center's slug, e.g. guian")
        parser.add_argument("--name", default="", help="a label to tell keys apart")
        parser.add_argument(
            "--expires",
            type=date.fromisoformat,
            default=None,
            metavar="YYYY-MM-DD",
            help="the last day the key works (Asia/Shanghai); none: it does not expire",
        )

    def handle(self, *args, slug: str, name: str, expires: date | None = None, **options):
        data_center = DataCenter.objects.filter(slug=slug).first()
        if data_center is None:
            known = ", ".join(DataCenter.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"No data center '{slug}'. Known: {known}.")
        try:
            key, raw = api_key_issue(
                data_center=data_center, actor=SYSTEM, name=name, expires_on=expires
            )
        except DomainError as error:
            raise CommandError(error.message) from None
        self.stderr.write(f"Key {key.prefix}… for {data_center.slug}; store it now:")
        self.stdout.write(raw)
