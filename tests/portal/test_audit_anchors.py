"""The keyed audit chain and its anchors (issue #15 item 5): someone who can write the
database — a superuser who switches the append-only trigger off — but does not hold
AUDIT_CHAIN_KEY cannot rewrite the trail unnoticed: not by re-hashing it, not by
deleting its newest events, not by truncating it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from portal.anchors import ANCHOR_FILE, anchors_verify, anchors_write
from portal.audit import KEY_ROTATED, audit_chain_verify, audit_record, key_id
from portal.models import AuditEvent
from tests.factories import UserFactory


def _tamper(*statements: tuple[str, list]) -> None:
    """A superuser with the triggers off (session_replication_role), without the key."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = origin")


def _plain_hash(row: dict) -> str:
    """What the unkeyed chain computed (SHA-256 over the same fields): all an attacker
    without the key can compute."""
    payload = {
        "city": row["city_id"],
        "seq": row["seq"],
        "actor": row["actor_id"],
        "actor_label": row["actor_label"],
        "action": row["action"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "data": row["data"],
        "ip": row["ip"],
        "created_at": row["created_at"].astimezone(UTC).isoformat(timespec="microseconds"),
        "prev_hash": row["prev_hash"],
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _rehash_from(city, seq: int, *, data: dict) -> None:
    """Edit event `seq` and re-hash it and every later event the unkeyed way, linking
    each to its new predecessor: a history that verified before the key."""
    rows = list(AuditEvent.objects.filter(city=city).order_by("seq").values())
    prev = next(r["hash"] for r in rows if r["seq"] == seq - 1) if seq > 1 else "0" * 64
    statements = []
    for row in rows:
        if row["seq"] < seq:
            continue
        if row["seq"] == seq:
            row["data"] = data
        row["prev_hash"], row["key_id"] = prev, ""
        prev = _plain_hash(row)
        statements.append(
            (
                "UPDATE portal_auditevent SET data = %s, prev_hash = %s, hash = %s, key_id = ''"
                " WHERE id = %s",
                [json.dumps(row["data"]), row["prev_hash"], prev, row["id"]],
            )
        )
    _tamper(*statements)


@pytest.fixture
def chain(shanghai):
    return [
        audit_record(action=f"test.step{i}", city=shanghai.city, data={"i": i}) for i in range(5)
    ]


def test_events_are_keyed_with_the_configured_key(chain, settings):
    assert {event.key_id for event in chain} == {key_id(settings.AUDIT_CHAIN_KEY)}
    row = AuditEvent.objects.filter(pk=chain[2].pk).values().get()
    assert chain[2].hash != _plain_hash(row)
    # The same history under another key (and without the first as a fallback) is not
    # accepted: the hash depends on the key.
    settings.AUDIT_CHAIN_KEY = "another-key-entirely-0123456789"
    problems = audit_chain_verify()
    assert len(problems) == 1 and "not configured" in problems[0].reason


def test_a_history_rehashed_without_the_key_is_detected(chain, shanghai):
    _rehash_from(shanghai.city, chain[2].seq, data={"i": 42})
    problems = audit_chain_verify()
    assert [(p.event_id, "re-hashed" in p.reason) for p in problems] == [(chain[2].pk, True)]


def test_a_history_rehashed_under_a_guessed_key_is_detected(chain, shanghai):
    """Same key id, another key: the MAC does not match."""
    import hmac

    row = AuditEvent.objects.filter(pk=chain[4].pk).values().get()
    forged = _plain_hash({**row, "data": {"i": 99}})  # any value without the key
    forged = hmac.new(b"guess", forged.encode(), hashlib.sha256).hexdigest()
    _tamper(
        (
            "UPDATE portal_auditevent SET data = %s, hash = %s WHERE id = %s",
            ['{"i": 99}', forged, chain[4].pk],
        )
    )
    problems = audit_chain_verify()
    assert [p.event_id for p in problems] == [chain[4].pk]
    assert "altered" in problems[0].reason


def test_a_key_rotation_is_recorded_in_each_chain(chain, shanghai, settings):
    old = settings.AUDIT_CHAIN_KEY
    settings.AUDIT_CHAIN_KEY = "the-new-key-rotated-in-0123456789"
    settings.AUDIT_CHAIN_KEY_FALLBACKS = [old]
    event = audit_record(action="test.after", city=shanghai.city)
    rotation = AuditEvent.objects.get(city=shanghai.city, seq=event.seq - 1)
    assert rotation.action == KEY_ROTATED
    assert rotation.data == {
        "key_id": key_id(settings.AUDIT_CHAIN_KEY),
        "previous_key_id": key_id(old),
    }
    assert rotation.prev_hash == chain[-1].hash
    assert event.key_id == rotation.key_id == key_id(settings.AUDIT_CHAIN_KEY)
    assert audit_chain_verify() == []
    # Without the former key the events it keyed cannot be verified, and say so.
    settings.AUDIT_CHAIN_KEY_FALLBACKS = []
    problems = audit_chain_verify()
    assert problems[0].event_id == chain[0].pk and key_id(old) in problems[0].reason


def test_a_key_change_without_a_rotation_event_is_detected(chain, settings):
    settings.AUDIT_CHAIN_KEY_FALLBACKS = ["a-second-configured-key-012345"]
    _tamper(
        (
            "UPDATE portal_auditevent SET key_id = %s WHERE id = %s",
            [key_id("a-second-configured-key-012345"), chain[3].pk],
        )
    )
    problems = audit_chain_verify()
    assert [p.event_id for p in problems] == [chain[3].pk]
    assert "without a rotation event" in problems[0].reason


def test_events_from_before_the_key_still_verify_and_keying_is_recorded(shanghai, settings):
    """A chain written before the key (plain SHA-256) carries on keyed after a rotation
    event; its old events still verify."""
    first = audit_record(action="test.legacy", city=shanghai.city)
    row = AuditEvent.objects.filter(pk=first.pk).values().get()
    _tamper(
        (
            "UPDATE portal_auditevent SET key_id = '', hash = %s WHERE id = %s",
            [_plain_hash(row), first.pk],
        )
    )
    later = audit_record(action="test.keyed", city=shanghai.city)
    assert later.seq == 3
    rotation = AuditEvent.objects.get(city=shanghai.city, seq=2)
    assert rotation.action == KEY_ROTATED and rotation.data["previous_key_id"] == ""
    assert audit_chain_verify() == []


def test_anchors_are_appended_signed_and_verify(chain, shanghai, tmp_path):
    platform = audit_record(action="test.platform")
    first = anchors_write(tmp_path)
    assert [(r["chain"], r["seq"], r["hash"]) for r in first] == [
        ("platform", platform.seq, platform.hash),
        (shanghai.city.slug, chain[-1].seq, chain[-1].hash),
    ]
    audit_record(action="test.more", city=shanghai.city)
    anchors_write(tmp_path)
    lines = (tmp_path / ANCHOR_FILE).read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["signature"]
    assert anchors_verify(tmp_path) == []


def test_a_truncated_table_is_detected_against_the_anchors(chain, tmp_path):
    anchors_write(tmp_path)
    # (The test's own transaction has deferred foreign-key checks pending: run them first.)
    _tamper(("SET CONSTRAINTS ALL IMMEDIATE", []), ("TRUNCATE portal_auditevent", []))
    assert audit_chain_verify() == []  # nothing left to break
    problems = anchors_verify(tmp_path)
    assert len(problems) == 1 and "truncated" in problems[0].reason


def test_deleted_newest_events_are_detected_against_the_anchors(chain, tmp_path):
    anchors_write(tmp_path)
    _tamper(("DELETE FROM portal_auditevent WHERE id = ANY(%s)", [[chain[3].pk, chain[4].pk]]))
    assert audit_chain_verify() == []  # the rest is a valid, shorter chain
    problems = anchors_verify(tmp_path)
    assert len(problems) == 1
    assert f"chain's event {chain[4].seq} " in problems[0].reason
    assert "newest events deleted" in problems[0].reason


def test_a_history_replaced_whole_is_detected_against_the_anchors(chain, shanghai, tmp_path):
    """Re-hashed from the first event the unkeyed way: every link holds, the anchor not."""
    anchors_write(tmp_path)
    _rehash_from(shanghai.city, 1, data={"i": -1})
    assert audit_chain_verify() == []  # a consistent, unkeyed history
    problems = anchors_verify(tmp_path)
    assert len(problems) == 1 and "replaced" in problems[0].reason


def test_an_edited_anchor_is_refused(chain, tmp_path):
    anchors_write(tmp_path)
    path = tmp_path / ANCHOR_FILE
    record = json.loads(path.read_text())
    record["seq"] = 2
    path.write_text(json.dumps(record) + "\n")
    problems = anchors_verify(tmp_path)
    assert len(problems) == 1 and "edited" in problems[0].reason


def test_verify_audit_with_anchors_names_each_problem(chain, tmp_path, capsys):
    anchors_write(tmp_path)
    call_command("verify_audit", "--anchors", str(tmp_path))
    assert "anchors intact" in capsys.readouterr().out
    _tamper(
        ("UPDATE portal_auditevent SET action = 'forged' WHERE id = %s", [chain[1].pk]),
        ("DELETE FROM portal_auditevent WHERE id = %s", [chain[4].pk]),
    )
    with pytest.raises(CommandError, match="2 audit problem"):
        call_command("verify_audit", "--anchors", str(tmp_path))
    err = capsys.readouterr().err
    assert f"event id {chain[1].pk}" in err and "truncated" in err


def test_the_daily_task_anchors_and_mails_the_auditors(
    chain, shanghai, shenzhen, tmp_path, settings
):
    settings.AUDIT_ANCHOR_DIR = tmp_path
    admin = UserFactory(is_superuser=True, email="root@example.cn")
    audit_record(action="test.platform")
    audit_record(action="test.sz", city=shenzhen.city)
    from portal.tasks import audit_anchor_task

    assert audit_anchor_task.apply().get() == 3
    assert len((tmp_path / ANCHOR_FILE).read_text().splitlines()) == 3
    by_recipients = {tuple(m.to): m.body for m in mail.outbox}
    assert set(by_recipients) == {
        (admin.email,),
        (shanghai.auditor.email,),
        (shenzhen.auditor.email,),
    }
    assert chain[-1].hash in by_recipients[(shanghai.auditor.email,)]
    # In the site's language (Chinese), naming the city, with the signed record.
    shanghai_mail = next(m for m in mail.outbox if m.to == [shanghai.auditor.email])
    assert shanghai.city.name_zh in shanghai_mail.subject
    assert shanghai.city.name_zh in shanghai_mail.body
    assert '"signature":' in shanghai_mail.body
    assert chain[-1].hash not in by_recipients[(shenzhen.auditor.email,)]
    assert settings.CELERY_BEAT_SCHEDULE["anchor-audit-chains"]["task"] == (
        "portal.tasks.audit_anchor_task"
    )
