from decimal import Decimal

from django.core.management import call_command

from vouchers.models import Application, OutcomeReport, Program, Voucher


def test_demo_programs_follow_the_published_terms_and_cover_every_state(db):
    call_command("seed_demo")
    terms = {p.city.slug: p for p in Program.objects.select_related("city")}
    assert (terms["shenzhen"].reviews_required, terms["shenzhen"].notice_days) == (2, 5)
    assert terms["beijing"].reviews_required == 0
    assert (terms["hangzhou"].rate_domestic, terms["hangzhou"].rate_other) == (
        Decimal("0.30"),
        Decimal("0.20"),
    )
    assert terms["beijing"].company_yearly_cap == Decimal("2000000.00")
    count = Application.objects.count()
    assert 36 <= count <= 48
    states = set(Application.objects.values_list("state", flat=True))
    assert states >= {
        "draft",
        "submitted",
        "screening",
        "in_review",
        "info_requested",
        "recommended",
        "in_notice",
        "not_recommended",
        "approved",
        "rejected",
        "withdrawn",
    } - {"screening"}
    approved = Application.objects.filter(state="approved")
    assert approved.count() == Voucher.objects.count() >= 8
    for program in Program.objects.all():
        issued = sum(v.face_value for v in Voucher.objects.filter(program=program))
        assert program.allocated == issued <= program.budget
    accepted = OutcomeReport.objects.get(state="accepted")
    assert accepted.documents.count() == 1 and accepted.models_trained == 3
    assert accepted.timeline.count() == 2  # submitted, accepted
    assert accepted.letter.kind == "outcome_accepted"  # 验收通知书
    call_command("seed_demo")
    assert Application.objects.count() == count
    assert OutcomeReport.objects.filter(state="accepted").count() == 1
