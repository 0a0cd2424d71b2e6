from __future__ import annotations

import nh3
from sqlalchemy import Text

from kumiki.fields._common import LONG_TEXT_OPS, to_text
from kumiki.fields.base import Context, FieldType

# Ordinary formatting survives; scripts, event handlers and javascript: URLs do not.
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = {"style"}
_STYLES = {"color", "background-color", "font-size", "font-weight", "font-style", "text-decoration",
           "text-align", "margin-left", "padding-left"}
_URL_SCHEMES = {"http", "https", "mailto", "tel"}


def sanitise(html: str) -> str:
    return nh3.clean(html, attributes=_ATTRIBUTES, filter_style_properties=_STYLES, url_schemes=_URL_SCHEMES)


class RichText(FieldType):
    type_name = "RICH_TEXT"
    label = ("リッチエディター", "Rich text")
    operators = LONG_TEXT_OPS
    sortable = False
    indexed = False
    properties = frozenset({"defaultValue"})

    def column_type(self, fdef):
        return Text()

    def normalise(self, fdef, value, ctx: Context):
        if value is None:
            return ""
        return sanitise(to_text(value))
