from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import Text

from kumiki import i18n
from kumiki.errors import Detail, FieldValueError
from kumiki.fields._common import check_bool_props, check_default, nfkc, to_text
from kumiki.fields.base import TEXT_OPS, Context, FieldType
from kumiki.fields.single_line_text import check_length, check_length_props

PROTOCOLS = ("WEB", "CALL", "MAIL")
_MAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+", re.ASCII)
_CALL = re.compile(r"[0-9+\-() ]*[0-9][0-9+\-() ]*", re.ASCII)
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>\"\\]")


class Link(FieldType):
    type_name = "LINK"
    label = ("リンク", "Link")
    operators = TEXT_OPS
    can_be_unique = True
    properties = frozenset({"protocol", "defaultValue", "minLength", "maxLength", "unique"})

    def column_type(self, fdef):
        return Text()

    def normalise(self, fdef, value, ctx: Context):
        if value is None:
            return ""
        text = to_text(value).strip()
        if not text:
            return ""
        if "\n" in text or "\r" in text:
            raise FieldValueError("field.single_line")
        protocol = fdef.get("protocol") or "WEB"
        if protocol == "MAIL":
            text = nfkc(text)
            if not _MAIL.fullmatch(text):
                raise FieldValueError("field.link_mail")
        elif protocol == "CALL":
            text = nfkc(text)
            if not _CALL.fullmatch(text):
                raise FieldValueError("field.link_call")
        elif not _is_web_url(text):
            raise FieldValueError("field.link_web")
        check_length(fdef, text)
        return text

    def check_definition(self, fdef, path):
        if fdef.get("protocol", "WEB") not in PROTOCOLS:
            return [Detail(f"{path}.protocol", "fielddef.link_protocol")]
        return (check_length_props(fdef, path) or check_bool_props(fdef, path, ("unique",))
                or check_default(self, fdef, path))


def _is_web_url(text: str) -> bool:
    if _FORBIDDEN.search(text):
        return False
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


i18n.register({
    "field.link_web": ("「http://」か「https://」で始まるURLを入力してください。",
                       "Enter a URL starting with http:// or https://."),
    "field.link_mail": ("メールアドレスを正しく入力してください。", "Enter a valid e-mail address."),
    "field.link_call": ("電話番号は数字と「+ - ( )」で入力してください。",
                        "Enter a phone number using digits and + - ( )."),
    "fielddef.link_protocol": ("リンクの種類は WEB、CALL、MAIL のいずれかで指定してください。",
                               "The link type must be WEB, CALL or MAIL."),
})
