from __future__ import annotations

from kumiki.fields._system import RecordNumberField


class RecordNumber(RecordNumberField):
    type_name = "RECORD_NUMBER"
    label = ("レコード番号", "Record number")
