from __future__ import annotations

from kumiki.fields._system import AssigneesField


class StatusAssignee(AssigneesField):
    type_name = "STATUS_ASSIGNEE"
    label = ("作業者", "Assignee")
