"""Message catalogue: Japanese first, English second.

Modules register their own messages with :func:`register` so that each concern keeps its text
beside its code. Keys are stable identifiers; params are formatted with ``str.format``.
"""
from __future__ import annotations

from typing import Mapping

_CATALOG: dict[str, tuple[str, str]] = {}
DEFAULT_LOCALE = "ja"


def register(messages: Mapping[str, tuple[str, str]]) -> None:
    for key, pair in messages.items():
        if key in _CATALOG and _CATALOG[key] != tuple(pair):
            raise ValueError(f"message key {key!r} registered twice with different text")
        _CATALOG[key] = tuple(pair)


def translate(key: str, locale: str = DEFAULT_LOCALE, **params) -> str:
    ja, en = _CATALOG.get(key, (key, key))
    template = en if locale == "en" else ja
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template


def negotiate(accept_language: str | None) -> str:
    """Pick 'ja' or 'en' from an Accept-Language header; Japanese unless English is preferred."""
    if not accept_language:
        return DEFAULT_LOCALE
    best, best_q = DEFAULT_LOCALE, -1.0
    for part in accept_language.split(","):
        bits = part.strip().split(";")
        lang = bits[0].strip().lower()
        q = 1.0
        for b in bits[1:]:
            b = b.strip()
            if b.startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        base = lang.split("-")[0]
        if base in ("ja", "en") and q > best_q:
            best, best_q = base, q
    return best


register({
    "bad_request": ("リクエストが正しくありません。", "The request is not valid."),
    "validation_failed": ("入力内容に誤りがあります。", "Some values are not valid."),
    "not_found": ("見つかりません。", "Not found."),
    "internal_error": ("サーバー内部でエラーが発生しました。", "An internal server error occurred."),
    "unauthorized": ("ログインが必要です。", "You need to log in."),
    "forbidden": ("この操作を行う権限がありません。", "You are not allowed to do this."),
    "payload_too_large": ("送信されたデータが大きすぎます。", "The request is too large."),
    "method_not_allowed": ("このメソッドは使えません。", "Method not allowed."),
    "invalid_json": ("JSONとして読み取れません: {detail}", "The body is not valid JSON: {detail}"),
})
