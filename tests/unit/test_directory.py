"""The directory: the organization tree, memberships, principals, the CSV import and the CLI."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from flask_login import AnonymousUserMixin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from kumiki import auth, i18n, migrate
from kumiki import directory as d
from kumiki.cli import main
from kumiki.db import make_engine, make_sessionmaker
from kumiki.errors import Conflict, KumikiError, ValidationError
from kumiki.model.directory import Group, Organization, UserOrganization


@pytest.fixture
def config(make_config, backend):
    return make_config(backend)


@pytest.fixture
def Session(config):
    engine = make_engine(config.database_url)
    migrate.upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def session(Session):
    with Session() as s:
        yield s


def users(session, *codes):
    return [auth.create_user(session, c, c.upper()) for c in codes]


def itabashi(session):
    """板橋区 › 健康生きがい部 › 健康推進課 › 板橋健康福祉センター, plus 区民文化部 › 文化・国際交流課."""
    d.create_organization(session, "itabashi", "板橋区")
    d.create_organization(session, "kenko-ikigai", "健康生きがい部", "itabashi")
    d.create_organization(session, "kenko-suishin", "健康推進課", "kenko-ikigai")
    d.create_organization(session, "itabashi-hc", "板橋健康福祉センター", "kenko-suishin")
    d.create_organization(session, "kumin-bunka", "区民文化部", "itabashi")
    d.create_organization(session, "bunka", "文化・国際交流課", "kumin-bunka")


def messages(exc: KumikiError, lang: str = "ja") -> dict[str, str]:
    return {x.path: i18n.translate(x.key, lang, **x.params) for x in exc.details}


# ---- the tree ------------------------------------------------------------------------------

def test_descendants_ancestors_and_tree(session):
    itabashi(session)
    assert d.descendants(session, "kenko-ikigai")[0] == "kenko-ikigai"
    assert set(d.descendants(session, "kenko-ikigai")) == {"kenko-ikigai", "kenko-suishin", "itabashi-hc"}
    assert set(d.descendants(session, "itabashi")) == {"itabashi", "kenko-ikigai", "kenko-suishin", "itabashi-hc",
                                                       "kumin-bunka", "bunka"}
    assert d.descendants(session, "itabashi-hc") == ["itabashi-hc"]
    assert d.descendants(session, "nothing") == []
    assert d.ancestors(session, "itabashi-hc") == ["itabashi", "kenko-ikigai", "kenko-suishin", "itabashi-hc"]
    assert d.org_exists(session, "bunka") and not d.org_exists(session, "x")

    (root,) = d.tree(session)
    assert root["name"] == "板橋区"
    assert [c["code"] for c in root["children"]] == ["kenko-ikigai", "kumin-bunka"]   # creation order
    flat = d.flat_list(session)
    assert [(o["code"], o["depth"], o["parent"]) for o in flat] == [
        ("itabashi", 0, None), ("kenko-ikigai", 1, "itabashi"), ("kenko-suishin", 2, "kenko-ikigai"),
        ("itabashi-hc", 3, "kenko-suishin"), ("kumin-bunka", 1, "itabashi"), ("bunka", 2, "kumin-bunka")]
    info = d.organization_info(session, "kenko-suishin")
    assert [a["name"] for a in info["ancestors"]] == ["板橋区", "健康生きがい部"]
    assert info["children"] == [{"code": "itabashi-hc", "name": "板橋健康福祉センター"}]


def test_move_carries_the_subtree(session):
    itabashi(session)
    d.move_organization(session, "kenko-suishin", "kumin-bunka")
    assert d.ancestors(session, "itabashi-hc") == ["itabashi", "kumin-bunka", "kenko-suishin", "itabashi-hc"]
    assert set(d.descendants(session, "kumin-bunka")) == {"kumin-bunka", "bunka", "kenko-suishin", "itabashi-hc"}
    assert d.descendants(session, "kenko-ikigai") == ["kenko-ikigai"]
    d.move_organization(session, "kenko-suishin", None)     # to the top level
    assert d.ancestors(session, "itabashi-hc") == ["kenko-suishin", "itabashi-hc"]
    assert [n["code"] for n in d.tree(session)] == ["itabashi", "kenko-suishin"]


@pytest.mark.parametrize("target", ["itabashi-hc", "kenko-ikigai", "kenko-suishin"])
def test_move_refuses_cycles(session, target):
    itabashi(session)
    with pytest.raises(ValidationError) as e:
        d.move_organization(session, "kenko-ikigai", target)
    assert "下位組織" in messages(e.value)["parent"]
    assert d.ancestors(session, "itabashi-hc")[0] == "itabashi"   # nothing moved


def test_update_renames_reorders_and_moves(session):
    itabashi(session)
    d.update_organization(session, "kumin-bunka", name="区民文化部（新）", position=0)
    assert [(c["name"]) for c in d.tree(session)[0]["children"]][0] == "区民文化部（新）"
    d.update_organization(session, "bunka", parent="kenko-ikigai")
    assert d.ancestors(session, "bunka") == ["itabashi", "kenko-ikigai", "bunka"]


def test_codes_are_checked_and_unique(session):
    d.create_organization(session, "a", "A")
    for code in ("", "  ", "a/b", "x" * 129):
        with pytest.raises(ValidationError):
            d.create_organization(session, code, "X")
    with pytest.raises(ValidationError) as e:
        d.create_organization(session, "a", "again")
    assert messages(e.value) == {"code": "組織コード「a」は既に使われています。"}
    with pytest.raises(ValidationError) as e:
        d.create_organization(session, "b", "B", parent="nope")
    assert messages(e.value) == {"parent": "組織コード「nope」はありません。"}
    with pytest.raises(ValidationError):
        d.create_organization(session, "c", " ")


def test_delete_refuses_children_and_members(session):
    itabashi(session)
    (sato,) = users(session, "sato")
    with pytest.raises(Conflict) as e:
        d.delete_organization(session, "kenko-suishin")
    assert i18n.translate(e.value.key, **e.value.params).startswith("組織「kenko-suishin」には下位組織が1件")
    d.set_user_organizations(session, sato, ["itabashi-hc"])
    with pytest.raises(Conflict) as e:
        d.delete_organization(session, "itabashi-hc")
    assert "所属ユーザーが1人" in i18n.translate(e.value.key, **e.value.params)
    d.set_user_organizations(session, sato, [])
    d.delete_organization(session, "itabashi-hc")
    assert not d.org_exists(session, "itabashi-hc")


# ---- memberships and principals ------------------------------------------------------------

def test_principal_of(session):
    itabashi(session)
    sato, suzuki = users(session, "sato", "suzuki")
    d.create_group(session, "hokenshi", "保健師")
    d.create_group(session, "shomu", "庶務担当")
    d.set_user_organizations(session, sato, ["bunka", "itabashi-hc"], primary="itabashi-hc")
    d.set_user_groups(session, sato, ["hokenshi"])
    p = d.principal_of(session, sato)
    assert (p.user_id, p.code, p.is_admin) == (sato.id, "sato", False)
    assert p.organizations == {"bunka", "itabashi-hc"}
    assert p.organizations_up == {"bunka", "itabashi-hc", "kumin-bunka", "kenko-suishin", "kenko-ikigai", "itabashi"}
    assert p.primary_organization == "itabashi-hc"
    assert p.groups == {"hokenshi"}

    empty = d.principal_of(session, suzuki)
    assert empty.code == "suzuki" and not empty.organizations and empty.primary_organization is None
    for anonymous in (None, AnonymousUserMixin()):
        assert d.principal_of(session, anonymous) == d.ANONYMOUS


def test_primary_defaults_to_the_first_and_must_be_a_member(session):
    itabashi(session)
    (sato,) = users(session, "sato")
    d.set_user_organizations(session, sato, ["bunka", "itabashi-hc"])
    assert d.user_organizations(session, sato) == {"organizations": ["bunka", "itabashi-hc"], "primary": "bunka"}
    d.set_user_organizations(session, sato, ["bunka", "itabashi-hc"], primary="itabashi-hc")   # swap primaries
    session.commit()
    assert d.user_organizations(session, sato)["primary"] == "itabashi-hc"
    with pytest.raises(ValidationError) as e:
        d.set_user_organizations(session, sato, ["bunka"], primary="itabashi-hc")
    assert messages(e.value) == {"primary": "主所属「itabashi-hc」は所属組織の一覧にも入れてください。"}
    with pytest.raises(ValidationError) as e:
        d.set_user_organizations(session, sato, ["bunka", "nope"])
    assert set(messages(e.value)) == {"organizations[1]"}
    d.add_organization_member(session, "kenko-ikigai", "sato", primary=True)
    assert d.user_organizations(session, sato) == {
        "organizations": ["kenko-ikigai", "bunka", "itabashi-hc"], "primary": "kenko-ikigai"}
    assert session.scalar(select(func.count()).select_from(UserOrganization)
                          .where(UserOrganization.is_primary.is_(True))) == 1


def test_groups_and_members(session):
    sato, suzuki = users(session, "sato", "suzuki")
    d.create_group(session, "hokenshi", "保健師", "地区担当の保健師")
    assert d.add_group_members(session, "hokenshi", ["sato", "suzuki", "sato"]) == 2
    assert d.add_group_members(session, "hokenshi", ["sato"]) == 0
    assert [m["code"] for m in d.group_members(session, "hokenshi")] == ["sato", "suzuki"]
    assert d.list_groups(session) == [{"code": "hokenshi", "name": "保健師", "description": "地区担当の保健師",
                                       "members": 2}]
    assert d.remove_group_members(session, "hokenshi", ["suzuki"]) == 1
    d.update_group(session, "hokenshi", name="保健師（地区）")
    d.delete_group(session, "hokenshi")
    assert not d.group_exists(session, "hokenshi")
    assert d.user_groups(session, sato) == {"groups": []}


# ---- CSV import ----------------------------------------------------------------------------

CSV = """種別,コード,名前,親組織コード,ユーザー,主所属
所属,itabashi-hc,,,sato,○
組織,itabashi-hc,板橋健康福祉センター,kenko-suishin,,
組織,kenko-suishin,健康推進課,kenko-ikigai,,
組織,kenko-ikigai,健康生きがい部,itabashi,,
組織,itabashi,板橋区,,,
グループ,hokenshi,保健師,,,
所属,kenko-suishin,,,sato,
所属,hokenshi,,,sato,
所属,kenko-suishin,,,suzuki,
"""


def counts(session):
    return tuple(session.scalar(select(func.count()).select_from(m)) for m in (Organization, Group, UserOrganization))


@pytest.mark.parametrize("encoding,data", [
    ("auto", CSV.encode("utf-8")),
    ("auto", CSV.encode("utf-8-sig")),
    ("auto", CSV.replace("\n", "\r\n").encode("cp932")),
    ("cp932", CSV.encode("cp932")),
    ("utf-8", CSV.encode("utf-8-sig")),
])
def test_import_reads_utf8_and_cp932_with_parents_after_children(session, encoding, data):
    sato, suzuki = users(session, "sato", "suzuki")
    report = d.import_csv(session, data, encoding)
    assert (report.organizations_created, report.groups_created, report.users_updated) == (4, 1, 2)
    assert d.ancestors(session, "itabashi-hc") == ["itabashi", "kenko-ikigai", "kenko-suishin", "itabashi-hc"]
    p = d.principal_of(session, sato)
    assert p.organizations == {"itabashi-hc", "kenko-suishin"} and p.primary_organization == "itabashi-hc"
    assert p.groups == {"hokenshi"}
    assert d.principal_of(session, suzuki).primary_organization == "kenko-suishin"   # the first listed
    assert d.tree(session)[0]["name"] == "板橋区"


def test_reimport_is_idempotent(session):
    users(session, "sato", "suzuki")
    d.import_csv(session, CSV.encode())
    session.commit()
    before = (d.flat_list(session), counts(session))
    again = d.import_csv(session, CSV.encode())
    assert (again.organizations_created, again.organizations_updated, again.groups_created,
            again.groups_updated, again.users_updated) == (0, 0, 0, 0, 0)
    assert (d.flat_list(session), counts(session)) == before


def test_import_updates_moves_and_transfers(session):
    sato, _ = users(session, "sato", "suzuki")
    d.import_csv(session, CSV.encode())
    transfer = ("種別,コード,名前,親組織コード,ユーザー,主所属\n"
                "組織,kumin-bunka,区民文化部,itabashi,,\n"
                "組織,kenko-suishin,健康推進課（改）,kumin-bunka,,\n"
                "所属,kumin-bunka,,,sato,1\n")
    report = d.import_csv(session, transfer.encode())
    assert (report.organizations_created, report.organizations_updated, report.users_updated) == (1, 1, 1)
    assert d.ancestors(session, "itabashi-hc") == ["itabashi", "kumin-bunka", "kenko-suishin", "itabashi-hc"]
    p = d.principal_of(session, sato)
    assert p.organizations == {"kumin-bunka"} and p.primary_organization == "kumin-bunka"
    assert p.groups == {"hokenshi"}          # no group rows for sato: groups untouched


def test_a_bad_row_writes_nothing_and_is_located(session):
    users(session, "sato")
    d.create_organization(session, "itabashi", "板橋区")
    session.commit()
    before = counts(session)
    bad = CSV.replace("組織,kenko-suishin,健康推進課,kenko-ikigai", "組織,kenko-suishin,健康推進課,X")
    with pytest.raises(ValidationError) as e:
        d.import_csv(session, bad.encode("cp932"))
    session.rollback()
    assert counts(session) == before
    errors = messages(e.value)
    assert errors["rows[4].親組織コード"] == "組織コード「X」はありません。"
    assert errors["rows[10].ユーザー"] == "ユーザー「suzuki」はありません。"
    assert i18n.translate(e.value.key, **e.value.params) == "ファイルの2行に誤りがあります。何も読み込んでいません。"
    assert messages(e.value, "en")["rows[4].親組織コード"] == 'There is no organization with the code "X".'


@pytest.mark.parametrize("text,path,fragment", [
    ("種別,コード,名前,親組織コード\n組織,a,A,b\n組織,b,B,a\n", "rows[2].親組織コード", "循環"),
    ("種別,コード,名前,親組織コード\n組織,a,A,a\n", "rows[2].親組織コード", "自分自身"),
    ("種別,コード,名前\n組織,a,A\n組織,a,A2\n", "rows[3].コード", "2行目にも"),
    ("種別,コード,名前\n組織,a,\n", "rows[2].名前", "名前を入れて"),
    ("種別,コード,名前\n部署,a,A\n", "rows[2].種別", "部署"),
    ("種別,コード,名前,色\n組織,a,A,赤\n", "rows[1][3]", "列「色」は使えません"),
    ("コード,名前\na,A\n", "rows[1]", "列「種別」がありません"),
    ("種別,コード,名前,ユーザー,主所属\n組織,a,A,,\nグループ,a,A,,\n所属,a,,sato,\n", "rows[4].種別", "組織所属"),
    ("種別,コード,名前,ユーザー,主所属\n組織,a,A,,\n組織,b,B,,\n所属,a,,sato,○\n所属,b,,sato,○\n",
     "rows[5].主所属", "主所属は1人に1つ"),
    ("種別,コード,名前,ユーザー,主所属\nグループ,g,G,,\n所属,g,,sato,○\n", "rows[3].主所属", "組織の所属にだけ"),
    ("種別,コード,名前,ユーザー,主所属\n組織,a,A,,\n所属,a,,sato,たぶん\n", "rows[3].主所属", "たぶん"),
    ("種別,コード,名前,ユーザー\n所属,zz,,sato\n", "rows[2].コード", "zz"),
    ("種別,コード,名前\n組織,a,A,extra\n", "rows[2]", "見出しより右"),
])
def test_import_errors(session, text, path, fragment):
    users(session, "sato")
    with pytest.raises(ValidationError) as e:
        d.import_csv(session, text.encode())
    errors = messages(e.value)
    assert fragment in errors.get(path, ""), errors


def test_import_file_level_errors(session):
    with pytest.raises(ValidationError) as e:
        d.import_csv(session, b"")
    assert "空" in messages(e.value)["file"]
    with pytest.raises(ValidationError) as e:
        d.import_csv(session, "種別,コード\n組織,①\n".encode("utf-8"), "cp932")   # not CP932 text
    assert messages(e.value)["file"] == "ファイルはCP932として読めません。"
    with pytest.raises(ValidationError) as e:
        d.import_csv(session, b"x", "latin-1")
    assert set(messages(e.value)) == {"encoding"}


def test_import_extras_english_headers_comments_and_explicit_kinds(session):
    users(session, "sato")
    text = ("kind,code,name,parent,user,primary,position,description\n"
            "# comment row,,,,,,,\n"
            ",,,,,,,\n"
            "organization,x,X,,,,5,\n"
            "group,x,Xgroup,,,,,ロール\n"
            "組織所属,x,,,sato,○,,\n"
            "グループ所属,x,,,sato,,,\n")
    report = d.import_csv(session, text.encode())
    assert report.rows == 4
    assert d.organization_info(session, "x")["position"] == 5
    assert d.list_groups(session)[0]["description"] == "ロール"
    p = d.principal_of(session, session.scalar(select(auth.User).where(auth.User.code == "sato")))
    assert p.organizations == {"x"} and p.groups == {"x"} and p.primary_organization == "x"


# ---- CLI -----------------------------------------------------------------------------------

@pytest.fixture
def cli(config):
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, list(args), obj=config, catch_exceptions=False)
    return invoke


def test_cli_org_and_group_commands(cli, Session):
    assert cli("org", "add", "itabashi", "--name", "板橋区").exit_code == 0
    assert cli("org", "add", "kenko", "--name", "健康生きがい部", "--parent", "itabashi").exit_code == 0
    assert cli("org", "add", "suishin", "--name", "健康推進課", "--parent", "kenko").exit_code == 0
    assert cli("org", "add", "kumin", "--name", "区民文化部", "--parent", "itabashi").exit_code == 0
    out = cli("org", "list").output
    assert out.splitlines() == ["板橋区 (itabashi)", "├─ 健康生きがい部 (kenko)", "│  └─ 健康推進課 (suishin)",
                                "└─ 区民文化部 (kumin)"]
    moved = cli("org", "move", "suishin", "--to", "kumin")
    assert moved.exit_code == 0 and "itabashi › kumin › suishin" in moved.output
    cycle = cli("org", "move", "itabashi", "--to", "suishin")
    assert cycle.exit_code == 2 and "下位組織" in cycle.output
    assert cli("org", "move", "suishin").exit_code == 2
    assert cli("org", "add", "x", "--name", "X", "--parent", "nope").exit_code == 2

    assert cli("user", "add", "sato", "--name", "佐藤").exit_code == 0
    assert cli("org", "add-member", "suishin", "sato").exit_code == 0
    refused = cli("org", "delete", "suishin")
    assert refused.exit_code == 2 and "所属ユーザーが1人" in refused.output
    assert cli("group", "add", "hokenshi", "--name", "保健師").exit_code == 0
    added = cli("group", "add-member", "hokenshi", "sato")
    assert added.exit_code == 0 and "1人" in added.output
    assert cli("group", "add-member", "hokenshi", "nobody").exit_code == 2
    listed = cli("group", "list").output
    assert "hokenshi" in listed and "保健師" in listed
    with Session() as session:
        user = session.scalar(select(auth.User).where(auth.User.code == "sato"))
        p = d.principal_of(session, user)
    assert p.primary_organization == "suishin" and p.groups == {"hokenshi"}
    assert "kumin" in p.organizations_up


def test_cli_directory_import(cli, Session, tmp_path):
    assert cli("user", "add", "sato", "--name", "佐藤").exit_code == 0
    assert cli("user", "add", "suzuki", "--name", "鈴木").exit_code == 0
    good = tmp_path / "directory.csv"
    good.write_bytes(CSV.encode("cp932"))
    dry = cli("directory", "import", str(good), "--dry-run")
    assert dry.exit_code == 0 and "書き込んでいません" in dry.output
    with Session() as session:
        assert not d.org_exists(session, "itabashi")
    result = cli("directory", "import", str(good), "--encoding", "cp932")
    assert result.exit_code == 0, result.output
    assert "組織 作成4" in result.output
    with Session() as session:
        assert d.descendants(session, "kenko-ikigai")[0] == "kenko-ikigai"

    bad = tmp_path / "bad.csv"
    bad.write_bytes("種別,コード,名前,親組織コード\n組織,z,Z,nope\n".encode("utf-8-sig"))
    failed = cli("directory", "import", str(bad))
    assert failed.exit_code == 2
    assert "rows[2].親組織コード: 組織コード「nope」はありません。" in failed.output
    missing = cli("directory", "import", str(tmp_path / "none.csv"))
    assert missing.exit_code == 2


# ---- properties ----------------------------------------------------------------------------

CELLS = st.tuples(st.sampled_from(["組織", "グループ", "所属", "部署", ""]), st.sampled_from(["a", "b", "c", "g", ""]),
                  st.sampled_from(["名", ""]), st.sampled_from(["a", "b", "c", "", "z"]),
                  st.sampled_from(["sato", "", "nobody"]), st.sampled_from(["○", "", "?"]))


@pytest.fixture(scope="module")
def sqlite_session(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'k.db'}")
    migrate.upgrade(engine)
    with make_sessionmaker(engine)() as s:
        users(s, "sato")
        s.commit()
        yield s
    engine.dispose()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(CELLS, max_size=8), junk=st.binary(max_size=40))
def test_any_csv_is_all_or_nothing_and_idempotent(sqlite_session, rows, junk):
    session = sqlite_session
    text = "種別,コード,名前,親組織コード,ユーザー,主所属\n" + "".join(",".join(r) + "\n" for r in rows)
    try:
        for data in (junk, text.encode()):
            try:
                d.import_csv(session, data)
            except ValidationError:
                assert not session.new and not session.dirty and not session.deleted
                continue
            # the paths match the parent links, and nobody has two primaries
            orgs = {o.id: o for o in session.scalars(select(Organization))}
            for o in orgs.values():
                parent = orgs.get(o.parent_id)
                assert o.path == (parent.path if parent else "/") + f"{o.id}/"
            again = d.import_csv(session, data)
            assert (again.organizations_created, again.organizations_updated, again.groups_created,
                    again.groups_updated, again.users_updated) == (0, 0, 0, 0, 0)
    finally:
        session.rollback()
