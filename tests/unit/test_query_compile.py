"""The query compiler against real tables: SQLite always, PostgreSQL when KUMIKI_TEST_POSTGRES_URL is set.

Each test states the exact record ids a query must return.
"""
from __future__ import annotations

import os
import uuid
from datetime import date, datetime, time
from string import Formatter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, insert, null, select

from kumiki import i18n
from kumiki.db import make_engine
from kumiki.errors import ValidationError
from kumiki.fields.base import Context
from kumiki.query import CompiledQuery, compile_query
from kumiki.storage.schema import AppSchema, FieldDef

PG_URL = os.environ.get("KUMIKI_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="KUMIKI_TEST_POSTGRES_URL is not set"))]

# 2024-05-15 03:00 UTC = Wednesday 2024-05-15 12:00 in Asia/Tokyo (the week runs Sun 12th .. Sat 18th).
NOW = datetime(2024, 5, 15, 3, 0)
CTX = Context(user_code="u1", now=NOW, timezone="Asia/Tokyo")
APP_ID = 7


def _fd(i, code, type_, *, parent=None, props=None, table=None, column="auto"):
    if column == "auto":
        column = f"f_{i}"
    return FieldDef(id=i, code=code, type=type_, props={"code": code, "type": type_, **(props or {})},
                    column=column, table=table or f"app_{APP_ID}", parent_code=parent)


def build_schema() -> AppSchema:
    child = f"app_{APP_ID}_t_9"
    fields = [
        _fd(1, "氏名", "SINGLE_LINE_TEXT"),
        _fd(2, "年齢", "NUMBER"),
        _fd(3, "誕生日", "DATE"),
        _fd(4, "受付日時", "DATETIME"),
        _fd(5, "区分", "DROP_DOWN", props={"options": ["A", "B", "C"]}),
        _fd(6, "趣味", "CHECK_BOX", props={"options": ["読書", "映画", "旅行"]}),
        _fd(7, "担当者", "USER_SELECT"),
        _fd(8, "添付", "FILE"),
        _fd(9, "明細", "SUBTABLE", column=None, table=child),
        _fd(10, "品名", "SINGLE_LINE_TEXT", parent="明細", table=child),
        _fd(11, "数量", "NUMBER", parent="明細", table=child),
        _fd(16, "色", "CHECK_BOX", parent="明細", table=child, props={"options": ["赤", "橙", "緑", "黄"]}),
        _fd(12, "備考", "MULTI_LINE_TEXT"),
        _fd(13, "時刻", "TIME"),
        _fd(14, "ラベル", "LABEL", column=None),
        _fd(15, "部署", "ORGANIZATION_SELECT"),
        _fd(0, "レコード番号", "RECORD_NUMBER", column="id"),
        _fd(0, "作成者", "CREATOR", column="created_by"),
        _fd(0, "作成日時", "CREATED_TIME", column="created_at"),
        _fd(0, "更新者", "MODIFIER", column="updated_by"),
        _fd(0, "更新日時", "UPDATED_TIME", column="updated_at"),
        _fd(0, "ステータス", "STATUS", column="status"),
        _fd(0, "作業者", "STATUS_ASSIGNEE", column="assignees"),
    ]
    return AppSchema(app_id=APP_ID, version=1, definition={}, fields={f.code: f for f in fields})


def _file(name, key="k"):
    return {"fileKey": key, "name": name, "contentType": "application/octet-stream", "size": 1}


# JSON columns: null() is SQL NULL, None is JSON null, [] an empty list -- all three mean "empty".
RECORDS = [
    dict(id=1, f_1="山田太郎", f_2=30, f_3=date(2024, 5, 15), f_4=datetime(2024, 5, 14, 15, 0), f_5="A",
         f_6=["読書", "映画"], f_7=["u1"], f_8=[_file("見積書.pdf", "k1")], f_12="東京都板橋区の案件です",
         f_13=time(9, 0), created_by="u1", created_at=datetime(2024, 5, 1, 0, 0), updated_by="u1",
         status="未処理", assignees=["u1", "u2"], f_15=["総務課"]),
    dict(id=2, f_1="東京都板橋区", f_2=None, f_3=None, f_4=None, f_5=None, f_6=null(), f_7=null(), f_8=null(),
         f_12=None, f_13=None, created_by="u2", created_at=datetime(2024, 5, 14, 14, 59), updated_by="u2",
         status="完了", assignees=null(), f_15=null()),
    dict(id=3, f_1="100%_OFF", f_2=12.5, f_3=date(2024, 5, 1), f_4=datetime(2024, 5, 15, 14, 59), f_5="B",
         f_6=["旅行"], f_7=["u2", "u3"], f_8=[_file("report_2024.XLSX")], f_12="abc", f_13=time(18, 30),
         created_by="u1", created_at=datetime(2024, 5, 15, 3, 0), updated_by="u2", status="処理中",
         assignees=["u3"], f_15=["税務課"]),
    dict(id=4, f_1=None, f_2=0, f_3=date(2023, 12, 31), f_4=datetime(2024, 5, 15, 15, 0), f_5="C",
         f_6=[], f_7=[], f_8=[], f_12=None, f_13=None, created_by=None, created_at=datetime(2023, 6, 1),
         updated_by=None, status=None, assignees=[]),
    dict(id=5, f_1="abc", f_2=-7, f_3=date(2024, 5, 31), f_4=datetime(2024, 4, 30, 15, 0), f_5="A",
         f_6=None, f_7=None, f_8=None, f_12="", f_13=time(0, 0), created_by="u3",
         created_at=datetime(2024, 5, 12, 0, 0), updated_by="u3", status="未処理", assignees=None),
    dict(id=6, f_1="ABCD", f_2=1000, f_3=date(2024, 6, 1), f_4=datetime(2024, 5, 18, 14, 0), f_5="B",
         f_6=["読書", "旅行"], f_7=["u1", "u3"], f_8=[_file("写真_1.jpg"), _file("見積書_v2.pdf")], f_12=" \n\u3000",
         f_13=time(12, 0), created_by="u1", created_at=datetime(2024, 4, 30, 15, 0), updated_by="u1",
         status="完了", assignees=["u2"], f_15=["総務課", "税務課"]),
]
ROWS = {1: [("りんご", 3, ["赤"]), ("みかん", 5, ["橙"])], 3: [("Apple", 1, ["赤", "緑"])], 4: [(None, None, null())],
        5: [("りんご", 10, [])], 6: [("バナナ", 2, ["黄"]), ("りんご", 0, ["赤"])]}
ALL = {1, 2, 3, 4, 5, 6}


class DB:
    def __init__(self, engine, schema: AppSchema):
        self.engine = engine
        self.schema = schema
        self.dialect = engine.dialect.name

    def compile(self, text, ctx=CTX) -> CompiledQuery:
        return compile_query(text, self.schema, ctx, self.dialect)

    def run(self, text, ctx=CTX) -> list[int]:
        cq = self.compile(text, ctx)
        t = self.schema.table
        stmt = select(t.c.id).order_by(*cq.order_by).limit(cq.limit).offset(cq.offset)
        if cq.where is not None:
            stmt = stmt.where(cq.where)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(stmt)]

    def ids(self, text, ctx=CTX) -> set[int]:
        return set(self.run(text, ctx))


@pytest.fixture(scope="module", params=BACKENDS)
def db(request, tmp_path_factory):
    pg_schema = None
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('query')}/query.db")
    else:
        pg_schema = "kq_" + uuid.uuid4().hex[:12]
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{pg_schema}"')
        sep = "&" if "?" in PG_URL else "?"
        engine = make_engine(f"{PG_URL}{sep}options=-csearch_path%3D{pg_schema}")
    schema = build_schema()
    table, child = schema.table, schema.child_tables["明細"]
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        for rec in RECORDS:
            conn.execute(insert(table).values(revision=1, updated_at=rec["created_at"], **rec))
        for record_id, rows in ROWS.items():
            for pos, (name, qty, colours) in enumerate(rows):
                conn.execute(insert(child).values(record_id=record_id, position=pos, f_10=name, f_11=qty,
                                                  f_16=colours))
    yield DB(engine, schema)
    schema.metadata.drop_all(engine)
    engine.dispose()
    if pg_schema:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE')
        admin.dispose()


def error_of(db, text, ctx=CTX):
    with pytest.raises(ValidationError) as info:
        db.compile(text, ctx)
    detail = info.value.details[0]
    assert detail.path == "query"
    for locale in ("ja", "en"):
        template = i18n.translate(detail.key, locale)
        assert template != detail.key
        names = {n for _, n, _, _ in Formatter().parse(template) if n}
        assert names <= set(detail.params), names - set(detail.params)
    return detail


# ----- text -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ('氏名 = "山田太郎"', {1}),
    ('氏名 = ""', {4}),
    ("氏名 is empty", {4}),
    ('氏名 != ""', {1, 2, 3, 5, 6}),
    ("氏名 is not empty", {1, 2, 3, 5, 6}),
    ('氏名 != "山田太郎"', {2, 3, 4, 5, 6}),          # the empty record is "not equal" too
    ('氏名 in ("山田太郎", "abc")', {1, 5}),
    ('氏名 in ("abc", "")', {4, 5}),
    ('氏名 not in ("山田太郎", "abc")', {2, 3, 4, 6}),
    ('氏名 not in ("abc", "")', {1, 2, 3, 6}),
    ('氏名 like "東京"', {2}),                       # a substring of Japanese text without spaces
    ('氏名 like "田"', {1}),
    ('氏名 like "ab"', {5, 6}),                      # case-insensitive for Latin letters
    ('氏名 like "AB"', {5, 6}),
    ('氏名 like "%"', {3}),                          # % and _ are literal characters
    ('氏名 like "_"', {3}),
    ('氏名 like "0%_O"', {3}),
    ('氏名 like "0%%"', set()),
    ('氏名 like ""', ALL),
    ('氏名 not like "ab"', {1, 2, 3, 4}),             # includes the empty record
    ('氏名 not like "東京"', {1, 3, 4, 5, 6}),
    ('備考 like "板橋"', {1}),
    ("備考 is empty", {2, 4, 5, 6}),                  # NULL, "" and only spaces / line breaks
    ("備考 is not empty", {1, 3}),
])
def test_text(db, text, expected):
    assert db.ids(text) == expected


# ----- numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("年齢 = 30", {1}),
    ('年齢 = "30.0"', {1}),
    ('年齢 = "３０"', {1}),                           # full-width digits, as typed with a Japanese IME
    ("年齢 != 30", {2, 3, 4, 5, 6}),
    ("年齢 > 0", {1, 3, 6}),
    ("年齢 >= 0", {1, 3, 4, 6}),
    ("年齢 < 0", {5}),
    ('年齢 <= "12.5"', {3, 4, 5}),
    ("年齢 in (0, 1000)", {4, 6}),
    ("年齢 not in (0, 1000)", {1, 2, 3, 5}),
    ('年齢 in ("")', {2}),
    ('年齢 = ""', {2}),
    ("年齢 is empty", {2}),
    ("年齢 is not empty", {1, 3, 4, 5, 6}),
])
def test_number(db, text, expected):
    assert db.ids(text) == expected


# ----- dates and functions --------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("誕生日 = TODAY()", {1}),
    ('誕生日 = "2024-05-15"', {1}),
    ('誕生日 = "令和6年5月15日"', {1}),
    ("誕生日 = NOW()", {1}),
    ("誕生日 > TODAY()", {5, 6}),
    ("誕生日 >= TODAY()", {1, 5, 6}),
    ("誕生日 < TODAY()", {3, 4}),
    ("誕生日 <= TODAY()", {1, 3, 4}),
    ("誕生日 != TODAY()", {2, 3, 4, 5, 6}),
    ("誕生日 = YESTERDAY()", set()),
    ("誕生日 = THIS_MONTH()", {1, 3, 5}),
    ("誕生日 < THIS_MONTH()", {4}),
    ("誕生日 > THIS_MONTH()", {6}),
    ("誕生日 <= THIS_MONTH()", {1, 3, 4, 5}),
    ("誕生日 = THIS_MONTH(1)", {3}),
    ("誕生日 = THIS_MONTH(LAST)", {5}),
    ("誕生日 = NEXT_MONTH()", {6}),
    ("誕生日 = NEXT_MONTH(1)", {6}),
    ("誕生日 = LAST_MONTH()", set()),
    ("誕生日 = THIS_YEAR()", {1, 3, 5, 6}),
    ("誕生日 = LAST_YEAR()", {4}),
    ("誕生日 = NEXT_YEAR()", set()),
    ("誕生日 = THIS_WEEK()", {1}),
    ("誕生日 = THIS_WEEK(WEDNESDAY)", {1}),
    ("誕生日 = THIS_WEEK(SUNDAY)", set()),
    ("誕生日 = FROM_TODAY(16, DAYS)", {5}),
    ("誕生日 = FROM_TODAY(-14, DAYS)", {3}),
    ("誕生日 = FROM_TODAY(-2, WEEKS)", {3}),
    ("誕生日 = FROM_TODAY(17, days)", {6}),
    ("誕生日 < FROM_TODAY(-1, YEARS)", set()),
    ("誕生日 in (\"2024-05-01\", \"2024-05-31\")", {3, 5}),
    ("誕生日 not in (\"2024-05-01\", \"2024-05-31\")", {1, 2, 4, 6}),
    ("誕生日 is empty", {2}),
])
def test_date(db, text, expected):
    assert db.ids(text) == expected


@pytest.mark.parametrize("text,expected", [
    # stored UTC: 1 = 15th 00:00 JST, 3 = 15th 23:59 JST, 4 = 16th 00:00 JST, 5 = 1st 00:00 JST, 6 = 18th 23:00 JST
    ("受付日時 = TODAY()", {1, 3}),
    ("受付日時 > TODAY()", {4, 6}),
    ("受付日時 >= TODAY()", {1, 3, 4, 6}),
    ("受付日時 < TODAY()", {5}),
    ("受付日時 <= TODAY()", {1, 3, 5}),
    ("受付日時 != TODAY()", {2, 4, 5, 6}),
    ("受付日時 = TOMORROW()", {4}),
    ("受付日時 = THIS_WEEK()", {1, 3, 4, 6}),
    ("受付日時 = THIS_WEEK(SATURDAY)", {6}),
    ("受付日時 = NEXT_WEEK()", set()),
    ("受付日時 = THIS_MONTH()", {1, 3, 4, 5, 6}),
    ("受付日時 = THIS_MONTH(1)", {5}),
    ("受付日時 = LAST_MONTH()", set()),
    ("受付日時 = FROM_TODAY(1, DAYS)", {4}),
    ('受付日時 = "2024-05-15"', {1, 3}),             # a date literal is that whole local day
    ('受付日時 = "2024-05-15T14:59:00Z"', {3}),
    ('受付日時 = "2024-05-15T14:59:30Z"', {3}),      # kintone keeps minutes
    ('受付日時 = "2024-05-15 23:59"', {3}),          # wall-clock time in the user's time zone
    ('受付日時 > "2024-05-15T14:59:00Z"', {4, 6}),
    ('受付日時 >= "2024-05-15T14:59:00Z"', {3, 4, 6}),
    ('受付日時 < "2024-05-15T00:00:00+09:00"', {5}),
    ('受付日時 <= "2024-05-14T15:00:00Z"', {1, 5}),
    ('受付日時 != "2024-05-14T15:00:00Z"', {2, 3, 4, 5, 6}),
    ("受付日時 = NOW()", set()),
    ("受付日時 is empty", {2}),
])
def test_datetime(db, text, expected):
    assert db.ids(text) == expected


def test_now_and_time_zone(db):
    ctx = Context(user_code="u1", now=datetime(2024, 5, 15, 14, 59, 20))
    assert db.ids("受付日時 = NOW()", ctx) == {3}
    assert db.ids("受付日時 < NOW()", ctx) == {1, 5}
    assert db.ids("受付日時 > NOW()", ctx) == {4, 6}
    utc = Context(user_code="u1", now=NOW, timezone="UTC")
    assert db.ids("受付日時 = TODAY()", utc) == {3, 4}
    assert db.ids('受付日時 = "2024-05-15"', utc) == {3, 4}
    assert db.ids("誕生日 = TODAY()", Context(now=datetime(2024, 5, 14, 15, 0))) == {1}   # JST already the 15th
    assert db.ids("誕生日 = TODAY()", Context(now=datetime(2024, 5, 14, 14, 59))) == set()


@pytest.mark.parametrize("text,expected", [
    # created_at UTC: 1 = May 1 09:00 JST, 2 = May 14 23:59 JST, 3 = May 15 12:00 JST, 4 = 2023-06-01,
    # 5 = Sun May 12 09:00 JST, 6 = May 1 00:00 JST
    ("作成日時 = TODAY()", {3}),
    ("作成日時 = YESTERDAY()", {2}),
    ("作成日時 = THIS_WEEK()", {2, 3, 5}),
    ("作成日時 = THIS_WEEK(SUNDAY)", {5}),
    ("作成日時 = LAST_WEEK()", set()),
    ("作成日時 = THIS_MONTH()", {1, 2, 3, 5, 6}),
    ("作成日時 < THIS_MONTH()", {4}),
    ("作成日時 = LAST_YEAR()", {4}),
    ("更新日時 > YESTERDAY()", {3}),
])
def test_system_times(db, text, expected):
    assert db.ids(text) == expected


@pytest.mark.parametrize("text,expected", [
    ('時刻 = "9:00"', {1}),
    ('時刻 > "09:00"', {3, 6}),
    ('時刻 <= "12:00"', {1, 5, 6}),
    ('時刻 != "00:00"', {1, 2, 3, 4, 6}),
    ("時刻 is empty", {2, 4}),
])
def test_time(db, text, expected):
    assert db.ids(text) == expected


# ----- choices, lists, users ------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ('区分 in ("A")', {1, 5}),
    ('区分 in ("A", "B")', {1, 3, 5, 6}),
    ('区分 not in ("A")', {2, 3, 4, 6}),
    ('区分 in ("")', {2}),
    ('区分 not in ("")', {1, 3, 4, 5, 6}),
    ('区分 in ("廃止された選択肢")', set()),
    ('ステータス in ("未処理")', {1, 5}),
    ('ステータス not in ("完了")', {1, 3, 4, 5}),
])
def test_single_choice(db, text, expected):
    assert db.ids(text) == expected


@pytest.mark.parametrize("text,expected", [
    ('趣味 in ("読書")', {1, 6}),
    ('趣味 in ("映画", "旅行")', {1, 3, 6}),
    ('趣味 not in ("読書")', {2, 3, 4, 5}),           # SQL NULL, JSON null and [] contain nothing
    ('趣味 not in ("読書", "旅行")', {2, 4, 5}),
    ('趣味 in ("")', {2, 4, 5}),
    ('趣味 in ("", "旅行")', {2, 3, 4, 5, 6}),
    ('趣味 not in ("")', {1, 3, 6}),
    ('趣味 in ("存在しない")', set()),
    ('担当者 in ("u3")', {3, 6}),
    ("担当者 in (LOGINUSER())", {1, 6}),
    ('担当者 in (LOGINUSER(), "u2")', {1, 3, 6}),
    ("担当者 not in (LOGINUSER())", {2, 3, 4, 5}),
    ('作業者 in ("u2")', {1, 6}),
    ("作業者 in (LOGINUSER())", {1}),
    ('作業者 not in ("u2")', {2, 3, 4, 5}),
    ('作業者 in ("")', {2, 4, 5}),
    ("作成者 in (LOGINUSER())", {1, 3, 6}),
    ('作成者 not in ("u1")', {2, 4, 5}),
    ('作成者 in ("")', {4}),
    ('更新者 in ("u2")', {2, 3}),
])
def test_multi_valued_and_users(db, text, expected):
    assert db.ids(text) == expected


def test_loginuser_without_user(db):
    anonymous = Context(user_code=None, now=NOW)
    assert db.ids("担当者 in (LOGINUSER())", anonymous) == set()
    assert db.ids("担当者 not in (LOGINUSER())", anonymous) == ALL
    assert db.ids("作成者 in (LOGINUSER())", anonymous) == set()
    assert db.ids('作成者 in (LOGINUSER(), "u3")', anonymous) == {5}


@pytest.mark.parametrize("text,expected", [
    ('添付 like "見積"', {1, 6}),
    ('添付 like "xlsx"', {3}),                       # case-insensitive
    ('添付 like "_"', {3, 6}),
    ('添付 like "_1"', {6}),
    ('添付 like "k1"', set()),                       # the file key is not the name
    ('添付 not like "見積"', {2, 3, 4, 5}),
    ("添付 is empty", {2, 4, 5}),
    ("添付 is not empty", {1, 3, 6}),
])
def test_file(db, text, expected):
    assert db.ids(text) == expected


# ----- subtables ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ('品名 in ("りんご")', {1, 5, 6}),
    ('品名 not in ("りんご")', {2, 3, 4}),
    ('品名 in ("みかん", "Apple")', {1, 3}),
    ('品名 like "app"', {3}),
    ('品名 not like "ご"', {2, 3, 4}),
    ('品名 in ("")', {4}),
    ("品名 is empty", {2, 4}),
    ("品名 is not empty", {1, 3, 5, 6}),
    ("数量 > 4", {1, 5}),
    ("数量 >= 10", {5}),
    ("数量 in (0)", {6}),
    ("数量 not in (0)", {1, 2, 3, 4, 5}),
    ("数量 < 1", {6}),
    ('色 in ("赤")', {1, 3, 6}),                      # a check box inside the table
    ('色 not in ("赤")', {2, 4, 5}),
    ('色 in ("緑", "黄")', {3, 6}),
    # each condition looks at the rows on its own (as kintone does)
    ('品名 in ("りんご") and 数量 > 4', {1, 5}),
    ('品名 in ("バナナ") or 数量 in (1)', {3, 6}),
])
def test_subtable(db, text, expected):
    assert db.ids(text) == expected


# ----- record id and combinations -------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("$id = 3", {3}),
    ('$id = "3"', {3}),
    ("$id > 4", {5, 6}),
    ("$id in (1, 2)", {1, 2}),
    ("$id not in (1, 2)", {3, 4, 5, 6}),
    ("$id != 1", {2, 3, 4, 5, 6}),
    ("レコード番号 <= 2", {1, 2}),
    ("$id = 999999999999999999", set()),
    ('誕生日 < "9999-12-31"', {1, 3, 4, 5, 6}),
    ('誕生日 > "0001-01-01"', {1, 3, 4, 5, 6}),
    ('年齢 > 0 and (氏名 like "田" or 氏名 like "AB")', {1, 6}),
    ('区分 in ("A") or 区分 in ("C") and 年齢 = 0', {1, 4, 5}),
    ('(区分 in ("A") or 区分 in ("C")) and 年齢 >= 0', {1, 4}),
    ('趣味 in ("読書") and 品名 in ("りんご") and 作成者 in (LOGINUSER())', {1, 6}),
])
def test_id_and_combinations(db, text, expected):
    assert db.ids(text) == expected


def test_long_chains(db):
    # SQLite refuses expressions nested 1000 deep; long chains must still run
    text = " or ".join(f"$id = {i}" for i in range(1, 1900))
    assert db.ids(text) == ALL
    text = " and ".join(f"$id != {i}" for i in range(7, 1900))
    assert db.ids(text) == ALL
    text = "$id in (" + ", ".join(str(i) for i in range(1, 9000)) + ")"
    assert db.ids(text) == ALL
    assert error_of(db, " or ".join(["$id = 1"] * 2001)).key == "query.too_many_conditions"


# ----- order by, limit, offset ----------------------------------------------------------------

def test_default_order_is_newest_first(db):
    assert db.run(None) == [6, 5, 4, 3, 2, 1]
    assert db.run("") == [6, 5, 4, 3, 2, 1]
    cq = db.compile(None)
    assert cq.where is None and cq.limit is None and cq.offset is None and len(cq.order_by) == 1


@pytest.mark.parametrize("text,expected", [
    ("order by 年齢 asc", [2, 5, 4, 3, 1, 6]),       # empty is the smallest value
    ("order by 年齢", [2, 5, 4, 3, 1, 6]),
    ("order by 年齢 desc", [6, 1, 3, 4, 5, 2]),      # so it comes last in desc
    ("order by 区分 asc, 年齢 desc", [2, 1, 5, 6, 3, 4]),
    ("order by 区分 asc", [2, 1, 5, 3, 6, 4]),       # ties follow the last key's direction
    ("order by $id asc", [1, 2, 3, 4, 5, 6]),
    ("order by レコード番号 desc", [6, 5, 4, 3, 2, 1]),
    ("order by 作成日時 desc", [3, 2, 5, 1, 6, 4]),
    ("order by 誕生日 asc limit 2", [2, 4]),
    ("order by 誕生日 asc limit 2 offset 2", [3, 1]),
    ("order by 時刻 desc", [3, 6, 1, 5, 4, 2]),
    ('年齢 >= 0 order by 受付日時 desc limit 10', [6, 4, 3, 1]),
    ("limit 1 offset 100", []),
])
def test_order_by(db, text, expected):
    assert db.run(text) == expected


def test_explicit_id_key_gets_no_tie_breaker(db):
    assert len(db.compile("order by $id asc").order_by) == 1
    assert len(db.compile("order by 年齢 asc").order_by) == 2


def test_limit_and_offset_pass_through(db):
    cq = db.compile("limit 500 offset 12345")
    assert (cq.limit, cq.offset) == (500, 12345)


# ----- one statement --------------------------------------------------------------------------

def test_compiles_to_one_statement(db):
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        result = db.run('品名 in ("りんご") and 趣味 not in ("映画") and 添付 like "見積" and '
                        '作業者 in (LOGINUSER()) or 誕生日 = THIS_MONTH() order by 年齢 desc limit 5')
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert result == [1, 3, 5]
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


# ----- errors ---------------------------------------------------------------------------------

def test_unknown_field_is_located(db):
    text = '氏名 = "a" and 不明 = "b"'
    d = error_of(db, text)
    assert d.key == "query.unknown_field"
    assert d.params["code"] == "不明" and d.params["position"] == text.index("不明") + 1
    assert "不明" in i18n.translate(d.key, "ja", **d.params)


def test_operator_not_allowed(db):
    d = error_of(db, '年齢 like "1"')
    assert d.key == "query.operator_not_allowed"
    assert i18n.translate(d.key, "ja", **d.params) == "1文字目: 「年齢」（数値）フィールドでは演算子「like」は使えません。"
    assert "like" in i18n.translate(d.key, "en", **d.params)
    for text in ['区分 = "A"', '趣味 = "読書"', '明細 in ("x")', 'ラベル = "x"', '氏名 > "a"', "作成日時 is empty",
                 '添付 in ("x")']:
        assert error_of(db, text).key == "query.operator_not_allowed", text


@pytest.mark.parametrize("text,key", [
    ('年齢 = "abc"', "query.invalid_value"),
    ('誕生日 = "2024-13-01"', "query.invalid_value"),
    ('受付日時 = "昨日"', "query.invalid_value"),
    ('時刻 = "25:00"', "query.invalid_value"),
    ('$id = "x"', "query.invalid_value"),
    ('年齢 > ""', "query.empty_not_comparable"),
    ("氏名 = LOGINUSER()", "query.function_not_allowed"),
    ("時刻 = TODAY()", "query.function_not_allowed"),
    ("年齢 = TODAY()", "query.function_not_allowed"),
    ("区分 in (PRIMARY_ORGANIZATION())", "query.function_not_allowed"),
    ("誕生日 = TODAY(1)", "query.function_arguments"),
    ("誕生日 = FROM_TODAY(1)", "query.function_arguments"),
    ("誕生日 = FROM_TODAY(1, HOURS)", "query.function_arguments"),
    ("誕生日 = FROM_TODAY(DAYS, 1)", "query.function_arguments"),
    ("誕生日 = THIS_WEEK(FUNDAY)", "query.function_arguments"),
    ("誕生日 = THIS_MONTH(32)", "query.function_arguments"),
    ("誕生日 = THIS_MONTH(1, 2)", "query.function_arguments"),
    ("誕生日 = YESTERDAY_AND_TODAY()", "query.unknown_function"),
    ("氏名 like TODAY()", "query.like_needs_text"),
    ("order by 趣味", "query.not_sortable"),
    ("order by 備考", "query.not_sortable"),
    ("order by 作業者", "query.not_sortable"),
    ("order by 品名", "query.not_sortable"),
    ("order by 明細", "query.not_sortable"),
    ("order by 不明", "query.unknown_field"),
    ('氏名 = "a" "b"', "query.syntax"),
    ('受付日時 = "9999-12-31"', "query.out_of_range"),
    ('受付日時 = "9999-12-31T23:59:00Z"', "query.out_of_range"),
    ('受付日時 = "0001-01-01"', "query.out_of_range"),
    ("誕生日 = FROM_TODAY(999999, YEARS)", "query.function_arguments"),
])
def test_errors(db, text, key):
    assert error_of(db, text).key == key


def test_invalid_value_carries_the_field_reason(db):
    d = error_of(db, 'x = "1" or 誕生日 = "2024-13-01"'.replace("x", "氏名"))
    assert d.params["code"] == "誕生日" and d.params["value"] == "2024-13-01"
    assert d.params["position"] == len('氏名 = "1" or 誕生日 = ') + 1
    assert "日付" in i18n.translate(d.key, "ja", **d.params)
    assert "date" in i18n.translate(d.key, "en", **d.params)


def test_primary_organization(db):
    ctx = Context(user_code="u1", now=NOW, extra={"primary_organization": "総務課"})
    assert db.ids("部署 in (PRIMARY_ORGANIZATION())", ctx) == {1, 6}
    assert db.ids("部署 not in (PRIMARY_ORGANIZATION())", ctx) == {2, 3, 4, 5}
    assert db.ids('部署 in ("税務課")', ctx) == {3, 6}
    # kintone ignores the condition when the user has no primary organization
    assert db.ids('部署 in (PRIMARY_ORGANIZATION()) and 年齢 > 0') == {1, 3, 6}
    assert error_of(db, "担当者 in (PRIMARY_ORGANIZATION())").key == "query.function_not_allowed"


# ----- robustness -----------------------------------------------------------------------------

CODES = ["色", "部署", "氏名", "年齢", "誕生日", "受付日時", "区分", "趣味", "担当者", "添付", "明細", "品名", "数量", "備考",
         "時刻", "ラベル", "レコード番号", "作成者", "作成日時", "更新者", "更新日時", "ステータス", "作業者", "$id", "不明"]
DATES = ['"2024-05-15"', "TODAY()", "NOW()", "THIS_MONTH(LAST)", "FROM_TODAY(-1, MONTHS)", "THIS_WEEK(MONDAY)",
         "LAST_YEAR()", '"令和6年1月1日"', '""', '"9999-12-31"', '"0001-01-01"']
POOLS = {
    "text": ['""', '"a"', '"%_\\\\"', '"東京"', "12"],
    "number": ["0", "-1.5", '""', '"1e5"', '"99999999999999999999999999999999999"', '"１２"'],
    "date": DATES,
    "datetime": DATES + ['"2024-05-15T09:00:00Z"', '"2024-05-15 23:59"'],
    "time": ['"09:30"', '"0:00"', '""'],
    "choice": ['"A"', '"読書"', '"赤"', '""'],
    "user": ['"u1"', "LOGINUSER()", '""'],
    "org": ["PRIMARY_ORGANIZATION()", '"総務課"', '""'],
    "id": ["1", '"3"', '"0"', "99999999999999"],
}
KIND = {"氏名": "text", "品名": "text", "備考": "text", "添付": "text", "年齢": "number", "数量": "number",
        "誕生日": "date", "受付日時": "datetime", "作成日時": "datetime", "更新日時": "datetime", "時刻": "time",
        "区分": "choice", "趣味": "choice", "色": "choice", "ステータス": "choice", "担当者": "user", "作成者": "user",
        "更新者": "user", "作業者": "user", "部署": "org", "$id": "id", "レコード番号": "id"}
ALL_VALUES = [v for pool in POOLS.values() for v in pool]
ALL_OPS = ["=", "!=", ">", "<", ">=", "<=", "like", "not like", "in", "not in", "is empty", "is not empty"]


def _allowed_ops(code):
    f = build_schema().fields.get(code)
    if code == "$id":
        return ["=", "!=", ">", "<", ">=", "<=", "in", "not in"]
    return sorted(f.ftype.operators) if f is not None and f.ftype.operators else ALL_OPS


ALLOWED = {code: _allowed_ops(code) for code in CODES}


@st.composite
def conditions(draw):
    """Mostly well-typed conditions (so that most compile and run), sometimes anything at all."""
    code = draw(st.sampled_from(CODES))
    careful = draw(st.integers(0, 9)) < 8
    op = draw(st.sampled_from(ALLOWED[code] if careful else ALL_OPS))
    pool = POOLS.get(KIND.get(code), ALL_VALUES) if careful else ALL_VALUES
    if op in ("is empty", "is not empty"):
        return f"{code} {op}"
    if op in ("in", "not in"):
        return f"{code} {op} ({', '.join(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3)))})"
    return f"{code} {op} {draw(st.sampled_from(pool))}"


@st.composite
def generated_queries(draw):
    conds = draw(st.lists(conditions(), min_size=1, max_size=3))
    text = conds[0]
    for c in conds[1:]:
        text += f" {draw(st.sampled_from(['and', 'or']))} {c}"
    if draw(st.booleans()):
        text += f" order by {draw(st.sampled_from(CODES))} {draw(st.sampled_from(['asc', 'desc']))}"
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=generated_queries())
def test_generated_queries_compile_and_run_or_fail_cleanly(db, text):
    """Any query either compiles to SQL the database accepts or raises ValidationError."""
    try:
        result = db.run(text)
    except ValidationError as e:
        assert e.details and e.details[0].path == "query"
        return
    assert set(result) <= ALL


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40))
def test_arbitrary_text_compiles_or_fails_cleanly(db, text):
    try:
        db.compile(text)
    except ValidationError:
        pass


def test_count_uses_the_same_where(db):
    cq = db.compile('品名 in ("りんご")')
    with db.engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(db.schema.table).where(cq.where))
    assert n == 3
