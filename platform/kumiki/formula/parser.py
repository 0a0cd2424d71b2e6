"""Parse a formula into a small AST (lark LALR), with 1-based columns for located errors."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from kumiki import i18n
from kumiki.errors import Detail, ValidationError

MAX_LENGTH = 10_000
MAX_DEPTH = 200

_PARSER = Lark((Path(__file__).with_name("grammar.lark")).read_text(encoding="utf-8"),
               parser="lalr", propagate_positions=True, maybe_placeholders=False)


@dataclass(frozen=True)
class Num:
    value: Decimal


@dataclass(frozen=True)
class Str:
    value: str


@dataclass(frozen=True)
class Ref:
    code: str
    column: int


@dataclass(frozen=True)
class Call:
    name: str          # upper-cased
    args: tuple
    column: int


@dataclass(frozen=True)
class Unary:
    op: str            # "-" or "+"
    operand: object


@dataclass(frozen=True)
class Bin:
    op: str            # + - * / ^ & = != < > <= >=
    left: object
    right: object
    column: int


def _col(meta_or_token) -> int:
    return getattr(meta_or_token, "column", 0) or 0


@v_args(meta=True)
class _Build(Transformer):
    def number(self, meta, c):
        return Num(Decimal(str(c[0])))

    def string(self, meta, c):
        raw = str(c[0])[1:-1]
        out, i = [], 0
        while i < len(raw):
            ch = raw[i]
            if ch == "\\" and i + 1 < len(raw):
                nxt = raw[i + 1]
                out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
                i += 2
            else:
                out.append(ch)
                i += 1
        return Str("".join(out))

    def ref(self, meta, c):
        return Ref(str(c[0]), _col(c[0]))

    def call(self, meta, c):
        name = c[0]
        return Call(str(name).upper(), tuple(x for x in c[1:] if x is not None), _col(name))

    def neg(self, meta, c):
        return Unary("-", c[0])

    def pos(self, meta, c):
        return Unary("+", c[0])

    def _bin(op):  # noqa: N805 - helper building a method
        def method(self, meta, c):
            return Bin(op, c[0], c[1], _col(meta))
        return method

    add = _bin("+")
    sub = _bin("-")
    mul = _bin("*")
    div = _bin("/")
    pow = _bin("^")
    concat = _bin("&")

    def compare(self, meta, c):
        op = str(c[1])
        return Bin("!=" if op == "<>" else op, c[0], c[2], _col(c[1]))


def _depth(text: str) -> int:
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "(":
            depth += 1
            best = max(best, depth)
        elif ch == ")":
            depth -= 1
    return best


def parse(text: str):
    """Parse formula text into an AST; raise ValidationError([Detail("formula", ...)]) when it is not valid."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError([Detail("formula", "formula.empty")])
    if len(text) > MAX_LENGTH:
        raise ValidationError([Detail("formula", "formula.too_long", {"limit": MAX_LENGTH})])
    # Deeply nested input would exhaust the recursion limit of the tree walkers.
    if _depth(text) > MAX_DEPTH or sum(text.count(c) for c in "+-*/^&=<>") > MAX_DEPTH:
        raise ValidationError([Detail("formula", "formula.too_deep", {"limit": MAX_DEPTH})])
    try:
        tree = _PARSER.parse(text)
        return _Build().transform(tree)
    except UnexpectedEOF:
        raise ValidationError([Detail("formula", "formula.unexpected_end", {"column": len(text) + 1})]) from None
    except UnexpectedCharacters as e:
        raise _syntax(text, e) from None
    except UnexpectedToken as e:
        if e.token.type == "$END":
            raise ValidationError([Detail("formula", "formula.unexpected_end", {"column": len(text) + 1})]) from None
        raise _syntax(text, e) from None
    except UnexpectedInput as e:
        raise _syntax(text, e) from None
    except RecursionError:
        raise ValidationError([Detail("formula", "formula.too_deep", {"limit": MAX_DEPTH})]) from None
    except LarkError:
        raise ValidationError([Detail("formula", "formula.syntax", {"column": 1, "near": text[:10]})]) from None


def _syntax(text: str, e: UnexpectedInput) -> ValidationError:
    pos = getattr(e, "pos_in_stream", None)
    if pos is None:
        pos = 0
    column = e.column if isinstance(getattr(e, "column", None), int) and e.column > 0 else pos + 1
    near = text[pos:pos + 10] if 0 <= pos < len(text) else ""
    return ValidationError([Detail("formula", "formula.syntax", {"column": column, "near": near})])


i18n.register({
    "formula.empty": ("計算式を入力してください。", "Enter a formula."),
    "formula.too_long": ("計算式が長すぎます（{limit}文字まで）。", "The formula is too long (at most {limit} characters)."),
    "formula.too_deep": ("計算式の入れ子が深すぎます（{limit}段まで）。", "The formula is nested too deeply (at most {limit} levels)."),
    "formula.unexpected_end": ("計算式が途中で終わっています（{column}文字目）。括弧や引数が足りないか確認してください。",
                               "The formula ends too early (at character {column}); check brackets and arguments."),
    "formula.syntax": ("計算式の{column}文字目「{near}」付近に誤りがあります。",
                       "The formula has an error at character {column}, near \"{near}\"."),
})
