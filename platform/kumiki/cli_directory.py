"""`kumiki org …`, `kumiki group …` and `kumiki directory import`: the directory from the command line.

Thin wrappers over :mod:`kumiki.directory`; its errors (unknown codes, cycles, bad CSV rows) are
printed in Japanese by the root group and exit with code 2.
"""
from __future__ import annotations

from pathlib import Path

import click

from kumiki import directory as d
from kumiki import i18n
from kumiki.cli import CliError, CliState, _table, main, pass_state

i18n.register({
    "cli.directory.org_created": ("組織「{name}」（{code}）を作成しました。", "Created the organization \"{name}\" ({code})."),
    "cli.directory.org_moved": ("組織「{code}」を移動しました: {path}", "Moved the organization \"{code}\": {path}"),
    "cli.directory.org_deleted": ("組織「{code}」を削除しました。", "Deleted the organization \"{code}\"."),
    "cli.directory.no_orgs": ("組織はまだありません。", "There are no organizations yet."),
    "cli.directory.member_added": ("ユーザー「{user}」を「{target}」に追加しました。", "Added \"{user}\" to \"{target}\"."),
    "cli.directory.members_added": ("グループ「{code}」に{count}人を追加しました。", "Added {count} member(s) to the group \"{code}\"."),
    "cli.directory.members_removed": ("グループ「{code}」から{count}人を外しました。",
                                      "Removed {count} member(s) from the group \"{code}\"."),
    "cli.directory.group_created": ("グループ「{name}」（{code}）を作成しました。", "Created the group \"{name}\" ({code})."),
    "cli.directory.group_deleted": ("グループ「{code}」を削除しました。", "Deleted the group \"{code}\"."),
    "cli.directory.no_groups": ("グループはまだありません。", "There are no groups yet."),
    "cli.directory.group_list_header": ("コード\tグループ名\t人数\t説明", "code\tname\tmembers\tdescription"),
    "cli.directory.move_target": ("移動先を --to 親組織コード か --root で指定してください。",
                                  "Give the new place: --to PARENT_CODE or --root."),
    "cli.directory.imported": (
        "読み込みました（{rows}行）: 組織 作成{organizations_created}・更新{organizations_updated}、"
        "グループ 作成{groups_created}・更新{groups_updated}、所属を変更したユーザー {users_updated}人",
        "Imported {rows} row(s): organizations {organizations_created} created, {organizations_updated} updated; "
        "groups {groups_created} created, {groups_updated} updated; memberships changed for {users_updated} user(s)"),
    "cli.directory.dry_run": ("確認のみ: 上の内容はまだ書き込んでいません（--dry-run）。",
                              "Checked only: nothing was written (--dry-run)."),
})


def _tree_lines(nodes: list[dict], prefix: str = "") -> list[str]:
    lines = []
    for i, n in enumerate(nodes):
        last = i == len(nodes) - 1
        lines.append(f"{prefix}{'└─ ' if last else '├─ '}{n['name']} ({n['code']})")
        lines += _tree_lines(n["children"], prefix + ("   " if last else "│  "))
    return lines


# ---- organizations -------------------------------------------------------------------------

@main.group("org")
def org_group() -> None:
    """組織を管理します / manage organizations."""


@org_group.command("add")
@click.argument("code")
@click.option("--name", required=True, help="組織名 / name")
@click.option("--parent", default=None, help="親組織のコード（省略時は最上位） / parent code (default: top level)")
@click.option("--position", type=int, default=None, help="兄弟の中の表示順 / order among siblings")
@pass_state
def org_add(state: CliState, code: str, name: str, parent: str | None, position: int | None) -> None:
    """組織を作成します / create an organization."""
    with state.session() as session:
        org = d.create_organization(session, code, name, parent, position)
        code, name = org.code, org.name
    state.say("cli.directory.org_created", code=code, name=name)


@org_group.command("list")
@pass_state
def org_list(state: CliState) -> None:
    """組織を木の形で表示します / show the organizations as a tree."""
    with state.session() as session:
        roots = d.tree(session)
    if not roots:
        state.say("cli.directory.no_orgs")
        return
    for root in roots:
        click.echo(f"{root['name']} ({root['code']})")
        for line in _tree_lines(root["children"]):
            click.echo(line)


@org_group.command("move")
@click.argument("code")
@click.option("--to", "parent", default=None, help="新しい親組織のコード / code of the new parent")
@click.option("--root", is_flag=True, help="最上位に移します / move to the top level")
@click.option("--position", type=int, default=None, help="移動先での表示順 / order among the new siblings")
@pass_state
def org_move(state: CliState, code: str, parent: str | None, root: bool, position: int | None) -> None:
    """組織を（下位組織ごと）別の親組織の下へ移します / move an organization (with its sub-organizations)."""
    if (parent is None) == (not root):
        raise CliError([state.t("cli.directory.move_target")])
    with state.session() as session:
        d.move_organization(session, code, None if root else parent, position)
        path = " › ".join(d.ancestors(session, code))
    state.say("cli.directory.org_moved", code=code, path=path)


@org_group.command("delete")
@click.argument("code")
@pass_state
def org_delete(state: CliState, code: str) -> None:
    """組織を削除します（下位組織・所属ユーザーがないときだけ） / delete an organization (only when empty)."""
    with state.session() as session:
        d.delete_organization(session, code)
    state.say("cli.directory.org_deleted", code=code)


@org_group.command("add-member")
@click.argument("code")
@click.argument("user")
@click.option("--primary", is_flag=True, help="主所属にします / make it the user's primary organization")
@pass_state
def org_add_member(state: CliState, code: str, user: str, primary: bool) -> None:
    """ユーザーを組織に所属させます / add a user to an organization."""
    with state.session() as session:
        d.add_organization_member(session, code, user, primary)
    state.say("cli.directory.member_added", user=user, target=code)


# ---- groups --------------------------------------------------------------------------------

@main.group("group")
def group_group() -> None:
    """グループ（役割）を管理します / manage groups (roles)."""


@group_group.command("add")
@click.argument("code")
@click.option("--name", required=True, help="グループ名 / name")
@click.option("--description", default="", help="説明 / description")
@pass_state
def group_add(state: CliState, code: str, name: str, description: str) -> None:
    """グループを作成します / create a group."""
    with state.session() as session:
        group = d.create_group(session, code, name, description)
        code, name = group.code, group.name
    state.say("cli.directory.group_created", code=code, name=name)


@group_group.command("list")
@pass_state
def group_list(state: CliState) -> None:
    """グループの一覧を表示します / list the groups."""
    with state.session() as session:
        rows = [[g["code"], g["name"], str(g["members"]), g["description"]] for g in d.list_groups(session)]
    if not rows:
        state.say("cli.directory.no_groups")
        return
    for line in _table([state.t("cli.directory.group_list_header").split("\t"), *rows]):
        click.echo(line)


@group_group.command("delete")
@click.argument("code")
@pass_state
def group_delete(state: CliState, code: str) -> None:
    """グループを削除します（メンバーの登録も消えます） / delete a group and its memberships."""
    with state.session() as session:
        d.delete_group(session, code)
    state.say("cli.directory.group_deleted", code=code)


@group_group.command("add-member")
@click.argument("code")
@click.argument("users", nargs=-1, required=True)
@pass_state
def group_add_member(state: CliState, code: str, users: tuple[str, ...]) -> None:
    """ユーザーをグループに追加します / add users to a group."""
    with state.session() as session:
        count = d.add_group_members(session, code, list(users))
    state.say("cli.directory.members_added", code=code, count=count)


@group_group.command("remove-member")
@click.argument("code")
@click.argument("users", nargs=-1, required=True)
@pass_state
def group_remove_member(state: CliState, code: str, users: tuple[str, ...]) -> None:
    """ユーザーをグループから外します / remove users from a group."""
    with state.session() as session:
        count = d.remove_group_members(session, code, list(users))
    state.say("cli.directory.members_removed", code=code, count=count)


# ---- CSV import ----------------------------------------------------------------------------

@main.group("directory")
def directory_group() -> None:
    """組織・グループ・所属をまとめて扱います / the whole directory at once."""


@directory_group.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--encoding", type=click.Choice(d.ENCODINGS), default="auto", show_default=True,
              help="文字コード（auto: UTF-8、だめなら CP932） / file encoding (auto: UTF-8, else CP932)")
@click.option("--dry-run", is_flag=True, help="確認だけして書き込みません / check only, write nothing")
@pass_state
def directory_import(state: CliState, file: Path, encoding: str, dry_run: bool) -> None:
    """CSVから組織・グループ・所属を読み込みます（全件成功か、何も書き込まないか） / import the directory CSV.

    \b
    列 / columns: 種別,コード,名前,親組織コード,ユーザー,主所属[,表示順][,説明]
    種別 / kind:  組織 | グループ | 所属
    """
    if not file.exists() or file.is_dir():
        raise CliError([state.t("cli.file_not_found", path=file)])
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise CliError([state.t("cli.file_unreadable", path=file, detail=exc.strerror or exc)]) from None
    with state.session() as session:
        report = d.import_csv(session, data, encoding)
        if dry_run:
            session.rollback()
    state.say("cli.directory.imported", **report.as_dict())
    if dry_run:
        state.say("cli.directory.dry_run")
