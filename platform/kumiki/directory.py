"""The directory: organizations as a tree, groups (roles), users' memberships, and its CSV import.

All directory logic lives here; the REST API (:mod:`kumiki.api.directory`) and the CLI
(:mod:`kumiki.cli_directory`) are thin. Functions take a session and flush; the caller commits.

Organizations form a tree (板橋区 › 健康生きがい部 › 健康推進課 › 板橋健康福祉センター). A user belongs
to any number of organizations; when they belong to at least one, exactly one is their primary
organization (主所属) — the first listed unless another is named. Groups are flat roles
(保健師, 庶務担当…). Codes are what other things refer to (records' 組織選択/グループ選択 values,
permissions), so a code never changes; names and places in the tree do.

CSV import (組織・グループ・所属の読み込み)
------------------------------------------
One file, one row per thing, made in Excel and saved as "CSV UTF-8" or plain "CSV" (Shift_JIS/CP932):
both are read (UTF-8 with or without BOM first, then CP932). The first row holds the column names:

=============  ==========================================================================
列 (column)    内容
=============  ==========================================================================
種別           ``組織`` / ``グループ`` / ``所属`` (required). Also ``組織所属`` / ``グループ所属``
               when a code is used by both an organization and a group.
コード         組織: its code. グループ: its code. 所属: the code of the organization or group.
名前           組織・グループ: the name (required).
親組織コード   組織: the code of the parent organization; blank = top level. The parent may be
               defined further down the file or already exist.
ユーザー       所属: the user's login name (the user must already exist).
主所属         所属: ``○`` (or 1 / はい / true) marks the user's primary organization; blank = no.
表示順         組織 (optional): an integer ordering siblings; blank keeps it (new ones go last).
説明           グループ (optional): a description.
=============  ==========================================================================

Only 種別 and コード are required as columns; unused cells stay blank. English column names
(kind, code, name, parent, user, primary, position, description) are accepted too. Blank rows and
rows whose 種別 starts with ``#`` are skipped. Example::

    種別,コード,名前,親組織コード,ユーザー,主所属
    組織,itabashi,板橋区,,,
    組織,kenko-ikigai,健康生きがい部,itabashi,,
    組織,kenko-suishin,健康推進課,kenko-ikigai,,
    組織,itabashi-hc,板橋健康福祉センター,kenko-suishin,,
    グループ,hokenshi,保健師,,,
    所属,itabashi-hc,,,sato,○
    所属,kenko-suishin,,,sato,
    所属,hokenshi,,,sato,

Rules: organizations and groups are matched by code (new ones are created, existing ones updated),
so importing the same file twice changes nothing. A user named in 所属 rows gets exactly the
organizations listed for them (and exactly the groups, when group rows name them): a transfer
(人事異動) is one file. Users not named keep their memberships; nothing is deleted otherwise.
The import is all or nothing: if any row is wrong nothing is written, and every error is reported
with its place, ``rows[12].親組織コード: 組織コード「X」はありません。`` where 12 is the row number as
Excel shows it (the header is row 1).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kumiki import i18n
from kumiki.errors import Conflict, Detail, NotFound, ValidationError
from kumiki.model import User
from kumiki.model.directory import Group, Organization, UserGroup, UserOrganization

CODE_MAX, NAME_MAX, POSITION_MAX = 128, 255, 2**31 - 1
UNSET = object()

i18n.register({
    "directory.code_required": ("コードを入れてください。", "Enter a code."),
    "directory.bad_code": ("コードは{max}文字以内で、「/」と制御文字は使えません。",
                           "Codes have at most {max} characters and may not contain \"/\" or control characters."),
    "directory.name_required": ("名前を入れてください。", "Enter a name."),
    "directory.name_too_long": ("名前は{max}文字以内にしてください。", "Names have at most {max} characters."),
    "directory.org_not_found": ("組織「{code}」が見つかりません。", "The organization \"{code}\" was not found."),
    "directory.group_not_found": ("グループ「{code}」が見つかりません。", "The group \"{code}\" was not found."),
    "directory.user_not_found": ("ユーザー「{code}」が見つかりません。", "The user \"{code}\" was not found."),
    "directory.org_unknown": ("組織コード「{code}」はありません。", "There is no organization with the code \"{code}\"."),
    "directory.group_unknown": ("グループコード「{code}」はありません。", "There is no group with the code \"{code}\"."),
    "directory.user_unknown": ("ユーザー「{code}」はありません。", "There is no user \"{code}\"."),
    "directory.org_exists": ("組織コード「{code}」は既に使われています。", "The organization code \"{code}\" is already taken."),
    "directory.group_exists": ("グループコード「{code}」は既に使われています。", "The group code \"{code}\" is already taken."),
    "directory.cycle": ("組織「{code}」を「{parent}」の下には移せません。「{parent}」は「{code}」自身かその下位組織です。",
                        "Cannot move \"{code}\" under \"{parent}\": \"{parent}\" is \"{code}\" itself or one of its sub-organizations."),
    "directory.has_children": ("組織「{code}」には下位組織が{count}件あるため削除できません。先に下位組織を移動するか削除してください。",
                               "The organization \"{code}\" has {count} sub-organization(s) and cannot be deleted; move or delete them first."),
    "directory.has_members": ("組織「{code}」には所属ユーザーが{count}人いるため削除できません。先に所属を外してください。",
                              "The organization \"{code}\" has {count} member(s) and cannot be deleted; remove them first."),
    "directory.primary_not_member": ("主所属「{code}」は所属組織の一覧にも入れてください。",
                                     "The primary organization \"{code}\" must be one of the user's organizations."),
    "directory.bad_position": ("表示順は整数（0〜{max}）で入れてください。", "The position must be an integer from 0 to {max}."),
    "directory.bad_name": ("名前に制御文字は使えません。", "Names may not contain control characters."),
    "directory.bad_text": ("説明にNUL文字は使えません。", "The description may not contain NUL characters."),
    # CSV import
    "directory.csv_invalid": ("ファイルの{rows}行に誤りがあります。何も読み込んでいません。",
                              "{rows} row(s) of the file have errors; nothing was imported."),
    "directory.csv_bad_encoding_option": ("文字コードは auto / utf-8 / cp932 のどれかを指定してください。",
                                          "The encoding must be auto, utf-8 or cp932."),
    "directory.csv_encoding": ("ファイルの文字コードを判別できません。UTF-8 か Shift_JIS（CP932）で保存してください。",
                               "Cannot tell the file's encoding; save it as UTF-8 or Shift_JIS (CP932)."),
    "directory.csv_not_encoding": ("ファイルは{encoding}として読めません。", "The file is not valid {encoding}."),
    "directory.csv_unreadable": ("CSVとして読み取れません（{detail}）。", "Not readable as CSV ({detail})."),
    "directory.csv_empty": ("ファイルが空です。1行目に見出し（種別,コード,…）を書いてください。",
                            "The file is empty; put the column names (種別,コード,…) in the first row."),
    "directory.csv_unknown_column": ("列「{column}」は使えません。使える列: {allowed}",
                                     "Unknown column \"{column}\". Allowed: {allowed}"),
    "directory.csv_missing_column": ("列「{column}」がありません。", "The column \"{column}\" is missing."),
    "directory.csv_duplicate_column": ("列「{column}」が2つあります。", "The column \"{column}\" appears twice."),
    "directory.csv_extra_cells": ("見出しより右のセルに値があります。", "There are values to the right of the last column."),
    "directory.csv_bad_kind": ("種別「{value}」は使えません（組織・グループ・所属のどれか）。",
                               "Unknown kind \"{value}\" (use 組織, グループ or 所属)."),
    "directory.csv_required": ("値を入れてください。", "This value is required."),
    "directory.csv_duplicate": ("コード「{code}」は{row}行目にもあります。", "The code \"{code}\" is also on row {row}."),
    "directory.csv_self_parent": ("自分自身を親組織にはできません。", "An organization cannot be its own parent."),
    "directory.csv_cycle": ("親組織をたどると組織「{code}」自身に戻ります（循環しています）。",
                            "Following the parents leads back to \"{code}\" (a cycle)."),
    "directory.csv_ambiguous": ("コード「{code}」は組織にもグループにもあります。種別を「組織所属」か「グループ所属」にしてください。",
                                "\"{code}\" is both an organization and a group; use the kind 組織所属 or グループ所属."),
    "directory.csv_unknown_target": ("組織・グループのコード「{code}」はありません。",
                                     "There is no organization or group with the code \"{code}\"."),
    "directory.csv_bad_flag": ("「{value}」は読めません。主所属なら ○、そうでなければ空欄にしてください。",
                               "Cannot read \"{value}\"; put ○ for the primary organization, otherwise leave it blank."),
    "directory.csv_primary_twice": ("ユーザー「{user}」の主所属は{row}行目にもあります。主所属は1人に1つです。",
                                    "The user \"{user}\" already has a primary organization on row {row}; only one is allowed."),
    "directory.csv_primary_group": ("主所属は組織の所属にだけ付けられます。", "Only an organization can be primary."),
})


# --------------------------------------------------------------------------------------------
# What the permission engine asks
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Principal:
    user_id: int | None
    code: str | None                       # user code
    is_admin: bool
    organizations: frozenset[str]          # codes of the organizations the user belongs to
    organizations_up: frozenset[str]       # those plus all their ancestors
    primary_organization: str | None       # code
    groups: frozenset[str]                 # group codes


ANONYMOUS = Principal(None, None, False, frozenset(), frozenset(), None, frozenset())


def principal_of(session: Session, user) -> Principal:
    """Who ``user`` is for permission checks (None or an anonymous user → an empty principal). 2-3 queries."""
    user_id = getattr(user, "id", None) if user is not None and getattr(user, "is_authenticated", True) else None
    if user_id is None:
        return ANONYMOUS
    rows = session.execute(
        select(Organization.code, Organization.path, UserOrganization.is_primary)
        .join(UserOrganization, UserOrganization.organization_id == Organization.id)
        .where(UserOrganization.user_id == user_id)).all()
    own = frozenset(r.code for r in rows)
    ancestor_ids = {int(p) for r in rows for p in r.path.strip("/").split("/")[:-1] if p}
    up = own
    if ancestor_ids:
        up = own | frozenset(session.scalars(select(Organization.code).where(Organization.id.in_(ancestor_ids))))
    groups = frozenset(session.scalars(
        select(Group.code).join(UserGroup, UserGroup.group_id == Group.id).where(UserGroup.user_id == user_id)))
    primary = next((r.code for r in rows if r.is_primary), None)
    return Principal(user_id, user.code, bool(user.is_admin), own, up, primary, groups)


def descendants(session: Session, org_code: str) -> list[str]:
    """Codes of the organization (first) and everything below it ([] if there is none)."""
    if not _searchable(org_code):
        return []
    root = select(Organization.path).where(Organization.code == org_code).scalar_subquery()
    return list(session.scalars(select(Organization.code).where(Organization.path.startswith(root))
                                .order_by(Organization.path)))


def ancestors(session: Session, org_code: str) -> list[str]:
    """Codes from the root down to the organization itself ([] if there is none)."""
    org = session.scalar(select(Organization).where(Organization.code == org_code)) \
        if _searchable(org_code) else None
    if org is None:
        return []
    by_id = dict(session.execute(select(Organization.id, Organization.code)
                                 .where(Organization.id.in_(org.ids()))).all())
    return [by_id[i] for i in org.ids() if i in by_id]


def org_exists(session: Session, code: str) -> bool:
    return _searchable(code) and session.scalar(select(Organization.id).where(Organization.code == code)) is not None


def group_exists(session: Session, code: str) -> bool:
    return _searchable(code) and session.scalar(select(Group.id).where(Group.code == code)) is not None


# --------------------------------------------------------------------------------------------
# Lookups and checks
# --------------------------------------------------------------------------------------------

def _searchable(code) -> bool:
    """Whether ``code`` may be sent to the database at all (PostgreSQL refuses NUL characters)."""
    return isinstance(code, str) and "\x00" not in code


def get_organization(session: Session, code: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.code == code)) if _searchable(code) else None
    if org is None:
        raise NotFound("directory.org_not_found", code=code)
    return org


def get_group(session: Session, code: str) -> Group:
    group = session.scalar(select(Group).where(Group.code == code)) if _searchable(code) else None
    if group is None:
        raise NotFound("directory.group_not_found", code=code)
    return group


def get_user(session: Session, code: str) -> User:
    user = session.scalar(select(User).where(User.code == code)) if _searchable(code) else None
    if user is None:
        raise NotFound("directory.user_not_found", code=code)
    return user


def _code_problem(code) -> Detail | None:
    """The Detail (without path) that makes ``code`` unusable, or None."""
    if not isinstance(code, str) or not code.strip():
        return Detail("", "directory.code_required")
    if len(code) > CODE_MAX or "/" in code or any(ord(c) < 32 or ord(c) == 127 for c in code):
        return Detail("", "directory.bad_code", {"max": CODE_MAX})
    return None


def _name_problem(name) -> Detail | None:
    if not isinstance(name, str) or not name.strip():
        return Detail("", "directory.name_required")
    if len(name.strip()) > NAME_MAX:
        return Detail("", "directory.name_too_long", {"max": NAME_MAX})
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return Detail("", "directory.bad_name")
    return None


def _position_problem(value) -> Detail | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            value = None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= POSITION_MAX:
        return Detail("", "directory.bad_position", {"max": POSITION_MAX})
    return None


def _text_problem(text) -> Detail | None:
    return Detail("", "directory.bad_text") if isinstance(text, str) and "\x00" in text else None


def _check(path: str, problem: Detail | None) -> None:
    if problem is not None:
        problem.path = path
        raise ValidationError([problem])


def _new_code(code, path: str = "code") -> str:
    _check(path, _code_problem(code))
    return code.strip()


def _new_name(name, path: str = "name") -> str:
    _check(path, _name_problem(name))
    return name.strip()


def _position(value, path: str = "position") -> int | None:
    _check(path, _position_problem(value))
    return None if value is None else int(value)


def _next_position(session: Session, parent_id: int | None) -> int:
    same_parent = Organization.parent_id.is_(None) if parent_id is None else Organization.parent_id == parent_id
    return (session.scalar(select(func.max(Organization.position)).where(same_parent)) or 0) + 1


# --------------------------------------------------------------------------------------------
# Organizations
# --------------------------------------------------------------------------------------------

def create_organization(session: Session, code: str, name: str, parent: str | None = None,
                        position: int | None = None) -> Organization:
    code, name, position = _new_code(code), _new_name(name), _position(position)
    if org_exists(session, code):
        raise ValidationError([Detail("code", "directory.org_exists", {"code": code})])
    parent_org = _parent(session, parent)
    parent_id = parent_org.id if parent_org else None
    org = Organization(code=code, name=name, parent_id=parent_id, path="",
                       position=position if position is not None else _next_position(session, parent_id))
    session.add(org)
    session.flush()
    org.path = (parent_org.path if parent_org else "/") + f"{org.id}/"
    session.flush()
    return org


def _parent(session: Session, code: str | None) -> Organization | None:
    if code is None or code == "":
        return None
    org = session.scalar(select(Organization).where(Organization.code == code)) if _searchable(code) else None
    if org is None:
        raise ValidationError([Detail("parent", "directory.org_unknown", {"code": code})])
    return org


def update_organization(session: Session, code: str, *, name: str | None = None,
                        position: int | None = None, parent=UNSET) -> Organization:
    """Rename, reorder and (when ``parent`` is given, None = top level) move an organization."""
    org = get_organization(session, code)
    position = _position(position)
    if name is not None:
        org.name = _new_name(name)
    if parent is not UNSET:
        move_organization(session, code, parent, position)
    elif position is not None:
        org.position = position
    session.flush()
    return org


def move_organization(session: Session, code: str, parent: str | None,
                      position: int | None = None) -> Organization:
    """Put the organization (with everything below it) under ``parent`` (None: top level)."""
    org = get_organization(session, code)
    position = _position(position)
    new_parent = _parent(session, parent)
    if new_parent is not None and new_parent.path.startswith(org.path):
        raise ValidationError([Detail("parent", "directory.cycle", {"code": org.code, "parent": new_parent.code})])
    new_parent_id = new_parent.id if new_parent else None
    if new_parent_id != org.parent_id:
        org.parent_id = new_parent_id
        org.position = position if position is not None else _next_position(session, new_parent_id)
        old_prefix = org.path
        new_prefix = (new_parent.path if new_parent else "/") + f"{org.id}/"
        for o in session.scalars(select(Organization).where(Organization.path.startswith(old_prefix))):
            o.path = new_prefix + o.path[len(old_prefix):]
    elif position is not None:
        org.position = position
    session.flush()
    return org


def delete_organization(session: Session, code: str) -> None:
    """Delete an organization that has no sub-organizations and no members (refused otherwise: 409)."""
    org = get_organization(session, code)
    children = session.scalar(select(func.count()).select_from(Organization).where(Organization.parent_id == org.id))
    if children:
        raise Conflict("directory.has_children", code=code, count=children)
    members = session.scalar(select(func.count()).select_from(UserOrganization)
                             .where(UserOrganization.organization_id == org.id))
    if members:
        raise Conflict("directory.has_members", code=code, count=members)
    session.delete(org)
    session.flush()


def _all_organizations(session: Session) -> list[Organization]:
    return list(session.scalars(select(Organization).order_by(Organization.position, Organization.code)))


def tree(session: Session) -> list[dict]:
    """The organizations as nested ``{code, name, position, children}``, siblings in display order."""
    nodes: dict[int, dict] = {}
    orgs = _all_organizations(session)
    for o in orgs:
        nodes[o.id] = {"code": o.code, "name": o.name, "position": o.position, "children": []}
    roots = []
    for o in orgs:
        (nodes[o.parent_id]["children"] if o.parent_id in nodes else roots).append(nodes[o.id])
    return roots


def flat_list(session: Session) -> list[dict]:
    """Every organization in tree order as ``{code, name, parent, position, depth}``."""
    out: list[dict] = []

    def walk(nodes: list[dict], parent: str | None, depth: int) -> None:
        for n in nodes:
            out.append({"code": n["code"], "name": n["name"], "parent": parent, "position": n["position"],
                        "depth": depth})
            walk(n["children"], n["code"], depth + 1)

    walk(tree(session), None, 0)
    return out


def organization_info(session: Session, code: str) -> dict:
    """One organization with its parent, its ancestors (root first, for breadcrumbs) and children."""
    org = get_organization(session, code)
    related = {o.id: o for o in session.scalars(select(Organization).where(
        Organization.id.in_(org.ids()) | (Organization.parent_id == org.id))
        .order_by(Organization.position, Organization.code))}
    up = [related[i] for i in org.ids()[:-1] if i in related]
    return {"code": org.code, "name": org.name, "parent": up[-1].code if up else None,
            "position": org.position, "depth": len(up),
            "ancestors": [{"code": o.code, "name": o.name} for o in up],
            "children": [{"code": o.code, "name": o.name} for o in related.values() if o.parent_id == org.id]}


def organization_members(session: Session, code: str) -> list[dict]:
    """The users directly in the organization: ``{code, name, primary}``."""
    org = get_organization(session, code)
    rows = session.execute(select(User.code, User.name, UserOrganization.is_primary)
                           .join(UserOrganization, UserOrganization.user_id == User.id)
                           .where(UserOrganization.organization_id == org.id).order_by(User.code))
    return [{"code": r.code, "name": r.name, "primary": r.is_primary} for r in rows]


# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------

def create_group(session: Session, code: str, name: str, description: str = "") -> Group:
    code, name = _new_code(code), _new_name(name)
    _check("description", _text_problem(description))
    if group_exists(session, code):
        raise ValidationError([Detail("code", "directory.group_exists", {"code": code})])
    group = Group(code=code, name=name, description=description or "")
    session.add(group)
    session.flush()
    return group


def update_group(session: Session, code: str, *, name: str | None = None,
                 description: str | None = None) -> Group:
    group = get_group(session, code)
    if name is not None:
        group.name = _new_name(name)
    if description is not None:
        _check("description", _text_problem(description))
        group.description = description
    session.flush()
    return group


def delete_group(session: Session, code: str) -> None:
    """Delete a group; its memberships go with it."""
    group = get_group(session, code)
    session.execute(delete(UserGroup).where(UserGroup.group_id == group.id))
    session.delete(group)
    session.flush()


def list_groups(session: Session) -> list[dict]:
    counts = dict(session.execute(select(UserGroup.group_id, func.count()).group_by(UserGroup.group_id)).all())
    return [{"code": g.code, "name": g.name, "description": g.description, "members": counts.get(g.id, 0)}
            for g in session.scalars(select(Group).order_by(Group.code))]


def group_members(session: Session, code: str) -> list[dict]:
    group = get_group(session, code)
    rows = session.execute(select(User.code, User.name).join(UserGroup, UserGroup.user_id == User.id)
                           .where(UserGroup.group_id == group.id).order_by(User.code))
    return [{"code": r.code, "name": r.name} for r in rows]


def add_group_members(session: Session, group_code: str, user_codes: list[str]) -> int:
    """Add users to a group (already a member: no change). Returns how many were added."""
    group = get_group(session, group_code)
    added = 0
    for code in dict.fromkeys(user_codes):
        user = get_user(session, code)
        if session.get(UserGroup, (user.id, group.id)) is None:
            session.add(UserGroup(user_id=user.id, group_id=group.id))
            added += 1
    session.flush()
    return added


def remove_group_members(session: Session, group_code: str, user_codes: list[str]) -> int:
    group = get_group(session, group_code)
    ids = [get_user(session, c).id for c in user_codes]
    result = session.execute(delete(UserGroup).where(UserGroup.group_id == group.id, UserGroup.user_id.in_(ids)))
    return result.rowcount or 0


# --------------------------------------------------------------------------------------------
# A user's memberships
# --------------------------------------------------------------------------------------------

def user_organizations(session: Session, user: User) -> dict:
    """``{"organizations": [codes, primary first], "primary": code | None}``."""
    rows = session.execute(select(Organization.code, UserOrganization.is_primary)
                           .join(UserOrganization, UserOrganization.organization_id == Organization.id)
                           .where(UserOrganization.user_id == user.id)
                           .order_by(UserOrganization.is_primary.desc(), Organization.code)).all()
    return {"organizations": [r.code for r in rows], "primary": next((r.code for r in rows if r.is_primary), None)}


def user_groups(session: Session, user: User) -> dict:
    codes = session.scalars(select(Group.code).join(UserGroup, UserGroup.group_id == Group.id)
                            .where(UserGroup.user_id == user.id).order_by(Group.code))
    return {"groups": list(codes)}


def set_user_organizations(session: Session, user: User, codes: list[str], primary: str | None = None) -> None:
    """Make ``codes`` the user's organizations; ``primary`` (default: the first) their primary one."""
    codes = list(dict.fromkeys(codes))
    ids = _ids(session, Organization, "directory.org_unknown", codes, "organizations")
    if primary is not None and primary not in ids:
        raise ValidationError([Detail("primary", "directory.primary_not_member", {"code": primary})])
    primary_id = ids[primary if primary is not None else codes[0]] if codes else None
    _sync_organizations(session, {user.id: ([ids[c] for c in codes], primary_id)})


def add_organization_member(session: Session, org_code: str, user_code: str, primary: bool = False) -> None:
    """Add a user to an organization; it becomes primary when asked or when it is their first."""
    org = get_organization(session, org_code)
    user = get_user(session, user_code)
    current = user_organizations(session, user)
    codes = list(dict.fromkeys([*current["organizations"], org.code]))
    set_user_organizations(session, user, codes, org.code if primary else current["primary"])


def set_user_groups(session: Session, user: User, codes: list[str]) -> None:
    codes = list(dict.fromkeys(codes))
    ids = _ids(session, Group, "directory.group_unknown", codes, "groups")
    _sync_groups(session, {user.id: [ids[c] for c in codes]})


def _ids(session: Session, model, unknown_key: str, codes: list[str], path: str) -> dict[str, int]:
    """{code: id} of organizations or groups; any unknown code is a located error."""
    searchable = [c for c in codes if _searchable(c)]
    found = dict(session.execute(select(model.code, model.id).where(model.code.in_(searchable))).all()) \
        if searchable else {}
    missing = [Detail(f"{path}[{i}]", unknown_key, {"code": c}) for i, c in enumerate(codes) if c not in found]
    if missing:
        raise ValidationError(missing)
    return found


def _sync_organizations(session: Session, wanted: dict[int, tuple[list[int], int | None]]) -> set[int]:
    """Set users' organizations {user_id: (org ids, primary id)}; returns the users that changed.

    Removals and cleared primaries are flushed before additions so that the one-primary-per-user
    index never sees two primaries at once (PostgreSQL checks unique indexes row by row).
    """
    current: dict[int, dict[int, UserOrganization]] = {u: {} for u in wanted}
    for row in _in_chunks(session, UserOrganization, UserOrganization.user_id, list(wanted)):
        current[row.user_id][row.organization_id] = row
    changed: set[int] = set()
    for user_id, (org_ids, primary_id) in wanted.items():
        for org_id, row in current[user_id].items():
            if org_id not in org_ids:
                session.delete(row)
                changed.add(user_id)
            elif row.is_primary and org_id != primary_id:
                row.is_primary = False
                changed.add(user_id)
    session.flush()
    for user_id, (org_ids, primary_id) in wanted.items():
        for org_id in org_ids:
            row = current[user_id].get(org_id)
            if row is None:
                session.add(UserOrganization(user_id=user_id, organization_id=org_id, is_primary=org_id == primary_id))
                changed.add(user_id)
            elif org_id == primary_id and not row.is_primary:
                row.is_primary = True
                changed.add(user_id)
    session.flush()
    return changed


def _sync_groups(session: Session, wanted: dict[int, list[int]]) -> set[int]:
    current: dict[int, dict[int, UserGroup]] = {u: {} for u in wanted}
    for row in _in_chunks(session, UserGroup, UserGroup.user_id, list(wanted)):
        current[row.user_id][row.group_id] = row
    changed: set[int] = set()
    for user_id, group_ids in wanted.items():
        for group_id, row in current[user_id].items():
            if group_id not in group_ids:
                session.delete(row)
                changed.add(user_id)
        for group_id in group_ids:
            if group_id not in current[user_id]:
                session.add(UserGroup(user_id=user_id, group_id=group_id))
                changed.add(user_id)
    session.flush()
    return changed


def _in_chunks(session: Session, model, column, values: list, size: int = 500):
    for i in range(0, len(values), size):
        yield from session.scalars(select(model).where(column.in_(values[i:i + size])))


# --------------------------------------------------------------------------------------------
# CSV import
# --------------------------------------------------------------------------------------------

COLUMNS = {"種別": "kind", "コード": "code", "名前": "name", "親組織コード": "parent", "ユーザー": "user",
           "主所属": "primary", "表示順": "position", "説明": "description"}
COLUMN_ALIASES = {**{v: v for v in COLUMNS.values()}, **COLUMNS}
REQUIRED_COLUMNS = ("kind", "code")
KINDS = {"組織": "org", "グループ": "group", "所属": "member", "組織所属": "org_member",
         "グループ所属": "group_member", "organization": "org", "group": "group", "member": "member",
         "organization_member": "org_member", "group_member": "group_member"}
TRUE_FLAGS = {"○", "◯", "〇", "●", "1", "true", "yes", "y", "はい", "主", "主所属"}
FALSE_FLAGS = {"", "0", "false", "no", "n", "いいえ", "×", "✕", "-"}
ENCODINGS = ("auto", "utf-8", "cp932")


@dataclass
class ImportReport:
    organizations_created: int = 0
    organizations_updated: int = 0
    groups_created: int = 0
    groups_updated: int = 0
    users_updated: int = 0
    rows: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Row:
    number: int                       # as Excel shows it: the header is row 1
    cells: dict[str, str]
    labels: dict[str, str] = field(repr=False)

    def get(self, key: str) -> str:
        return self.cells.get(key, "")

    def path(self, key: str) -> str:
        return f"rows[{self.number}].{self.labels.get(key, _label(key))}"


def _label(key: str) -> str:
    return next(ja for ja, k in COLUMNS.items() if k == key)


def decode_csv(data: bytes, encoding: str = "auto") -> str:
    """Text of a CSV file: UTF-8 (BOM or not) or CP932; ``auto`` tries UTF-8 first."""
    encoding = (encoding or "auto").lower().replace("_", "-")
    encoding = {"utf8": "utf-8", "utf-8-sig": "utf-8", "shift-jis": "cp932", "sjis": "cp932",
                "windows-31j": "cp932"}.get(encoding, encoding)
    if encoding not in ENCODINGS:
        raise ValidationError([Detail("encoding", "directory.csv_bad_encoding_option")])
    for enc in (("utf-8-sig", "cp932") if encoding == "auto" else ("utf-8-sig" if encoding == "utf-8" else "cp932",)):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    if encoding == "auto":
        raise ValidationError([Detail("file", "directory.csv_encoding")])
    raise ValidationError([Detail("file", "directory.csv_not_encoding", {"encoding": encoding.upper()})])


def _read_rows(text: str) -> list[_Row]:
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ValidationError([Detail("file", "directory.csv_unreadable", {"detail": str(exc)})]) from None
    if not records or not any(c.strip() for c in records[0]):
        raise ValidationError([Detail("file", "directory.csv_empty")])
    header = [c.strip() for c in records[0]]
    while header and not header[-1]:
        header.pop()   # Excel's trailing empty columns
    keys, labels, errors = [], {}, []
    for i, name in enumerate(header):
        key = COLUMN_ALIASES.get(name) or COLUMN_ALIASES.get(name.lower())
        if key is None:
            errors.append(Detail(f"rows[1][{i}]", "directory.csv_unknown_column",
                                 {"column": name, "allowed": ", ".join(COLUMNS)}))
        elif key in labels:
            errors.append(Detail(f"rows[1][{i}]", "directory.csv_duplicate_column", {"column": name}))
        labels.setdefault(key, name)
        keys.append(key)
    errors += [Detail("rows[1]", "directory.csv_missing_column", {"column": _label(k)})
               for k in REQUIRED_COLUMNS if k not in labels]
    if errors:
        raise ValidationError(errors, key="directory.csv_invalid", rows=1)
    rows = []
    for number, record in enumerate(records[1:], start=2):
        cells = {k: v.strip() for k, v in zip(keys, record) if k is not None}
        row = _Row(number, cells, labels)
        if any(c.strip() for c in record[len(keys):]):
            row.cells["_extra"] = "1"
        if any(cells.values()) and not cells.get("kind", "").startswith("#"):
            rows.append(row)
    return rows


def _flag(row: _Row, errors: list[Detail]) -> bool:
    value = row.get("primary")
    if value.lower() in TRUE_FLAGS:
        return True
    if value.lower() not in FALSE_FLAGS:
        errors.append(Detail(row.path("primary"), "directory.csv_bad_flag", {"value": value}))
    return False


def import_csv(session: Session, data: bytes, encoding: str = "auto") -> ImportReport:
    """Read a directory CSV (see the module docstring) in the caller's transaction: all or nothing."""
    rows = _read_rows(decode_csv(data, encoding))
    errors: list[Detail] = []

    def err(at: _Row, column: str, detail_key: str, /, **params) -> None:
        errors.append(Detail(at.path(column), detail_key, params))

    # ---- pass 1: every row on its own
    orgs: dict[str, _Row] = {}
    groups: dict[str, _Row] = {}
    members: list[tuple[_Row, str]] = []
    for row in rows:
        if "_extra" in row.cells:
            errors.append(Detail(f"rows[{row.number}]", "directory.csv_extra_cells"))
        kind = KINDS.get(row.get("kind")) or KINDS.get(row.get("kind").lower())
        if kind is None:
            err(row, "kind", "directory.csv_bad_kind", value=row.get("kind"))
            continue
        problem = _code_problem(row.get("code"))
        if problem is not None:
            problem.path = row.path("code")
            errors.append(problem)
            continue
        if kind in ("org", "group"):
            problem = _name_problem(row.get("name"))
            if problem is not None:
                problem.path = row.path("name")
                errors.append(problem)
            seen = orgs if kind == "org" else groups
            code = row.get("code")
            if code in seen:
                err(row, "code", "directory.csv_duplicate", code=code, row=seen[code].number)
                continue
            seen[code] = row
            for column, problem in (("position", _position_problem(row.get("position") or None)),
                                    ("description", _text_problem(row.get("description")))):
                if problem is not None:
                    problem.path = row.path(column)
                    errors.append(problem)
        else:
            members.append((row, kind))

    # ---- pass 2: references, against the file and the database
    db_orgs = {o.code: o for o in session.scalars(select(Organization))}
    db_org_code = {o.id: o.code for o in db_orgs.values()}
    db_groups = {g.code: g for g in session.scalars(select(Group).where(Group.code.in_(groups)))} if groups else {}
    group_codes = set(groups) | set(session.scalars(select(Group.code)))
    parent_of = {c: db_org_code.get(o.parent_id) for c, o in db_orgs.items()}
    for code, row in orgs.items():
        parent = row.get("parent") or None
        if parent == code:
            err(row, "parent", "directory.csv_self_parent")
        elif parent is not None and parent not in orgs and parent not in db_orgs:
            err(row, "parent", "directory.org_unknown", code=parent)
        else:
            parent_of[code] = parent
    for code, row in orgs.items():
        seen, up = {code}, parent_of.get(code)
        while up is not None and up not in seen:
            seen.add(up)
            up = parent_of.get(up)
        if up == code:
            err(row, "parent", "directory.csv_cycle", code=code)

    user_codes = {row.get("user") for row, _k in members if _searchable(row.get("user"))}
    users = dict(session.execute(select(User.code, User.id).where(User.code.in_(user_codes))).all()) \
        if user_codes else {}
    org_members: dict[str, list[str]] = {}
    primary_row: dict[str, _Row] = {}
    group_members: dict[str, list[str]] = {}
    for row, kind in members:
        user, code = row.get("user"), row.get("code")
        is_org = code in orgs or code in db_orgs
        is_group = code in group_codes
        ok = True
        if not user:
            err(row, "user", "directory.csv_required")
            ok = False
        elif user not in users:
            err(row, "user", "directory.user_unknown", code=user)
            ok = False
        if kind == "member" and is_org and is_group:
            err(row, "kind", "directory.csv_ambiguous", code=code)
            continue
        target = "org" if (kind == "org_member" or (kind == "member" and is_org)) else \
            "group" if (kind == "group_member" or (kind == "member" and is_group)) else None
        if target is None or (target == "org" and not is_org) or (target == "group" and not is_group):
            key = {"org": "directory.org_unknown", "group": "directory.group_unknown"}.get(
                target, "directory.csv_unknown_target")
            err(row, "code", key, code=code)
            continue
        primary = _flag(row, errors)
        if target == "group":
            if primary:
                err(row, "primary", "directory.csv_primary_group")
            if ok:
                group_members.setdefault(user, []).append(code)
            continue
        if primary and user in primary_row:
            err(row, "primary", "directory.csv_primary_twice", user=user, row=primary_row[user].number)
            continue
        if ok:
            org_members.setdefault(user, []).append(code)
            if primary:
                primary_row[user] = row
    if errors:
        raise ValidationError(errors, key="directory.csv_invalid",
                              rows=len({d.path.split("]")[0] for d in errors}))

    # ---- write: groups, organizations (create, then link parents, then paths), memberships
    report = ImportReport(rows=len(rows))
    for code, row in groups.items():
        name = row.get("name")
        group = db_groups.get(code)
        if group is None:
            session.add(Group(code=code, name=name, description=row.get("description")))
            report.groups_created += 1
            continue
        before = (group.name, group.description)
        group.name = name
        if "description" in row.labels:
            group.description = row.get("description")
        report.groups_updated += before != (group.name, group.description)

    created = {code for code in orgs if code not in db_orgs}
    for code in created:
        db_orgs[code] = Organization(code=code, name=orgs[code].get("name"), path="", position=0)
        session.add(db_orgs[code])
    session.flush()
    report.organizations_created = len(created)
    next_position: dict[int | None, int] = {}
    for code, row in orgs.items():
        org = db_orgs[code]
        parent = parent_of.get(code)
        before = (org.name, org.parent_id, org.position)
        org.name = row.get("name")
        org.parent_id = db_orgs[parent].id if parent else None
        if row.get("position"):
            org.position = int(row.get("position"))
        elif code in created or org.parent_id != before[1]:
            if org.parent_id not in next_position:
                next_position[org.parent_id] = _next_position(session, org.parent_id)
            org.position = next_position[org.parent_id]
            next_position[org.parent_id] += 1
        if code not in created:
            report.organizations_updated += before != (org.name, org.parent_id, org.position)
    session.flush()
    _rebuild_paths(session)

    org_id = {c: o.id for c, o in db_orgs.items()}
    wanted_orgs = {users[u]: ([org_id[c] for c in dict.fromkeys(codes)],
                              org_id[primary_row[u].get("code")] if u in primary_row else org_id[codes[0]])
                   for u, codes in org_members.items()}
    group_id = dict(session.execute(select(Group.code, Group.id)).all()) if group_members else {}
    wanted_groups = {users[u]: [group_id[c] for c in dict.fromkeys(codes)] for u, codes in group_members.items()}
    report.users_updated = len(_sync_organizations(session, wanted_orgs) | _sync_groups(session, wanted_groups))
    return report


def _rebuild_paths(session: Session) -> None:
    """Recompute every organization's materialised path from the parent links."""
    orgs = {o.id: o for o in session.scalars(select(Organization))}
    paths: dict[int, str] = {}

    def path_of(org_id: int) -> str:
        chain = []
        while org_id is not None and org_id not in paths:
            chain.append(org_id)
            org_id = orgs[org_id].parent_id
        prefix = paths[org_id] if org_id is not None else "/"
        for i in reversed(chain):
            prefix = paths[i] = f"{prefix}{i}/"
        return prefix

    for org_id, org in orgs.items():
        path = path_of(org_id)
        if org.path != path:
            org.path = path
    session.flush()
