"""The kintone query language parser: text -> AST, errors with positions, round trips."""
from __future__ import annotations

from string import Formatter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kumiki import i18n
from kumiki.errors import ValidationError
from kumiki.query import And, Condition, Function, Literal, Or, OrderItem, Query, parse_query, to_text
from kumiki.query.parser import MAX_NESTING


def C(field, op, value=None):
    return Condition(field, op, value)


def L(text):
    return Literal(text)


def error_of(text):
    with pytest.raises(ValidationError) as info:
        parse_query(text)
    err = info.value
    assert len(err.details) == 1
    detail = err.details[0]
    assert detail.path == "query"
    return detail


def message(detail, locale="ja"):
    return i18n.translate(detail.key, locale, **detail.params)


def assert_renders(detail):
    """The message exists in both languages and every placeholder has a param."""
    for locale in ("ja", "en"):
        template = i18n.translate(detail.key, locale)
        assert template != detail.key
        names = {name for _, name, _, _ in Formatter().parse(template) if name}
        assert names <= set(detail.params), (detail.key, names - set(detail.params))


# ----- basics ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [None, "", "   ", "\n\t", "\u3000"])
def test_empty_query(text):
    assert parse_query(text) == Query()


@pytest.mark.parametrize("op", ["=", "!=", ">", "<", ">=", "<=", "like", "not like"])
def test_binary_operators(op):
    assert parse_query(f'f {op} "x"').where == C("f", op, L("x"))


def test_in_not_in_and_empty():
    assert parse_query('f in ("a", "b")').where == C("f", "in", (L("a"), L("b")))
    assert parse_query('f not in ("a")').where == C("f", "not in", (L("a"),))
    assert parse_query("f is empty").where == C("f", "is empty")
    assert parse_query("f is not empty").where == C("f", "is not empty")


def test_keywords_are_case_insensitive():
    q = parse_query('a NOT IN ("x") AND b Like "y" Or c IS NOT EMPTY ORDER BY a DESC LIMIT 5 OFFSET 2')
    assert q == Query(
        where=Or((And((C("a", "not in", (L("x"),)), C("b", "like", L("y")))), C("c", "is not empty"))),
        order_by=(OrderItem("a", True),), limit=5, offset=2)


def test_and_binds_tighter_than_or():
    q = parse_query('a = "1" or b = "2" and c = "3" or d = "4"')
    assert q.where == Or((C("a", "=", L("1")), And((C("b", "=", L("2")), C("c", "=", L("3")))),
                          C("d", "=", L("4"))))


def test_parentheses_group():
    q = parse_query('(a = "1" or b = "2") and c = "3"')
    assert q.where == And((Or((C("a", "=", L("1")), C("b", "=", L("2")))), C("c", "=", L("3"))))
    # a parenthesised group of the same operator stays a group
    q = parse_query('a = "1" and (b = "2" and c = "3")')
    assert q.where == And((C("a", "=", L("1")), And((C("b", "=", L("2")), C("c", "=", L("3"))))))
    assert parse_query('((a = "1"))').where == C("a", "=", L("1"))


def test_string_escapes():
    q = parse_query(r'f = "say \"hi\" to C:\\dir"')
    assert q.where.value.text == 'say "hi" to C:\\dir'
    assert parse_query('f = ""').where.value == L("")
    # a newline inside a string is kept
    assert parse_query('f = "a\nb"').where.value == L("a\nb")


def test_numbers_bare_or_quoted_are_the_same():
    assert parse_query("n = 10").where == parse_query('n = "10"').where
    assert parse_query("n >= -2.5").where == C("n", ">=", L("-2.5"))
    assert parse_query("n in (1, 2)").where == C("n", "in", (L("1"), L("2")))


@pytest.mark.parametrize("code", ["氏名", "文字列__1行_", "数値_0", "顧客名（カナ）", "$id", "Field_12", "ｶﾅ", "・項目"])
def test_field_codes(code):
    assert parse_query(f'{code} = "x"').where == C(code, "=", L("x"))


def test_no_spaces_around_operators():
    assert parse_query('数値_0>=10').where == C("数値_0", ">=", L("10"))
    assert parse_query('文字列!="x"and 数値<3').where == And((C("文字列", "!=", L("x")), C("数値", "<", L("3"))))
    assert parse_query('f in("a","b")').where == C("f", "in", (L("a"), L("b")))


def test_full_width_space_is_whitespace():
    assert parse_query('氏名\u3000=\u3000"山田"').where == C("氏名", "=", L("山田"))


def test_keyword_lookalike_codes():
    # words that merely start with a keyword are field codes, and keywords where a field is expected
    q = parse_query('order_no = "1" and andon = "2" or limit_x = "3"')
    assert [c.field for c in (q.where.items[0].items + (q.where.items[1],))] == ["order_no", "andon", "limit_x"]
    assert parse_query('or = "1" and and = "2"').where == And((C("or", "=", L("1")), C("and", "=", L("2"))))


def test_functions():
    assert parse_query("d = TODAY()").where == C("d", "=", Function("TODAY"))
    assert parse_query("d = from_today(-3, days)").where == C("d", "=", Function("FROM_TODAY", ("-3", "DAYS")))
    assert parse_query("d = THIS_WEEK(SUNDAY)").where.value == Function("THIS_WEEK", ("SUNDAY",))
    assert parse_query("d = THIS_MONTH(LAST)").where.value == Function("THIS_MONTH", ("LAST",))
    assert parse_query('u in (LOGINUSER(), "sato")').where == C("u", "in", (Function("LOGINUSER"), L("sato")))


def test_order_limit_offset():
    q = parse_query('order by 作成日時 desc, 数値, $id asc limit 500 offset 100000')
    assert q == Query(order_by=(OrderItem("作成日時", True), OrderItem("数値"), OrderItem("$id")),
                      limit=500, offset=100000)
    # limit and offset in either order
    assert parse_query("offset 3 limit 2") == Query(limit=2, offset=3)
    assert parse_query('a = "1" limit 1') == Query(where=C("a", "=", L("1")), limit=1)


def test_positions_are_kept():
    q = parse_query('a = "1" and 氏名 like "x" order by b')
    cond = q.where.items[1]
    assert cond.pos == 12 and cond.value.pos == 20
    assert q.order_by[0].pos == 33


# ----- errors ---------------------------------------------------------------------------------

def test_syntax_error_position_and_expected():
    d = error_of('a = "1" b = "2"')
    assert d.key == "query.syntax"
    assert d.params["position"] == 9 and d.params["line"] == 1 and d.params["column"] == 9
    assert d.params["near"] == "b"
    assert "「and」" in d.params["expected"] and "「or」" in d.params["expected"]
    assert '"and"' in d.params["expected_en"]
    ja = message(d)
    assert "9文字目" in ja and "「b」" in ja
    en = message(d, "en")
    assert "character 9" in en and "expected" in en


def test_syntax_error_on_second_line():
    d = error_of('a = "1"\nand = "2"')
    assert d.params["line"] == 2 and d.params["column"] == 5


def test_missing_value():
    d = error_of("a =")
    assert d.key == "query.unexpected_end"
    assert d.params["position"] == 4
    assert "文字列" in d.params["expected"] and "数値" in d.params["expected"]


def test_unclosed_paren_and_string():
    assert error_of('(a = "1"').params["expected"] == "「)」"
    d = error_of('a = "abc')
    assert d.key == "query.unexpected_character" and d.params["position"] == 5


def test_unknown_operator():
    d = error_of('a == "1"')
    assert d.key == "query.syntax" and d.params["position"] == 4
    d = error_of('a contains "1"')
    assert d.key == "query.syntax" and d.params["near"] == "contains"
    assert "「like」" in d.params["expected"]


@pytest.mark.parametrize("text", ['f = "a\x00b"', 'f = "\ud800"', '\x00'])
def test_characters_a_database_cannot_take(text):
    d = error_of(text)
    assert d.key == "query.unexpected_character"


def test_empty_in_list_is_an_error():
    assert error_of("a in ()").params["position"] == 7


@pytest.mark.parametrize("text,key", [
    ("limit 0", "query.bad_limit"), ("limit 1.5", "query.bad_limit"), ("limit -1", "query.bad_limit"),
    ("offset -1", "query.bad_offset"), ("offset 2.0", "query.bad_offset"),
    ("limit 1 limit 2", "query.duplicate_clause"), ("offset 1 offset 1", "query.duplicate_clause"),
    ("order by a order by b", "query.duplicate_clause"),
])
def test_bad_options(text, key):
    assert error_of(text).key == key


def test_too_deep():
    text = "(" * (MAX_NESTING + 5) + 'a = "1"' + ")" * (MAX_NESTING + 5)
    assert error_of(text).key == "query.too_deep"
    ok = "(" * 20 + 'a = "1"' + ")" * 20
    assert parse_query(ok).where == C("a", "=", L("1"))


def test_long_chains_parse():
    text = " or ".join(f'f = "{i}"' for i in range(2000))
    q = parse_query(text)
    assert isinstance(q.where, Or) and len(q.where.items) == 2000


def test_error_messages_are_registered_in_both_languages():
    for text in ['a = "1" b', "a =", 'a = "x', "limit 0", "offset x"]:
        d = error_of(text)
        assert_renders(d)
        assert message(d) != message(d, "en")


# ----- properties -----------------------------------------------------------------------------

KEYWORDS = {"and", "or", "not", "in", "like", "is", "empty", "order", "by", "asc", "desc", "limit", "offset"}
code_chars = st.sampled_from(list("abcxyzABCXYZ_0123456789$・") + list("氏名数値日付テーブル作成者ｶﾅ"))
field_codes = st.one_of(
    st.just("$id"),
    st.text(code_chars, min_size=1, max_size=8).filter(lambda s: s.lower() not in KEYWORDS),
)
literals = st.builds(Literal, st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                                      max_size=12))
upper_words = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)
functions = st.builds(
    Function, st.one_of(st.sampled_from(["TODAY", "NOW", "FROM_TODAY", "THIS_WEEK", "LOGINUSER"]), upper_words),
    st.lists(st.one_of(st.integers(-1000, 1000).map(str), upper_words), max_size=3).map(tuple))
values = st.one_of(literals, literals, functions)
conditions = st.one_of(
    st.builds(Condition, field_codes, st.sampled_from(["=", "!=", ">", "<", ">=", "<=", "like", "not like"]), values),
    st.builds(Condition, field_codes, st.sampled_from(["in", "not in"]),
              st.lists(values, min_size=1, max_size=4).map(tuple)),
    st.builds(Condition, field_codes, st.sampled_from(["is empty", "is not empty"])),
)
exprs = st.recursive(
    conditions,
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=4).map(lambda xs: And(tuple(xs))),
        st.lists(children, min_size=2, max_size=4).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=12,
)
queries = st.builds(
    Query,
    st.one_of(st.none(), exprs),
    st.lists(st.builds(OrderItem, field_codes, st.booleans()), max_size=3).map(tuple),
    st.one_of(st.none(), st.integers(1, 10**6)),
    st.one_of(st.none(), st.integers(0, 10**9)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries)
def test_round_trip(q):
    text = to_text(q)
    assert parse_query(text) == q


tokens = st.sampled_from([
    "a", "氏名", "$id", "=", "!=", ">", "<=", "in", "not", "like", "is", "empty", "and", "or", "(", ")", ",",
    '"x"', '"', "\\", "10", "-1.5", "TODAY()", "FROM_TODAY(", "order", "by", "asc", "desc", "limit", "offset",
    "\u3000", "\n", "%", "_", "\x00", "😀",
])
garbage = st.one_of(st.text(max_size=60), st.lists(tokens, max_size=25).map(" ".join),
                    st.lists(tokens, max_size=25).map("".join))


@settings(max_examples=500, deadline=None)
@given(garbage)
def test_arbitrary_text_raises_only_validation_error(text):
    try:
        parse_query(text)
    except ValidationError as e:
        d = e.details[0]
        assert d.path == "query"
        assert_renders(d)
