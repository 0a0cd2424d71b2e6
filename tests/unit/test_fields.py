"""Field types: values, definitions, defaults, queries, CSV and retyping."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kumiki import i18n
from kumiki.errors import FieldValueError
from kumiki.fields import all_types, get
from kumiki.fields._era import ERAS, era_of, format_era, parse_date
from kumiki.fields.base import Context

NOW = datetime(2026, 3, 31, 16, 30, 45)  # naive UTC: 2026-04-01 01:30:45 in Tokyo
USERS = {"u1": "山田 太郎", "u2": "佐藤 花子"}
FILES = {"k1": {"fileKey": "k1", "name": "申請書.pdf", "contentType": "application/pdf", "size": 1234, "x": 1}}


def ctx(**kw) -> Context:
    base = dict(user_code="u1", now=NOW, timezone="Asia/Tokyo", user_name=USERS.get,
                user_exists=lambda c: c in USERS, file_info=FILES.get)
    return Context(**(base | kw))


def norm(fdef: dict, value):
    return get(fdef["type"]).normalise(fdef, value, ctx())


def error_key(fdef: dict, value) -> str:
    with pytest.raises(FieldValueError) as e:
        norm(fdef, value)
    return e.value.key


def check(fdef: dict) -> list[tuple[str, str]]:
    return [(d.path, d.key) for d in get(fdef["type"]).check_definition(fdef, "fields[0]")]


def roundtrip(fdef: dict, value):
    ft = get(fdef["type"])
    return ft.from_db(fdef, ft.to_db(fdef, value), ctx())


# ----- registry and contract -----
EXPECTED_TYPES = {
    "SINGLE_LINE_TEXT", "MULTI_LINE_TEXT", "RICH_TEXT", "NUMBER", "CALC", "RADIO_BUTTON", "DROP_DOWN",
    "CHECK_BOX", "MULTI_SELECT", "DATE", "TIME", "DATETIME", "LINK", "FILE", "USER_SELECT",
    "ORGANIZATION_SELECT", "GROUP_SELECT", "SUBTABLE", "RECORD_NUMBER", "CREATOR", "MODIFIER",
    "CREATED_TIME", "UPDATED_TIME", "STATUS", "STATUS_ASSIGNEE", "LABEL", "SPACER", "HR", "GROUP",
}


def test_every_kintone_type_is_registered_with_labels():
    types = all_types()
    assert EXPECTED_TYPES <= set(types)
    for name, ft in types.items():
        assert ft.type_name == name
        ja, en = ft.label
        assert ja and en, name


def test_glossary_labels():
    assert get("MULTI_LINE_TEXT").label[0] == "文字列（複数行）"
    assert get("RICH_TEXT").label[0] == "リッチエディター"
    assert get("USER_SELECT").label[0] == "ユーザー選択"
    assert get("UPDATED_TIME").label[0] == "更新日時"


def test_kinds_and_columns():
    for name in ("LABEL", "SPACER", "HR", "GROUP"):
        ft = get(name)
        assert ft.kind == "layout" and not ft.operators and not ft.can_be_required
        assert ft.column_type({"type": name}) is None
    for name in ("CHECK_BOX", "MULTI_SELECT", "FILE", "USER_SELECT", "ORGANIZATION_SELECT", "GROUP_SELECT"):
        ft = get(name)
        assert ft.kind == "multi" and ft.stores_list and ft.column_type({"type": name}) is not None
    assert get("SUBTABLE").kind == "subtable" and get("SUBTABLE").column_type({}) is None
    for name in ("RECORD_NUMBER", "CREATOR", "MODIFIER", "CREATED_TIME", "UPDATED_TIME", "STATUS",
                 "STATUS_ASSIGNEE"):
        assert get(name).kind == "system" and get(name).read_only
    assert get("CALC").read_only
    assert {n for n, t in all_types().items() if t.can_be_unique} >= {"NUMBER", "DATE", "DATETIME", "LINK"}
    assert not get("FILE").can_be_unique


def test_all_message_keys_have_japanese_text():
    # Every key a field type raises is registered: the Japanese text differs from the key itself.
    for key in ("field.type_mismatch", "field.date_invalid", "field.date_outside_era", "field.link_web",
                "field.file_not_found", "field.unknown_user", "field.number_too_many_digits",
                "fielddef.options_required", "definition.min_gt_max", "field.subtable_row"):
        assert i18n.translate(key) != key
        assert i18n.translate(key, "en") != key


# ----- MULTI_LINE_TEXT / RICH_TEXT -----
def test_multi_line_text_keeps_lines_and_checks_length():
    f = {"code": "memo", "type": "MULTI_LINE_TEXT", "maxLength": "5"}
    assert norm(f, "a\r\nb") == "a\nb"
    assert norm(f, None) == ""
    assert error_key(f, "123456") == "field.too_long"
    assert error_key(f, ["x"]) == "field.type_mismatch"
    assert get("MULTI_LINE_TEXT").to_db(f, "") is None


def test_rich_text_strips_scripts_handlers_and_javascript_urls():
    f = {"code": "body", "type": "RICH_TEXT"}
    html = ('<p onclick="steal()">申請<b>受付</b><script>alert(1)</script>'
            '<a href="javascript:alert(1)">x</a><a href="https://example.jp/">y</a>'
            '<img src="x.png" onerror="alert(1)"><span style="color: red; position: fixed">赤</span></p>')
    out = norm(f, html)
    assert "<script" not in out and "alert" not in out and "onerror" not in out and "onclick" not in out
    assert "javascript:" not in out
    assert "<b>受付</b>" in out and 'href="https://example.jp/"' in out
    assert "color:red" in out.replace(" ", "") and "position" not in out
    assert norm(f, out) == out


# ----- NUMBER -----
NUM = {"code": "amount", "type": "NUMBER"}


@pytest.mark.parametrize("value,expected", [
    (1234, "1234"), (-3, "-3"), (12.5, "12.5"), ("1,234", "1234"), ("1,234.50", "1234.5"),
    ("１２３４．５", "1234.5"), ("－３", "-3"), ("+7", "7"), (" 42 ", "42"), ("1e3", "1000"),
    ("0.000", "0"), ("-0", "0"), (".5", "0.5"), (Decimal("2.10"), "2.1"), ("", ""), (None, ""),
])
def test_number_canonical(value, expected):
    assert norm(NUM, value) == expected


@pytest.mark.parametrize("value", [
    True, False, "abc", "NaN", "Infinity", "inf", float("nan"), float("inf"), "1,23", "1.2.3", ".", "-",
    "1e", [1], {"v": 1}, "١٢",
])
def test_number_rejects(value):
    assert error_key(NUM, value) == "field.type_mismatch"


def test_number_limits_and_range():
    assert error_key(NUM, "1e40") == "field.number_too_many_digits"
    assert error_key(NUM, "0.00000000001") == "field.number_too_many_digits"
    f = dict(NUM, minValue="0", maxValue="100")
    assert norm(f, "100") == "100"
    assert error_key(f, "100.5") == "field.too_large"
    assert error_key(f, -1) == "field.too_small"


def test_number_db_and_query():
    ft = get("NUMBER")
    assert ft.to_db(NUM, "1234.5") == Decimal("1234.5")
    assert ft.to_db(NUM, "") is None
    assert ft.from_db(NUM, Decimal("1234.5000000000"), ctx()) == "1234.5"
    assert ft.from_db(NUM, 12.5, ctx()) == "12.5"  # SQLite may hand back a float
    assert ft.from_db(NUM, None, ctx()) == ""
    assert ft.query_value(NUM, "12.5", ctx()) == Decimal("12.5")
    with pytest.raises(FieldValueError):
        ft.query_value(NUM, "twelve", ctx())


def test_number_definition_checks():
    assert check(dict(NUM, minValue="10", maxValue="5")) == [("fields[0].minValue", "definition.min_gt_max")]
    assert check(dict(NUM, maxValue="abc")) == [("fields[0].maxValue", "fielddef.not_number")]
    assert check(dict(NUM, displayScale="11")) == [("fields[0].displayScale", "fielddef.display_scale")]
    assert check(dict(NUM, unitPosition="LEFT")) == [("fields[0].unitPosition", "fielddef.unit_position")]
    assert check(dict(NUM, maxValue="10", defaultValue="20")) == [("fields[0].defaultValue", "field.too_large")]
    assert check(dict(NUM, minValue="1", maxValue="10", displayScale="2", unit="円", unitPosition="AFTER",
                      digit=True, defaultValue="5")) == []


def test_number_convert_from_text():
    ft, text = get("NUMBER"), get("SINGLE_LINE_TEXT")
    assert ft.convert_from(NUM, text, "１，０００", ctx()) == "1000"
    assert ft.convert_from(NUM, get("DROP_DOWN"), ["3"], ctx()) == "3"
    with pytest.raises(FieldValueError) as e:
        ft.convert_from(NUM, text, "三", ctx())
    assert e.value.key == "field.cannot_convert"


numbers = st.one_of(
    st.integers(min_value=-10**29, max_value=10**29),
    st.decimals(min_value=Decimal("-1e29"), max_value=Decimal("1e29"), places=4, allow_nan=False),
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False).map(lambda x: round(x, 4)),
)


@given(numbers)
def test_number_normalise_is_idempotent_and_round_trips(value):
    out = norm(NUM, value)
    assert norm(NUM, out) == out
    assert roundtrip(NUM, out) == out
    assert "e" not in out.lower()
    assert Decimal(out) == Decimal(str(value))


@given(st.integers(min_value=-10**20, max_value=10**20))
def test_number_accepts_thousands_separators_and_full_width(n):
    grouped = f"{n:,}"
    full_width = grouped.translate(str.maketrans("0123456789,-", "０１２３４５６７８９，－"))
    assert norm(NUM, grouped) == str(n)
    assert norm(NUM, full_width) == str(n)


# ----- CALC -----
def test_calc_formats():
    ft = get("CALC")
    num = {"code": "total", "type": "CALC", "formula": "a*b", "format": "NUMBER_DIGIT"}
    assert norm(num, "1,000.50") == "1000.5"
    assert ft.to_db(num, "1000.5") == Decimal("1000.5")
    d = {"code": "due", "type": "CALC", "formula": "d+86400", "format": "DATE"}
    assert norm(d, "2026/4/2") == "2026-04-02"
    assert ft.to_db(d, "2026-04-02") == date(2026, 4, 2)
    assert error_key(d, "12") == "field.date_invalid"
    dt = {"code": "at", "type": "CALC", "formula": "x", "format": "DATETIME"}
    assert norm(dt, "2026-04-01T09:00:00+09:00") == "2026-04-01T00:00:00Z"
    assert ft.from_db(dt, datetime(2026, 4, 1), ctx()) == "2026-04-01T00:00:00Z"
    t = {"code": "t", "type": "CALC", "formula": "x", "format": "TIME"}
    assert norm(t, "9:05") == "09:05"
    hm = {"code": "h", "type": "CALC", "formula": "x", "format": "HOUR_MINUTE"}
    assert norm(hm, 5400) == "5400"
    assert type(ft.column_type(num)).__name__ == "Numeric"
    assert type(ft.column_type(d)).__name__ == "Date"
    assert type(ft.column_type(dt)).__name__ == "DateTime"
    assert type(ft.column_type(t)).__name__ == "Time"


def test_calc_definition():
    assert check({"code": "c", "type": "CALC", "formula": "", "format": "YEN"}) == [
        ("fields[0].formula", "fielddef.formula_required"), ("fields[0].format", "fielddef.calc_format")]
    assert check({"code": "c", "type": "CALC", "formula": "a+b", "format": "NUMBER"}) == []


# ----- choices -----
RADIO = {"code": "kind", "type": "RADIO_BUTTON", "options": ["新規", "変更", "廃止"]}
DROP = {"code": "ward", "type": "DROP_DOWN", "options": ["北区", "南区"]}
CHECK = {"code": "docs", "type": "CHECK_BOX", "options": ["住民票", "戸籍", "印鑑証明"]}


def test_radio_button_default_is_first_option():
    ft = get("RADIO_BUTTON")
    assert ft.default(RADIO, ctx()) == "新規"
    assert ft.default(dict(RADIO, defaultValue="変更"), ctx()) == "変更"
    assert norm(RADIO, "廃止") == "廃止"
    assert error_key(RADIO, "その他") == "field.not_an_option"


def test_drop_down_values():
    ft = get("DROP_DOWN")
    assert ft.default(DROP, ctx()) == ""
    assert norm(DROP, "") == "" and ft.to_db(DROP, "") is None
    assert norm(DROP, "南区") == "南区"
    assert error_key(DROP, "東区") == "field.not_an_option"
    assert ft.query_value(DROP, "北区", ctx()) == "北区"
    assert ft.query_value(DROP, "", ctx()) is None


def test_kintone_object_options_are_read_in_index_order():
    f = {"code": "x", "type": "DROP_DOWN", "options": {"B": {"label": "B", "index": "1"},
                                                       "A": {"label": "A", "index": "0"}}}
    assert get("CHECK_BOX").normalise(dict(f, type="CHECK_BOX"), ["B", "A"], ctx()) == ["A", "B"]
    assert check(f) == []


def test_option_definition_checks():
    assert check({"code": "x", "type": "RADIO_BUTTON", "options": []}) == [
        ("fields[0].options", "fielddef.options_required")]
    assert check({"code": "x", "type": "DROP_DOWN", "options": ["a", "a", ""]}) == [
        ("fields[0].options[1]", "fielddef.option_duplicate"), ("fields[0].options[2]", "fielddef.option_empty")]
    assert check(dict(RADIO, defaultValue="なし")) == [("fields[0].defaultValue", "fielddef.default_not_option")]
    assert check(dict(CHECK, defaultValue=["戸籍", "x"])) == [("fields[0].defaultValue", "fielddef.default_not_option")]
    assert check(dict(CHECK, defaultValue=["戸籍"])) == []


def test_check_box_keeps_option_order_and_rejects_unknown_values():
    ft = get("CHECK_BOX")
    assert norm(CHECK, ["印鑑証明", "住民票", "印鑑証明"]) == ["住民票", "印鑑証明"]
    assert norm(CHECK, None) == [] and norm(CHECK, []) == []
    assert error_key(CHECK, ["住民票", "パスポート"]) == "field.not_an_option"
    assert error_key(CHECK, {"a": 1}) == "field.type_mismatch"
    assert ft.to_db(CHECK, []) is None
    assert ft.from_db(CHECK, None, ctx()) == []
    assert ft.default(dict(CHECK, defaultValue=["戸籍"]), ctx()) == ["戸籍"]
    assert ft.from_csv(CHECK, "戸籍\n住民票", ctx()) == ["住民票", "戸籍"]
    assert ft.to_csv(CHECK, ["住民票", "戸籍"]) == "住民票\n戸籍"


@given(st.lists(st.sampled_from(CHECK["options"])))
def test_check_box_value_is_distinct_and_ordered(values):
    out = norm(CHECK, values)
    assert out == [o for o in CHECK["options"] if o in values]
    assert roundtrip(CHECK, out) == out


def test_choice_retyping():
    text, multi = get("SINGLE_LINE_TEXT"), get("MULTI_SELECT")
    ms = dict(CHECK, type="MULTI_SELECT")
    assert multi.convert_from(ms, text, "戸籍, 住民票", ctx()) == ["住民票", "戸籍"]
    assert multi.convert_from(ms, get("CHECK_BOX"), ["戸籍"], ctx()) == ["戸籍"]
    assert get("DROP_DOWN").convert_from(DROP, get("CHECK_BOX"), ["南区"], ctx()) == "南区"
    assert get("RADIO_BUTTON").convert_from(RADIO, text, "変更", ctx()) == "変更"
    for ft, f, old, value in [(get("DROP_DOWN"), DROP, multi, ["北区", "南区"]), (multi, ms, text, "パスポート")]:
        with pytest.raises(FieldValueError):
            ft.convert_from(f, old, value, ctx())


# ----- DATE and the era table -----
DATE = {"code": "day", "type": "DATE"}


@pytest.mark.parametrize("text,expected", [
    ("2026-04-01", "2026-04-01"), ("2026/4/1", "2026-04-01"), ("2026年4月1日", "2026-04-01"),
    ("２０２６／０４／０１", "2026-04-01"), ("20260401", "2026-04-01"),
    ("令和7年4月1日", "2025-04-01"), ("令和元年5月1日", "2019-05-01"), ("R7.4.1", "2025-04-01"),
    ("R07/04/01", "2025-04-01"), ("r7.4.1", "2025-04-01"), ("Ｒ７．４．１", "2025-04-01"),
    ("H31.4.30", "2019-04-30"), ("平成31年4月30日", "2019-04-30"), ("㍻31年4月30日", "2019-04-30"),
    ("S64.1.7", "1989-01-07"), ("平成元年1月8日", "1989-01-08"), ("昭和 51年 3月 9日", "1976-03-09"),
    ("T15.12.24", "1926-12-24"), ("大正元年7月30日", "1912-07-30"), ("M45.7.29", "1912-07-29"),
])
def test_date_accepts(text, expected):
    assert norm(DATE, text) == expected


@pytest.mark.parametrize("text,key", [
    ("H31.5.1", "field.date_outside_era"), ("平成32年1月1日", "field.date_outside_era"),
    ("S64.1.8", "field.date_outside_era"), ("R1.4.30", "field.date_outside_era"),
    ("令和0年5月1日", "field.date_nonexistent"), ("2026-02-29", "field.date_nonexistent"),
    ("2026-13-01", "field.date_nonexistent"), ("R7.2.30", "field.date_nonexistent"),
    ("yesterday", "field.date_invalid"), ("2026-04", "field.date_invalid"), (20260401, "field.date_invalid"),
    ("2026-04-01T00:00:00Z", "field.date_invalid"),
])
def test_date_rejects(text, key):
    assert error_key(DATE, text) == key


def test_era_table_boundaries():
    assert [e.name for e in ERAS] == ["明治", "大正", "昭和", "平成", "令和"]
    assert format_era(date(2025, 4, 1)) == "令和7年4月1日"
    assert format_era(date(2019, 5, 1)) == "令和元年5月1日"
    assert format_era(date(2019, 4, 30)) == "平成31年4月30日"
    assert format_era(date(1989, 1, 7)) == "昭和64年1月7日"
    assert format_era(date(2025, 4, 1), short=True) == "R7.4.1"
    for prev, era in zip(ERAS, ERAS[1:]):
        assert era_of(era.start) == era
        assert era_of(era.start - timedelta(days=1)) == prev


@given(st.dates(min_value=date(1868, 1, 1), max_value=date(2100, 12, 31)))
def test_era_format_round_trips(d):
    assert parse_date(format_era(d)) == d
    assert parse_date(format_era(d, short=True)) == d


@given(st.dates(min_value=date(1, 1, 1)))
def test_date_round_trips_through_the_database(d):
    out = norm(DATE, d.isoformat())
    assert out == d.isoformat()
    assert get("DATE").to_db(DATE, out) == d
    assert roundtrip(DATE, out) == out


def test_date_default_now_uses_the_context_time_zone():
    ft = get("DATE")
    f = dict(DATE, defaultNowValue=True)
    assert ft.default(f, ctx()) == "2026-04-01"  # 16:30 UTC is already 1 April in Tokyo
    assert ft.default(f, ctx(timezone="UTC")) == "2026-03-31"
    assert ft.default(DATE, ctx()) == ""
    assert ft.default(dict(DATE, defaultValue="R8.4.1"), ctx()) == "2026-04-01"


def test_date_query_and_retype():
    ft = get("DATE")
    assert ft.query_value(DATE, "2026-04-01", ctx()) == date(2026, 4, 1)
    assert ft.query_value(DATE, "", ctx()) is None
    with pytest.raises(FieldValueError):
        ft.query_value(DATE, "soon", ctx())
    assert ft.convert_from(DATE, get("DATETIME"), "2026-03-31T16:00:00Z", ctx()) == "2026-04-01"
    assert ft.convert_from(DATE, get("SINGLE_LINE_TEXT"), "令和8年4月1日", ctx()) == "2026-04-01"
    with pytest.raises(FieldValueError):
        ft.convert_from(DATE, get("SINGLE_LINE_TEXT"), "来週", ctx())


# ----- TIME -----
TIME = {"code": "at", "type": "TIME"}


@pytest.mark.parametrize("text,expected", [
    ("9:05", "09:05"), ("09:05:00", "09:05"), ("０９：０５", "09:05"), ("23:59:59", "23:59"),
    ("9時5分", "09:05"), ("0:00", "00:00"), ("", ""),
])
def test_time_accepts(text, expected):
    assert norm(TIME, text) == expected


@pytest.mark.parametrize("text", ["24:00", "9:60", "noon", "9", 905])
def test_time_rejects(text):
    assert error_key(TIME, text) == "field.time_invalid"


def test_time_db_default_and_query():
    ft = get("TIME")
    assert ft.to_db(TIME, "09:05") == time(9, 5)
    assert ft.from_db(TIME, time(9, 5, 30), ctx()) == "09:05"
    assert ft.default(dict(TIME, defaultNowValue=True), ctx()) == "01:30"
    assert ft.query_value(TIME, "17:15", ctx()) == time(17, 15)


# ----- DATETIME -----
DT = {"code": "when", "type": "DATETIME"}


@pytest.mark.parametrize("text,expected", [
    ("2026-04-01T09:00:00+09:00", "2026-04-01T00:00:00Z"),
    ("2026-04-01T00:00:59Z", "2026-04-01T00:00:00Z"),
    ("2026-04-01T09:30", "2026-04-01T00:30:00Z"),        # naive: Asia/Tokyo
    ("2026-04-01 09:30", "2026-04-01T00:30:00Z"),
    ("2026/4/1 9:30", "2026-04-01T00:30:00Z"),
    ("令和8年4月1日 9時30分", "2026-04-01T00:30:00Z"),
    ("令和8年4月1日9:30", "2026-04-01T00:30:00Z"),
    ("２０２６－０４－０１Ｔ００：００Ｚ", "2026-04-01T00:00:00Z"),
])
def test_datetime_accepts(text, expected):
    assert norm(DT, text) == expected


@pytest.mark.parametrize("text", ["2026-04-01T25:00Z", "tomorrow 9:00", "0001-01-01T00:00:00+09:00", 5])
def test_datetime_rejects(text):
    assert error_key(DT, text) == "field.datetime_invalid"


def test_datetime_db_default_and_query():
    ft = get("DATETIME")
    assert ft.to_db(DT, "2026-04-01T00:30:00Z") == datetime(2026, 4, 1, 0, 30)
    assert ft.from_db(DT, datetime(2026, 4, 1, 0, 30, 12), ctx()) == "2026-04-01T00:30:00Z"
    assert ft.default(dict(DT, defaultNowValue=True), ctx()) == "2026-03-31T16:30:00Z"
    assert ft.query_value(DT, "2026-04-01 09:00", ctx()) == datetime(2026, 4, 1, 0, 0)
    assert ft.query_value(DT, "2026-04-01T00:00:00Z", ctx(timezone="America/New_York")) == datetime(2026, 4, 1)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)))
def test_datetime_normalise_is_idempotent(dt):
    out = norm(DT, dt.isoformat())
    assert out.endswith(":00Z")
    assert norm(DT, out) == out
    assert roundtrip(DT, out) == out


# ----- LINK -----
def test_link_web():
    f = {"code": "url", "type": "LINK", "protocol": "WEB"}
    assert norm(f, " https://www.city.example.lg.jp/申請 ") == "https://www.city.example.lg.jp/申請"
    for bad in ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,x", "ftp://x.jp", "https://",
                "www.example.jp", "https://exa mple.jp"]:
        assert error_key(f, bad) == "field.link_web", bad
    assert error_key(dict(f, maxLength="10"), "https://example.jp/") == "field.too_long"


def test_link_mail_and_call():
    mail = {"code": "m", "type": "LINK", "protocol": "MAIL"}
    assert norm(mail, "taro＠example.lg.jp") == "taro@example.lg.jp"
    for bad in ["taro", "taro@", "@example.jp", "a b@example.jp", "mailto:a@b.jp"]:
        assert error_key(mail, bad) == "field.link_mail", bad
    call = {"code": "c", "type": "LINK", "protocol": "CALL"}
    assert norm(call, "０３－１２３４－５６７８") == "03-1234-5678"
    assert norm(call, "+81 (3) 1234-5678") == "+81 (3) 1234-5678"
    for bad in ["03-1234-abcd", "---", "tel:0312345678"]:
        assert error_key(call, bad) == "field.link_call", bad


def test_link_definition():
    assert check({"code": "l", "type": "LINK", "protocol": "FTP"}) == [("fields[0].protocol", "fielddef.link_protocol")]
    assert check({"code": "l", "type": "LINK", "protocol": "WEB", "defaultValue": "javascript:x"}) == [
        ("fields[0].defaultValue", "field.link_web")]


# ----- FILE -----
FILE = {"code": "att", "type": "FILE"}


def test_file_resolves_keys():
    ft = get("FILE")
    expected = [{"fileKey": "k1", "name": "申請書.pdf", "contentType": "application/pdf", "size": 1234}]
    assert norm(FILE, [{"fileKey": "k1"}]) == expected
    assert norm(FILE, ["k1", "k1"]) == expected
    assert norm(FILE, None) == []
    assert error_key(FILE, [{"fileKey": "missing"}]) == "field.file_not_found"
    assert error_key(FILE, [{"name": "a.pdf"}]) == "field.type_mismatch"
    assert ft.to_db(FILE, []) is None
    assert roundtrip(FILE, expected) == expected
    assert ft.to_csv(FILE, expected) == "申請書.pdf"
    assert ft.query_value(FILE, "申請", ctx()) == "申請"
    assert check(dict(FILE, thumbnailSize="100")) == [("fields[0].thumbnailSize", "fielddef.thumbnail_size")]
    assert check(dict(FILE, thumbnailSize="150")) == []


# ----- entity selects -----
USERSEL = {"code": "staff", "type": "USER_SELECT"}


def test_user_select():
    ft = get("USER_SELECT")
    assert norm(USERSEL, ["u1", {"code": "u2"}, "u1"]) == [
        {"code": "u1", "name": "山田 太郎"}, {"code": "u2", "name": "佐藤 花子"}]
    assert error_key(USERSEL, ["nobody"]) == "field.unknown_user"
    assert error_key(USERSEL, [""]) == "field.type_mismatch"
    assert error_key(USERSEL, [{"name": "x"}]) == "field.type_mismatch"
    assert ft.to_db(USERSEL, [{"code": "u1", "name": "山田 太郎"}]) == ["u1"]
    assert ft.to_db(USERSEL, []) is None
    assert ft.from_db(USERSEL, ["u2", "gone"], ctx()) == [
        {"code": "u2", "name": "佐藤 花子"}, {"code": "gone", "name": "gone"}]
    assert ft.query_value(USERSEL, "u1", ctx()) == "u1"
    assert ft.to_csv(USERSEL, [{"code": "u1", "name": "x"}, {"code": "u2", "name": "y"}]) == "u1\nu2"
    assert ft.from_csv(USERSEL, "u1\nu2\n", ctx()) == norm(USERSEL, ["u1", "u2"])


def test_user_select_default():
    ft = get("USER_SELECT")
    f = dict(USERSEL, defaultValue=[{"code": "LOGINUSER()", "type": "FUNCTION"}, {"code": "u2", "type": "USER"},
                                    {"code": "left", "type": "USER"}])
    assert [u["code"] for u in ft.default(f, ctx())] == ["u1", "u2"]
    assert [u["code"] for u in ft.default(f, ctx(user_code=None))] == ["u2"]
    assert check(f) == []
    assert check(dict(USERSEL, defaultValue=[{"code": "PRIMARY_ORGANIZATION()", "type": "FUNCTION"}])) == [
        ("fields[0].defaultValue[0]", "fielddef.entity_default")]


def test_organization_and_group_select_accept_codes():
    for name in ("ORGANIZATION_SELECT", "GROUP_SELECT"):
        f = {"code": "o", "type": name}
        assert norm(f, ["kikaku", {"code": "somu"}]) == [{"code": "kikaku", "name": "kikaku"},
                                                         {"code": "somu", "name": "somu"}]
        assert error_key(f, [" "]) == "field.type_mismatch"
        assert get(name).to_db(f, norm(f, ["kikaku"])) == ["kikaku"]


# ----- SUBTABLE -----
SUB = {"code": "items", "type": "SUBTABLE", "fields": [{"code": "item", "type": "SINGLE_LINE_TEXT"},
                                                       {"code": "qty", "type": "NUMBER"}]}


def test_subtable_outer_shape():
    assert norm(SUB, [{"value": {"item": "a"}}, {"id": "12", "value": {}}, {"id": 3, "value": {}}]) == [
        {"id": None, "value": {"item": "a"}}, {"id": 12, "value": {}}, {"id": 3, "value": {}}]
    assert norm(SUB, None) == []
    assert error_key(SUB, {"value": {}}) == "field.type_mismatch"
    assert error_key(SUB, [{"id": 1}]) == "field.subtable_row"
    assert error_key(SUB, [{"id": True, "value": {}}]) == "field.subtable_row"
    assert error_key(SUB, [{"id": "x", "value": {}}]) == "field.subtable_row"


def test_subtable_definition():
    assert check(SUB) == []
    assert check(dict(SUB, fields=[])) == [("fields[0].fields", "fielddef.subtable_empty")]
    bad = dict(SUB, fields=[{"code": "t", "type": "SUBTABLE", "fields": []}, {"code": "g", "type": "GROUP"},
                            {"code": "n", "type": "RECORD_NUMBER"}, {"code": "l", "type": "LABEL"},
                            {"code": "u", "type": "NOPE"}])
    assert [p for p, k in check(bad)] == [f"fields[0].fields[{i}].type" for i in range(5)]
    nested = dict(SUB, fields=[{"code": "k", "type": "DROP_DOWN", "options": []}])
    assert check(nested) == [("fields[0].fields[0].options", "fielddef.options_required")]


# ----- system fields -----
def test_system_fields_from_db():
    c = ctx()
    assert get("RECORD_NUMBER").from_db({}, 42, c) == "42"
    assert get("RECORD_NUMBER").query_value({}, "42", c) == 42
    assert get("CREATOR").from_db({}, "u1", c) == {"code": "u1", "name": "山田 太郎"}
    assert get("MODIFIER").from_db({}, None, c) == {"code": "", "name": ""}
    assert get("MODIFIER").query_value({}, "u2", c) == "u2"
    assert get("CREATED_TIME").from_db({}, datetime(2026, 4, 1, 0, 30, 59, 12), c) == "2026-04-01T00:30:00Z"
    assert get("UPDATED_TIME").query_value({}, "2026-04-01 09:00", c) == datetime(2026, 4, 1)
    assert get("STATUS").from_db({}, None, c) == ""
    assert get("STATUS").from_db({}, "受付", c) == "受付"
    assert get("STATUS_ASSIGNEE").from_db({}, ["u2"], c) == [{"code": "u2", "name": "佐藤 花子"}]
    assert get("STATUS_ASSIGNEE").from_db({}, None, c) == []
    assert get("STATUS_ASSIGNEE").to_db({}, [{"code": "u2", "name": "x"}]) == ["u2"]
    assert get("STATUS_ASSIGNEE").stores_list
    with pytest.raises(FieldValueError):
        get("RECORD_NUMBER").query_value({}, "abc", c)


def test_layout_fields():
    assert get("GROUP").normalise({}, None, ctx()) == ""
    with pytest.raises(FieldValueError):
        get("LABEL").normalise({}, "x", ctx())
    assert check({"code": "g", "type": "GROUP", "openGroup": "yes"}) == [("fields[0].openGroup", "fielddef.not_bool")]
    assert check({"code": "g", "type": "GROUP", "openGroup": True}) == []


# ----- values survive real columns (SQLite hands back floats for Numeric, strings for nothing else) -----
DB_CASES = [
    ({"type": "NUMBER"}, ["1234.5", "-3", "0.0000000001", "123456789012345"]),
    ({"type": "CALC", "formula": "x", "format": "NUMBER"}, ["1.5"]),
    ({"type": "CALC", "formula": "x", "format": "DATE"}, ["2026-04-01"]),
    ({"type": "DATE"}, ["2026-04-01", "0001-01-01"]),
    ({"type": "TIME"}, ["09:05"]),
    ({"type": "DATETIME"}, ["2026-04-01T00:30:00Z"]),
    ({"type": "MULTI_SELECT", "options": ["住民票", "戸籍"]}, [["住民票", "戸籍"]]),
    ({"type": "FILE"}, [[{"fileKey": "k1", "name": "申請書.pdf", "contentType": "application/pdf", "size": 1234}]]),
    ({"type": "USER_SELECT"}, [[{"code": "u1", "name": "山田 太郎"}]]),
    ({"type": "LINK", "protocol": "MAIL"}, ["taro@example.lg.jp"]),
]


@pytest.mark.parametrize("fdef,values", DB_CASES, ids=[f["type"] for f, _ in DB_CASES])
def test_values_survive_a_real_sqlite_column(fdef, values):
    from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select

    ft = get(fdef["type"])
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("v", ft.column_type(fdef)))
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        for value in values + [ft.empty_value()]:
            conn.execute(table.delete())
            conn.execute(insert(table).values(v=ft.to_db(fdef, value)))
            raw = conn.execute(select(table.c.v)).scalar()
            assert ft.from_db(fdef, raw, ctx()) == value
    engine.dispose()


# ----- robustness: arbitrary JSON never raises anything but FieldValueError -----
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
tricky_strings = st.sampled_from([
    "1e999999999", "-1e-999999999", "9" * 5000, "NaN", "sNaN", "R999.12.31", "M999.1.1", "H0.1.1",
    "9999-12-31T23:59:59-12:00", "0001-01-01T00:00+14:00", "令和元年", "javascript:alert(1)", "<script>x</script>", "１，２３４", "２５:６１",
    "2026年2月30日", "http://[::1", "LOGINUSER()", "\x00", "𠮷野家",
])

FDEFS = {
    "SINGLE_LINE_TEXT": {"maxLength": "20"}, "MULTI_LINE_TEXT": {"minLength": "1"}, "RICH_TEXT": {},
    "NUMBER": {"minValue": "-100", "maxValue": "100"}, "CALC": {"formula": "1", "format": "NUMBER"},
    "RADIO_BUTTON": {"options": ["a", "b"]}, "DROP_DOWN": {"options": ["a", "b"]},
    "CHECK_BOX": {"options": ["a", "b"]}, "MULTI_SELECT": {"options": ["a", "b"]},
    "LINK": {"protocol": "WEB"},
}


def _value_types():
    return sorted(n for n, t in all_types().items() if t.kind in ("scalar", "multi"))


@pytest.mark.parametrize("type_name", _value_types())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values | tricky_strings)
def test_normalise_only_raises_field_value_error(type_name, value):
    fdef = {"code": "f", "type": type_name, **FDEFS.get(type_name, {})}
    ft = get(type_name)
    try:
        out = ft.normalise(fdef, value, ctx())
    except FieldValueError as e:
        assert i18n.translate(e.key, **e.params) != e.key  # every message key is registered
        return
    # A value that was accepted is canonical: normalising again changes nothing, and it survives the DB.
    assert ft.normalise(fdef, out, ctx()) == out
    assert ft.from_db(fdef, ft.to_db(fdef, out), ctx()) == out


@pytest.mark.parametrize("fmt", ["NUMBER", "DATE", "TIME", "DATETIME", "HOUR_MINUTE"])
@settings(max_examples=60)
@given(value=json_values | tricky_strings)
def test_calc_normalise_only_raises_field_value_error(fmt, value):
    fdef = {"code": "c", "type": "CALC", "formula": "x", "format": fmt}
    try:
        get("CALC").normalise(fdef, value, ctx())
    except FieldValueError:
        pass


@pytest.mark.parametrize("type_name", _value_types())
@settings(max_examples=40)
@given(literal=st.text(max_size=30) | tricky_strings)
def test_query_value_only_raises_field_value_error(type_name, literal):
    fdef = {"code": "f", "type": type_name, **FDEFS.get(type_name, {})}
    try:
        get(type_name).query_value(fdef, literal, ctx())
    except FieldValueError:
        pass
