"""Comments on records (コメント): replies one level deep, @mentions of users, groups and organizations.

Whoever may see a record may read and write its comments (as in kintone); RecordService decides
who may see it. A comment is withdrawn, not erased: its author or an app manager can delete it,
and it then shows as deleted in the thread. Mentions are checked against the directory; telling
the mentioned people (notifications) comes with the notifications work.
"""
from __future__ import annotations

from sqlalchemy import select

from kumiki import audit, i18n
from kumiki.errors import Detail, Forbidden, NotFound, ValidationError
from kumiki.model import Comment
from kumiki.model._common import utcnow
from kumiki.records import RecordService

MAX_LENGTH = 10_000
MENTION_TYPES = ("USER", "GROUP", "ORGANIZATION")

i18n.register({
    "comment.empty": ("コメントを入力してください。", "Write a comment."),
    "comment.too_long": ("コメントは{max}文字以内にしてください。", "Comments are limited to {max} characters."),
    "comment.not_found": ("コメントが見つかりません。", "Comment not found."),
    "comment.bad_mention": ("メンション先（{type}「{code}」）が見つかりません。", "Cannot mention {type} \"{code}\"."),
    "comment.reply_depth": ("返信への返信はできません。元のコメントに返信してください。",
                            "Reply to the original comment, not to a reply."),
    "comment.not_yours": ("自分のコメントだけを削除できます。", "You can delete only your own comments."),
})


def _check_mentions(svc: RecordService, mentions) -> list[dict]:
    from kumiki import directory

    if mentions is None:
        return []
    if not isinstance(mentions, list):
        raise ValidationError([Detail("mentions", "schema.invalid", {"detail": "list"})])
    out, errors = [], []
    for i, m in enumerate(mentions):
        code = m.get("code") if isinstance(m, dict) else None
        kind = (m.get("type") or "USER") if isinstance(m, dict) else None
        exists = isinstance(code, str) and kind in MENTION_TYPES and (
            svc._user_name(code) is not None if kind == "USER"
            else directory.group_exists(svc.session, code) if kind == "GROUP"
            else directory.org_exists(svc.session, code))
        if not exists:
            errors.append(Detail(f"mentions[{i}]", "comment.bad_mention", {"type": kind, "code": code}))
        else:
            out.append({"type": kind, "code": code})
    if errors:
        raise ValidationError(errors)
    return out


def add(svc: RecordService, app_id: int, record_id: int, text: str, mentions=None,
        parent_id: int | None = None) -> dict:
    svc.require_visible(app_id, record_id)
    text = (text or "").strip() if isinstance(text, str) else ""
    if not text:
        raise ValidationError([Detail("text", "comment.empty")])
    if len(text) > MAX_LENGTH:
        raise ValidationError([Detail("text", "comment.too_long", {"max": MAX_LENGTH})])
    checked = _check_mentions(svc, mentions)
    if parent_id is not None:
        parent = svc.session.get(Comment, parent_id)
        if parent is None or parent.app_id != app_id or parent.record_id != record_id:
            raise NotFound("comment.not_found")
        if parent.parent_id is not None:
            raise ValidationError([Detail("parent_id", "comment.reply_depth")])
    comment = Comment(app_id=app_id, record_id=record_id, parent_id=parent_id,
                      user_id=svc.user.id if svc.user else None, user_code=svc.user_code or "",
                      text=text, mentions=checked)
    svc.session.add(comment)
    svc.session.flush()
    audit.record(svc.session, "comment.create", **svc._audit_kwargs(app_id, record_id, {"comment_id": comment.id}))
    svc.session.commit()
    return _out(svc, comment)


def thread(svc: RecordService, app_id: int, record_id: int) -> list[dict]:
    """The record's comments, oldest first, replies under their comment."""
    svc.require_visible(app_id, record_id)
    rows = svc.session.scalars(select(Comment).where(Comment.app_id == app_id, Comment.record_id == record_id)
                               .order_by(Comment.id)).all()
    tops = [_out(svc, c) for c in rows if c.parent_id is None]
    by_id = {c["id"]: c for c in tops}
    for c in rows:
        if c.parent_id is not None and c.parent_id in by_id:
            by_id[c.parent_id]["replies"].append(_out(svc, c))
    svc._audit_read("comment.list", app_id, record_id)
    return tops


def delete(svc: RecordService, app_id: int, record_id: int, comment_id: int) -> None:
    svc.require_visible(app_id, record_id)
    comment = svc.session.get(Comment, comment_id)
    if comment is None or comment.app_id != app_id or comment.record_id != record_id or comment.deleted_at:
        raise NotFound("comment.not_found")
    if comment.user_code != svc.user_code and not svc.access(app_id).can("manage"):
        raise Forbidden("comment.not_yours")
    comment.deleted_at = utcnow()
    audit.record(svc.session, "comment.delete", **svc._audit_kwargs(app_id, record_id, {"comment_id": comment_id}))
    svc.session.commit()


def _out(svc: RecordService, c: Comment) -> dict:
    deleted = c.deleted_at is not None
    return {"id": c.id, "parent_id": c.parent_id,
            "creator": {"code": c.user_code, "name": svc._user_name(c.user_code) or c.user_code},
            "created_at": c.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "text": "" if deleted else c.text, "mentions": [] if deleted else (c.mentions or []),
            "deleted": deleted, "replies": []}
