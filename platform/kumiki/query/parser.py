"""Query text -> AST.

The AST is made of small frozen dataclasses. Source positions (0-based offsets into the query
text) ride along for error messages but take no part in equality, so an AST rendered with
:func:`to_text` and parsed again compares equal to the original.

Every problem with the text is reported as :class:`~kumiki.errors.ValidationError` with one
:class:`~kumiki.errors.Detail` at path ``"query"`` whose params carry ``position`` (1-based
character), ``line`` and ``column``.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from kumiki import i18n
from kumiki.errors import Detail, ValidationError

MAX_QUERY_LENGTH = 100_000
MAX_NESTING = 64

# ----------------------------------------------------------------------------------------------
# AST


@dataclass(frozen=True)
class Literal:
    """A literal value. The language's literals are strings; bare numbers are kept as their text."""

    text: str
    pos: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Function:
    """A function call such as ``TODAY()`` or ``FROM_TODAY(-3, DAYS)``. Name and word args upper-case."""

    name: str
    args: tuple[str, ...] = ()
    pos: int | None = field(default=None, compare=False)


Value = Union[Literal, Function]


@dataclass(frozen=True)
class Condition:
    """``field op value``. ``value`` is a Value, a tuple of Values (in / not in) or None (is [not] empty)."""

    field: str
    op: str
    value: Value | tuple[Value, ...] | None = None
    pos: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class And:
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Or:
    items: tuple["Expr", ...]


Expr = Union[Condition, And, Or]


@dataclass(frozen=True)
class OrderItem:
    field: str
    desc: bool = False
    pos: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Query:
    where: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None


# ----------------------------------------------------------------------------------------------
# Messages

i18n.register({
    "query.invalid": ("クエリが正しくありません。", "The query is not valid."),
    "query.syntax": (
        "クエリの{position}文字目（{line}行{column}列）の「{near}」が正しくありません。{expected}が必要です。",
        "Unexpected \"{near}\" at character {position} (line {line}, column {column}) of the query; "
        "expected {expected_en}.",
    ),
    "query.unexpected_end": (
        "クエリが途中で終わっています（{position}文字目）。{expected}が必要です。",
        "The query ends too early (at character {position}); expected {expected_en}.",
    ),
    "query.unexpected_character": (
        "クエリの{position}文字目（{line}行{column}列）の文字「{near}」は使えません。",
        "The character \"{near}\" at character {position} (line {line}, column {column}) of the query is not allowed.",
    ),
    "query.too_long": ("クエリが長すぎます（{max}文字まで）。", "The query is too long (at most {max} characters)."),
    "query.too_deep": (
        "クエリの括弧の入れ子が深すぎます（{max}段まで）。",
        "The query nests parentheses too deeply (at most {max} levels).",
    ),
    "query.bad_limit": (
        "{position}文字目: limitには1以上の整数を指定してください。",
        "At character {position}: limit must be a whole number of at least 1.",
    ),
    "query.bad_offset": (
        "{position}文字目: offsetには0以上の整数を指定してください。",
        "At character {position}: offset must be a whole number of at least 0.",
    ),
    "query.duplicate_clause": (
        "{position}文字目: 「{clause}」が2回以上指定されています。",
        "At character {position}: \"{clause}\" is given more than once.",
    ),
    "query.bad_string": (
        "{position}文字目: 文字列の書き方が正しくありません。",
        "At character {position}: the string is not written correctly.",
    ),
})

# Terminal name -> (Japanese, English) description for "expected ..." lists.
_TERMINALS: dict[str, tuple[str, str]] = {
    "FIELD": ("フィールドコード", "a field code"),
    "STRING": ("文字列（\"…\"）", "a string (\"...\")"),
    "NUMBER": ("数値", "a number"),
    "NAME": ("関数名", "a function name"),
    "EQ": ("「=」", "\"=\""), "NE": ("「!=」", "\"!=\""), "GE": ("「>=」", "\">=\""),
    "LE": ("「<=」", "\"<=\""), "GT": ("「>」", "\">\""), "LT": ("「<」", "\"<\""),
    "LPAR": ("「(」", "\"(\""), "RPAR": ("「)」", "\")\""), "COMMA": ("「,」", "\",\""),
}
for _kw in ("AND", "OR", "NOT", "IN", "LIKE", "IS", "EMPTY", "ORDER", "BY", "ASC", "DESC", "LIMIT", "OFFSET"):
    _TERMINALS[_kw] = (f"「{_kw.lower()}」", f"\"{_kw.lower()}\"")
_TERMINALS["$END"] = ("クエリの終わり", "the end of the query")
# Order in which expected items are listed (most helpful first).
_TERMINAL_ORDER = list(_TERMINALS)


def _expected(names) -> tuple[str, str]:
    known = sorted({n for n in names if n in _TERMINALS}, key=_TERMINAL_ORDER.index)
    if not known:
        return "正しい続き", "something else"
    ja = [_TERMINALS[n][0] for n in known]
    en = [_TERMINALS[n][1] for n in known]
    if len(known) == 1:
        return ja[0], en[0]
    return "、".join(ja) + "のいずれか", "one of " + ", ".join(en)


def query_error(key: str, **params) -> ValidationError:
    return ValidationError([Detail("query", key, params)], key="query.invalid")


def _visible(s: str) -> str:
    return s if s.isprintable() else repr(s)[1:-1]


def _where(text: str, pos: int) -> dict:
    pos = max(0, min(pos, len(text)))
    before = text[:pos]
    line = before.count("\n") + 1
    column = pos - (before.rfind("\n") + 1) + 1
    return {"position": pos + 1, "line": line, "column": column}


# ----------------------------------------------------------------------------------------------
# Parsing


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", maybe_placeholders=False)


def parse_query(text: str | None) -> Query:
    """Parse query text into a :class:`Query`. Raises ValidationError on any problem."""
    if text is None:
        return Query()
    if not isinstance(text, str):
        raise query_error("query.syntax", near=str(text)[:20], expected="文字列", expected_en="a string",
                          position=1, line=1, column=1)
    if len(text) > MAX_QUERY_LENGTH:
        raise query_error("query.too_long", max=MAX_QUERY_LENGTH)
    bad = _UNSTORABLE.search(text)
    if bad:  # NUL and lone surrogates cannot be sent to the database (PostgreSQL refuses them)
        raise query_error("query.unexpected_character", near=_visible(bad.group()), **_where(text, bad.start()))
    if len(text) <= _CACHE_MAX_TEXT:
        return _parse_cached(text)
    return _parse(text)


_CACHE_MAX_TEXT = 2000
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@functools.lru_cache(maxsize=1024)
def _parse_cached(text: str) -> Query:
    return _parse(text)


def _parse(text: str) -> Query:
    try:
        tree = _lark().parse(text)
    except UnexpectedCharacters as e:
        raise query_error("query.unexpected_character", near=_visible(text[e.pos_in_stream:e.pos_in_stream + 1]),
                          **_where(text, e.pos_in_stream)) from None
    except UnexpectedEOF as e:
        ja, en = _expected(e.expected)
        raise query_error("query.unexpected_end", expected=ja, expected_en=en, **_where(text, len(text))) from None
    except UnexpectedToken as e:
        ja, en = _expected(e.accepts or e.expected)
        tok = e.token
        if tok.type == "$END":
            raise query_error("query.unexpected_end", expected=ja, expected_en=en,
                              **_where(text, len(text))) from None
        pos = tok.start_pos if tok.start_pos is not None else len(text)
        raise query_error("query.syntax", near=_visible(str(tok)[:40]), expected=ja, expected_en=en,
                          **_where(text, pos)) from None
    except UnexpectedInput as e:  # pragma: no cover - other lark input errors
        pos = getattr(e, "pos_in_stream", None) or 0
        raise query_error("query.syntax", near=text[pos:pos + 1], expected="正しい続き",
                          expected_en="something else", **_where(text, pos)) from None
    except LarkError:  # pragma: no cover - defensive: never let a parser bug become a 500
        raise query_error("query.syntax", near=text[:20], expected="正しい続き", expected_en="something else",
                          **_where(text, 0)) from None
    return _Builder(text).query(tree)


_ESCAPE = re.compile(r"\\(.)", re.S)


class _Builder:
    """Parse tree -> AST, with positions."""

    def __init__(self, text: str):
        self.text = text

    def err(self, key: str, pos: int | None, **params) -> ValidationError:
        return query_error(key, **params, **_where(self.text, pos or 0))

    def query(self, tree: Tree) -> Query:
        where = None
        order: tuple[OrderItem, ...] | None = None
        limit = offset = None
        for child in tree.children:
            if child.data == "option":  # pragma: no cover - options are always aliased
                continue
            if child.data == "order_by":
                if order is not None:
                    raise self.err("query.duplicate_clause", child.children[0].start_pos, clause="order by")
                order = tuple(self.order_item(c) for c in child.children if isinstance(c, Tree))
            elif child.data == "limit":
                if limit is not None:
                    raise self.err("query.duplicate_clause", child.children[0].start_pos, clause="limit")
                tok = child.children[1]
                if not re.fullmatch(r"[0-9]+", tok) or int(tok) < 1:
                    raise self.err("query.bad_limit", tok.start_pos)
                limit = int(tok)
            elif child.data == "offset":
                if offset is not None:
                    raise self.err("query.duplicate_clause", child.children[0].start_pos, clause="offset")
                tok = child.children[1]
                if not re.fullmatch(r"[0-9]+", tok):
                    raise self.err("query.bad_offset", tok.start_pos)
                offset = int(tok)
            else:
                where = self.expr(child, 0)
        return Query(where=where, order_by=order or (), limit=limit, offset=offset)

    def order_item(self, tree: Tree) -> OrderItem:
        field_tok = tree.children[0]
        desc = len(tree.children) > 1 and tree.children[1].type == "DESC"
        return OrderItem(str(field_tok), desc, field_tok.start_pos)

    def expr(self, tree: Tree, depth: int):
        if depth > MAX_NESTING:
            node = tree
            while isinstance(node, Tree) and node.children:
                node = node.children[0]
            raise self.err("query.too_deep", getattr(node, "start_pos", 0), max=MAX_NESTING)
        kind = tree.data
        if kind in ("or_", "and_"):
            items = tuple(self.expr(c, depth) for c in tree.children if isinstance(c, Tree))
            if len(items) == 1:
                return items[0]
            return Or(items) if kind == "or_" else And(items)
        if kind == "group":
            return self.expr(tree.children[1], depth + 1)
        return self.condition(tree)

    def condition(self, tree: Tree) -> Condition:
        kind = tree.data
        ch = tree.children
        field_tok: Token = ch[0]
        code, pos = str(field_tok), field_tok.start_pos
        if kind == "compare":
            op = str(ch[1].children[0])
            return Condition(code, op, self.value(ch[2]), pos)
        if kind == "in_":
            return Condition(code, "in", self.value_list(ch[2]), pos)
        if kind == "not_in":
            return Condition(code, "not in", self.value_list(ch[3]), pos)
        if kind == "like":
            return Condition(code, "like", self.value(ch[2]), pos)
        if kind == "not_like":
            return Condition(code, "not like", self.value(ch[3]), pos)
        if kind == "is_empty":
            return Condition(code, "is empty", None, pos)
        if kind == "is_not_empty":
            return Condition(code, "is not empty", None, pos)
        raise AssertionError(kind)  # pragma: no cover

    def value_list(self, tree: Tree) -> tuple[Value, ...]:
        return tuple(self.value(c) for c in tree.children if isinstance(c, Tree))

    def value(self, tree: Tree) -> Value:
        kind = tree.data
        tok: Token = tree.children[0]
        if kind == "string":
            return Literal(_ESCAPE.sub(r"\1", tok[1:-1]), tok.start_pos)
        if kind == "number":
            return Literal(str(tok), tok.start_pos)
        # func
        args = tuple(str(a.children[0]).upper() for a in tree.children if isinstance(a, Tree))
        return Function(str(tok).upper(), args, tok.start_pos)


# ----------------------------------------------------------------------------------------------
# Rendering (AST -> text); the inverse of parse_query for valid ASTs.


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value_text(v: Value) -> str:
    if isinstance(v, Function):
        return f"{v.name}({', '.join(v.args)})"
    return quote(v.text)


def _expr_text(e: Expr) -> str:
    if isinstance(e, Condition):
        if e.op in ("is empty", "is not empty"):
            return f"{e.field} {e.op}"
        if e.op in ("in", "not in"):
            return f"{e.field} {e.op} ({', '.join(_value_text(v) for v in e.value)})"
        return f"{e.field} {e.op} {_value_text(e.value)}"
    if isinstance(e, And):
        return " and ".join(f"({_expr_text(i)})" if isinstance(i, (And, Or)) else _expr_text(i) for i in e.items)
    return " or ".join(f"({_expr_text(i)})" if isinstance(i, Or) else _expr_text(i) for i in e.items)


def to_text(q: Query | Expr) -> str:
    """Render an AST as query text (canonical spacing, every literal quoted)."""
    if not isinstance(q, Query):
        return _expr_text(q)
    parts = []
    if q.where is not None:
        parts.append(_expr_text(q.where))
    if q.order_by:
        parts.append("order by " + ", ".join(f"{o.field} {'desc' if o.desc else 'asc'}" for o in q.order_by))
    if q.limit is not None:
        parts.append(f"limit {q.limit}")
    if q.offset is not None:
        parts.append(f"offset {q.offset}")
    return " ".join(parts)


def referenced_fields(query: Query) -> set[str]:
    """Field codes a query filters or sorts on (used to decide which columns get an index)."""
    codes: set[str] = {item.field for item in query.order_by}
    stack = [query.where] if query.where is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, Condition):
            codes.add(node.field)
        else:
            stack.extend(node.items)
    return codes
