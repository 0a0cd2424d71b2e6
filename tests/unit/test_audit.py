"""The audit log: a hash chain that detects edits, deletions and moves; safe concurrent appends;
queries by user, app, record, action and period (Asia/Tokyo); CSV/JSONL export; `kumiki audit`."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
from datetime import datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from kumiki import audit
from kumiki.cli import main
from kumiki.db import write_intent
from kumiki.errors import ValidationError
from kumiki.model.audit import GENESIS_HASH, AuditLog



@pytest.fixture
def config(make_config, backend):
    return make_config(backend)


@pytest.fixture
def kumiki(config):
    from kumiki.app import create_app
    application = create_app(config)
    ext = application.extensions["kumiki"]
    yield ext
    ext.engine.dispose()


class Who:
    def __init__(self, id, code):
        self.id, self.code = id, code


def fill(ext, n=6):
    """n entries of varied shape, half through log(), half through record()."""
    for i in range(1, n + 1):
        kw = dict(user=Who(i % 3 + 1, f"user{i % 3 + 1}"), app_id=i % 2 + 1, record_id=i,
                  detail={"query": f"氏名 like \"{i}\"", "count": i, "ratio": i / 4, "fields": ["氏名", "住所"]},
                  ip="192.0.2.1", user_agent="pytest/1")
        if i % 2:
            audit.log(ext.engine, "record.view", **kw)
        else:
            with ext.Session() as s:
                with write_intent():
                    audit.record(s, "record.update", **kw)
                    s.commit()


def verify(ext) -> audit.VerifyResult:
    with ext.Session() as s:
        return audit.verify(s)


def tamper(ext, sql, **params):
    """What someone with database access could do: drop the append-only triggers, then edit."""
    with ext.engine.begin() as c:
        if c.dialect.name == "postgresql":
            c.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log")
        else:
            c.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
            c.exec_driver_sql("DROP TRIGGER IF EXISTS audit_log_no_delete")
        c.execute(text(sql), params)


def rows(ext):
    with ext.engine.connect() as c:
        return [dict(r) for r in c.execute(text("SELECT * FROM audit_log ORDER BY id")).mappings()]


# ---- the chain -----------------------------------------------------------------------------

def test_chain_of_entries_verifies_and_hash_is_the_documented_one(kumiki):
    assert verify(kumiki).ok and verify(kumiki).count == 0
    fill(kumiki)
    result = verify(kumiki)
    assert result.ok and result.count == 6 and result.first_bad_id is None
    assert result.message().startswith("OK") and "6 件" in result.message()
    entries = rows(kumiki)
    assert [e["id"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0]["prev_hash"] == GENESIS_HASH
    assert result.last_hash == entries[-1]["hash"]
    for prev, e in zip([None] + entries, entries):
        if prev is not None:
            assert e["prev_hash"] == prev["hash"]
        at = e["at"] if isinstance(e["at"], datetime) else datetime.fromisoformat(e["at"])
        detail = e["detail"] if isinstance(e["detail"], dict) else json.loads(e["detail"])
        payload = [e["id"], at.isoformat(timespec="microseconds"), e["user_id"], e["user_code"], e["action"],
                   e["app_id"], e["record_id"], detail, e["ip"], e["user_agent"], e["prev_hash"]]
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        assert e["hash"] == hashlib.sha256(canonical.encode()).hexdigest()


def test_database_refuses_update_and_delete(kumiki):
    fill(kumiki, 2)
    for sql in ("UPDATE audit_log SET action = 'x' WHERE id = 1", "DELETE FROM audit_log WHERE id = 2"):
        with pytest.raises(DBAPIError):
            with kumiki.engine.begin() as c:
                c.execute(text(sql))
    assert verify(kumiki).ok and verify(kumiki).count == 2


EDITS = {
    "at": "at = :v", "user_id": "user_id = 99", "user_code": "user_code = 'someone'",
    "action": "action = 'record.list'", "app_id": "app_id = 42", "record_id": "record_id = NULL",
    "detail": "detail = NULL", "ip": "ip = '203.0.113.9'", "user_agent": "user_agent = 'curl'",
    "prev_hash": "prev_hash = :h", "hash": "hash = :h",
}


@pytest.mark.parametrize("column", sorted(EDITS))
@pytest.mark.parametrize("victim", [1, 4, 6])
def test_editing_any_column_of_any_row_is_named(kumiki, column, victim):
    fill(kumiki)
    tamper(kumiki, f"UPDATE audit_log SET {EDITS[column]} WHERE id = {victim}",
           v=datetime(2020, 1, 1), h="f" * 64)
    result = verify(kumiki)
    assert not result.ok
    assert result.first_bad_id == victim and result.key == "audit.edited"
    assert f"ID {victim} " in result.reason and "書き換え" in result.reason
    assert result.count == victim - 1


def test_edit_with_recomputed_hash_is_named_by_its_successor(kumiki):
    fill(kumiki)
    e = rows(kumiki)[2]    # id 3
    e["user_code"] = "covered-up"
    e["at"] = e["at"] if isinstance(e["at"], datetime) else datetime.fromisoformat(e["at"])
    e["detail"] = e["detail"] if isinstance(e["detail"], dict) else json.loads(e["detail"])
    tamper(kumiki, "UPDATE audit_log SET user_code = 'covered-up', hash = :h WHERE id = 3", h=audit.entry_hash(e))
    result = verify(kumiki)
    assert (result.ok, result.first_bad_id, result.key) == (False, 3, "audit.rehashed")
    assert "ID 3 " in result.reason


def test_editing_the_newest_entry_with_recomputed_hash_is_caught_by_the_head(kumiki):
    fill(kumiki, 3)
    e = rows(kumiki)[-1]
    e["ip"] = "203.0.113.1"
    e["at"] = e["at"] if isinstance(e["at"], datetime) else datetime.fromisoformat(e["at"])
    e["detail"] = e["detail"] if isinstance(e["detail"], dict) else json.loads(e["detail"])
    tamper(kumiki, "UPDATE audit_log SET ip = '203.0.113.1', hash = :h WHERE id = 3", h=audit.entry_hash(e))
    result = verify(kumiki)
    assert (result.ok, result.first_bad_id, result.key) == (False, 3, "audit.head_mismatch")


@pytest.mark.parametrize("victim", [1, 3])
def test_deleting_a_row_is_detected(kumiki, victim):
    fill(kumiki)
    tamper(kumiki, f"DELETE FROM audit_log WHERE id = {victim}")
    result = verify(kumiki)
    assert (result.ok, result.first_bad_id, result.key) == (False, victim, "audit.deleted")
    assert f"ID {victim} " in result.reason and "削除" in result.reason


def test_deleting_several_rows_names_the_range(kumiki):
    fill(kumiki)
    tamper(kumiki, "DELETE FROM audit_log WHERE id IN (2, 3, 4)")
    result = verify(kumiki)
    assert result.first_bad_id == 2 and "2〜4" in result.reason


def test_deleting_the_newest_rows_is_detected_against_the_head(kumiki):
    fill(kumiki)
    tamper(kumiki, "DELETE FROM audit_log WHERE id >= 5")
    result = verify(kumiki)
    assert (result.ok, result.first_bad_id, result.key) == (False, 5, "audit.deleted_tail")
    assert result.count == 4 and "5〜6" in result.reason


def test_deleting_everything_is_detected(kumiki):
    fill(kumiki, 2)
    tamper(kumiki, "DELETE FROM audit_log")
    assert verify(kumiki).first_bad_id == 1


def test_swapping_two_entries_is_reported_as_reordered(kumiki):
    fill(kumiki)
    tamper(kumiki, "UPDATE audit_log SET id = -3 WHERE id = 3")
    tamper(kumiki, "UPDATE audit_log SET id = 3 WHERE id = 4")
    tamper(kumiki, "UPDATE audit_log SET id = 4 WHERE id = -3")
    result = verify(kumiki)
    assert (result.ok, result.first_bad_id, result.key) == (False, 3, "audit.reordered")
    assert "本来は ID 4" in result.reason


def test_renumbering_after_a_deletion_is_reported_as_moved(kumiki):
    fill(kumiki, 4)
    tamper(kumiki, "DELETE FROM audit_log WHERE id = 2")
    tamper(kumiki, "UPDATE audit_log SET id = id - 1 WHERE id > 2")
    result = verify(kumiki)
    assert (result.first_bad_id, result.key, result.params["orig"]) == (2, "audit.reordered", 3)


def test_rows_added_behind_kumikis_back_are_detected(kumiki):
    fill(kumiki, 2)
    e = rows(kumiki)[-1]
    tamper(kumiki, "INSERT INTO audit_log (id, at, action, prev_hash, hash) VALUES (3, :at, 'login', :p, :h)",
           at=datetime(2030, 1, 1), p=e["hash"], h="0" * 64)
    result = verify(kumiki)
    assert (result.ok, result.first_bad_id, result.key) == (False, 3, "audit.unchained")


def test_deleted_head_is_detected_and_blocks_appends(kumiki):
    fill(kumiki, 2)
    with kumiki.engine.begin() as c:
        c.execute(text("DELETE FROM audit_head"))
    assert verify(kumiki).key == "audit.head_missing"
    with pytest.raises(audit.AuditUnavailable):
        audit.log(kumiki.engine, "login")


def test_record_commits_and_rolls_back_with_the_callers_transaction(kumiki):
    with kumiki.Session() as s, write_intent():
        audit.record(s, "record.create", app_id=1, record_id=1)
        s.rollback()
    assert rows(kumiki) == []
    with kumiki.Session() as s, write_intent():
        audit.record(s, "record.create", app_id=1, record_id=2)
        audit.record(s, "record.update", app_id=1, record_id=2)   # twice in one transaction
        audit.record_many(s, "record.delete", app_id=1, record_ids=[2, 3, 4])
        s.commit()
    assert [(e["id"], e["action"], e["record_id"]) for e in rows(kumiki)] == [
        (1, "record.create", 2), (2, "record.update", 2), (3, "record.delete", 2), (4, "record.delete", 3),
        (5, "record.delete", 4)]
    assert verify(kumiki).ok


def test_awkward_values_are_stored_so_that_the_chain_still_verifies(kumiki):
    audit.log(kumiki.engine, "login_failed", user="no-such\x00user", ip="::1", user_agent="x" * 2000,
              detail={"floats": [1e20, 1.0, 0.1, 1.5e-10, float("nan"), float("inf")], 3: "数字のキー",
                      "nul": "a\x00b", "surrogate": "\ud800", "when": datetime(2025, 4, 1), "set": {1}})
    result = verify(kumiki)
    assert result.ok, result.reason
    e = rows(kumiki)[0]
    assert len(e["user_agent"]) == audit.USER_AGENT_MAX and e["user_code"] == "no-such\ufffduser"
    assert e["user_id"] is None


# ---- concurrency ---------------------------------------------------------------------------

def test_concurrent_appends_from_two_threads_keep_one_chain(kumiki):
    per_thread, errors = 25, []

    def worker(n):
        try:
            for i in range(per_thread):
                if i % 2:
                    audit.log(kumiki.engine, "record.view", user=Who(n, f"t{n}"), record_id=i)
                else:
                    with kumiki.Session() as s, write_intent():
                        audit.record(s, "record.update", user=Who(n, f"t{n}"), record_id=i)
                        s.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    result = verify(kumiki)
    assert result.ok, result.reason
    assert result.count == 2 * per_thread
    assert [e["id"] for e in rows(kumiki)] == list(range(1, 2 * per_thread + 1))


# ---- queries -------------------------------------------------------------------------------

def _at(monkeypatch, when: datetime):
    monkeypatch.setattr(audit, "utcnow", lambda: when)


@pytest.fixture
def dated(kumiki, monkeypatch):
    """Entries at known UTC times (JST = UTC+9)."""
    plan = [
        (datetime(2025, 3, 31, 14, 30), "login", "tanaka", None, None),         # 3/31 23:30 JST
        (datetime(2025, 3, 31, 15, 30), "record.view", "tanaka", 1, 10),       # 4/1 00:30 JST
        (datetime(2025, 4, 1, 2, 0), "record.update", "suzuki", 1, 10),        # 4/1 11:00 JST
        (datetime(2025, 4, 1, 14, 59, 59), "record.view", "suzuki", 2, 10),    # 4/1 23:59:59 JST
        (datetime(2025, 4, 1, 15, 0), "export", "sato", 2, None),              # 4/2 00:00 JST
    ]
    for when, action, code, app_id, record_id in plan:
        _at(monkeypatch, when)
        audit.log(kumiki.engine, action, user=code, app_id=app_id, record_id=record_id)
    monkeypatch.undo()
    return kumiki


def q(ext, **kw):
    with ext.Session() as s:
        entries, total = audit.query(s, **kw)
        return [e.id for e in entries], total


def test_query_filters_newest_first(dated):
    assert q(dated) == ([5, 4, 3, 2, 1], 5)
    assert q(dated, user="tanaka") == ([2, 1], 2)
    assert q(dated, app_id=1) == ([3, 2], 2)
    assert q(dated, app_id=1, record_id=10) == ([3, 2], 2)
    assert q(dated, record_id=10) == ([4, 3, 2], 3)
    assert q(dated, action="record.view") == ([4, 2], 2)
    assert q(dated, action="record.*") == ([4, 3, 2], 3)
    assert q(dated, action="record_*") == ([], 0)      # _ is not a wildcard
    assert q(dated, limit=2, offset=1) == ([4, 3], 5)


def test_query_period_is_in_asia_tokyo(dated):
    assert q(dated, since="2025-04-01", until="2025-04-01") == ([4, 3, 2], 3)
    assert q(dated, since="2025-04-02") == ([5], 1)
    assert q(dated, until="2025-03-31") == ([1], 1)
    assert q(dated, since="令和7年4月1日", until="2025/4/1") == ([4, 3, 2], 3)
    assert q(dated, since="2025-04-01T11:00", until="2025-04-01T23:59:59") == ([4, 3], 2)
    assert q(dated, since="2025-03-31T15:30:00+00:00", until="2025-03-31T15:30:00Z") == ([2], 1)
    assert q(dated, since="2025-04-01", tz="UTC") == ([5, 4, 3], 3)
    for bad in ("yesterday", "2025-13-01", "2025-02-30"):
        with pytest.raises(ValidationError):
            q(dated, since=bad)


# ---- export --------------------------------------------------------------------------------

def _export(ext, fmt, **kw) -> bytes:
    with ext.Session() as s:
        return b"".join(audit.export(s, fmt, **kw))


def test_export_csv_utf8_with_bom_and_cp932_replacing_what_it_lacks(kumiki):
    audit.log(kumiki.engine, "record.list", user="takahashi", app_id=1,
              detail={"query": "氏名 = \"髙橋 𠮷子\""}, user_agent="=HYPERLINK(\"http://x\")")
    data = _export(kumiki, "csv")
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(table) == 1 and table[0]["action"] == "record.list"
    assert json.loads(table[0]["detail"]) == {"query": "氏名 = \"髙橋 𠮷子\""}
    assert table[0]["at"].endswith("+09:00")
    assert table[0]["user_agent"].startswith("'=")        # not a formula in a spreadsheet

    data = _export(kumiki, "csv", encoding="cp932")
    assert not data.startswith(b"\xef\xbb\xbf")
    decoded = data.decode("cp932")
    assert "髙橋 ?子" in decoded.replace('""', '"')
    assert list(csv.DictReader(io.StringIO(decoded)))[0]["user_code"] == "takahashi"


def test_export_jsonl_is_faithful_and_filtered(dated):
    lines = _export(dated, "jsonl", user="suzuki").decode("utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["id"] for e in entries] == [3, 4]                 # oldest first
    assert entries[0]["at"] == "2025-04-01T11:00:00+09:00"
    assert set(entries[0]) == set(audit.EXPORT_COLUMNS)
    assert _export(dated, "jsonl", action="nothing") == b""


def test_export_large_log_in_batches(kumiki):
    with kumiki.Session() as s, write_intent():
        audit.record_many(s, "record.create", app_id=1, record_ids=range(1, 2501))
        s.commit()
    with kumiki.Session() as s:
        chunks = list(audit.export(s, "jsonl", batch=1000))
    assert len(chunks) == 3 and sum(c.count(b"\n") for c in chunks) == 2500


def test_export_rejects_unknown_format_and_encoding(kumiki):
    with kumiki.Session() as s:
        with pytest.raises(ValidationError):
            audit.export(s, "xlsx")
        with pytest.raises(ValidationError):
            audit.export(s, "csv", encoding="latin-1")
        assert audit.check_export_options("CSV", "Shift_JIS") == ("csv", "cp932")


# ---- kumiki audit …  ------------------------------------------------------------------------

@pytest.fixture
def cli(config, kumiki):
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, list(args), obj=config, catch_exceptions=False)
    return invoke


def test_cli_verify_exit_codes(cli, kumiki):
    fill(kumiki, 3)
    ok = cli("audit", "verify")
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("OK") and "3 件" in ok.stdout
    assert "3 entries" in cli("--lang", "en", "audit", "verify").stdout

    tamper(kumiki, "UPDATE audit_log SET detail = NULL WHERE id = 2")
    broken = cli("audit", "verify")
    assert broken.exit_code == 1
    assert "ID 2 のエントリが書き換えられています" in broken.stderr
    assert "Traceback" not in broken.output

    tamper(kumiki, "DELETE FROM audit_log WHERE id = 3")
    broken = cli("audit", "verify")
    assert broken.exit_code == 1 and "ID 2 " in broken.stderr   # still the first break


def test_cli_verify_detects_deleted_last_entry(cli, kumiki):
    fill(kumiki, 3)
    tamper(kumiki, "DELETE FROM audit_log WHERE id = 3")
    broken = cli("audit", "verify")
    assert broken.exit_code == 1 and "ID 3 " in broken.stderr and "削除" in broken.stderr


def test_cli_export_to_file_and_stdout_is_itself_audited(cli, kumiki, tmp_path):
    fill(kumiki, 4)
    out = tmp_path / "audit.csv"
    result = cli("audit", "export", "--encoding", "cp932", "-o", str(out), "--action", "record.view")
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(out.read_bytes().decode("cp932"))))
    assert [r["id"] for r in table] == ["1", "3"]
    result = cli("audit", "export", "--format", "jsonl")
    lines = result.stdout_bytes.decode("utf-8").splitlines()
    assert [json.loads(line)["action"] for line in lines][-1] == "audit.export"   # the first export
    with kumiki.Session() as s:
        entries, total = audit.query(s, action="audit.export")
    assert total == 2 and entries[-1].detail["filters"] == {"action": "record.view"}
    assert verify(kumiki).ok


def test_cli_export_bad_period_is_a_clean_error(cli, kumiki):
    result = cli("audit", "export", "--since", "someday")
    assert result.exit_code == 2 and "日付" in result.stderr and "Traceback" not in result.output


def test_model_and_table_match(kumiki):
    # The migration and the model describe the same columns.
    with kumiki.engine.connect() as c:
        from sqlalchemy import inspect
        columns = {col["name"] for col in inspect(c).get_columns("audit_log")}
    assert columns == set(AuditLog.__table__.columns.keys())
