"""App definitions: JSON Schema + semantic validation, located Japanese errors, normalisation."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from kumiki import i18n
from kumiki.definitions import (check_view_queries, definition_fields, load_app_schema_json, semantic_details,
                                validate_definition)
from kumiki.definitions import validate as validate_mod
from kumiki.errors import Detail, ValidationError
from kumiki.fields import all_types
from kumiki.fields import get as get_field_type
from kumiki.storage.schema import SYSTEM_FIELDS, AppSchema, FieldDef

DATA = Path(__file__).resolve().parents[1] / "data" / "apps"
EXAMPLES = sorted(p.stem for p in DATA.glob("*.json"))
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def text(code: str, **kw) -> dict:
    return {"code": code, "type": "SINGLE_LINE_TEXT", "label": code, **kw}


def app(*fields, **extra) -> dict:
    return {"name": "テスト", "fields": list(fields), **extra}


def ja(d: Detail) -> str:
    return i18n.translate(d.key, "ja", **d.params)


def details(definition) -> list[Detail]:
    with pytest.raises(ValidationError) as ei:
        validate_definition(definition)
    assert ei.value.details, "a ValidationError must carry details"
    return ei.value.details


def error_at(definition, path: str, *, contains: str | None = None) -> Detail:
    """The detail located at ``path``; asserts it exists and reads as Japanese by default."""
    ds = details(definition)
    found = [d for d in ds if d.path == path]
    assert found, f"no error at {path!r}; got {[(d.path, d.key, ja(d)) for d in ds]}"
    d = found[0]
    message = ja(d)
    assert message != d.key, f"message {d.key!r} is not registered"
    assert JAPANESE.search(message), message
    if contains:
        assert contains in message, message
    return d


# ----------------------------------------------------------------------------------------------
# Examples, normalisation, schema file


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_validate_and_normalise_idempotently(name):
    definition = load(name)
    before = copy.deepcopy(definition)
    out = validate_definition(definition)
    assert definition == before, "the input must not be modified"
    assert validate_definition(out) == out
    # the views' queries also compile against the app as it would be deployed
    assert validate_definition(definition, schema_builder=_provisional_schema) == out


def test_there_are_example_apps():
    assert {"soudan", "expo_shutten"} <= set(EXAMPLES)


def test_schema_file_is_a_valid_draft_2020_12_schema_and_a_fresh_copy():
    schema = load_app_schema_json()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")
    schema["properties"].clear()
    assert load_app_schema_json()["properties"], "callers must get their own copy"


def test_schema_accepts_exactly_what_each_field_type_declares():
    """Per-type allowed properties in the schema == common ones + FieldType.properties (+ required)."""
    schema = load_app_schema_json()
    per_type = schema["$defs"]["fieldTypes"]
    common = {"code", "type", "label", "noLabel", "id"}
    registry = all_types()
    assert set(per_type) == set(registry)
    assert set(schema["$defs"]["fieldType"]["enum"]) == set(registry)
    for name, ftype in registry.items():
        expected = common | set(ftype.properties) | ({"required"} if ftype.can_be_required else set())
        assert set(per_type[name]["properties"]) == expected, name


def test_system_field_codes_agree_with_storage():
    assert validate_mod.SYSTEM_TYPES == {t: code for t, (code, _col) in SYSTEM_FIELDS.items()}


def test_normalise_fills_defaults_only_where_the_type_allows_them():
    out = validate_definition(app(
        text("氏名"),
        {"code": "備考", "type": "MULTI_LINE_TEXT", "label": "備考"},
        {"code": "金額", "type": "NUMBER", "label": "金額"},
        {"code": "見出し", "type": "LABEL", "label": "<b>見出し</b>"},
    ))
    f = {x["code"]: x for x in out["fields"]}
    assert f["氏名"]["required"] is False and f["氏名"]["unique"] is False and f["氏名"]["noLabel"] is False
    assert "unique" not in f["備考"] and f["備考"]["required"] is False
    assert f["金額"]["unitPosition"] == "AFTER" and f["金額"]["digit"] is False
    assert "required" not in f["見出し"] and "unique" not in f["見出し"]
    assert out["views"] == [] and out["settings"] == {} and out["description"] == ""


def test_default_layout_is_one_row_per_field_with_group_and_table_elements():
    out = validate_definition(load("expo_shutten"))
    layout = out["layout"]
    codes = [f["code"] for f in out["fields"]]
    assert len(layout) == len(codes)
    assert layout[0] == {"type": "ROW", "fields": ["申込日"]}
    assert {"type": "SUBTABLE", "code": "備品"} in layout
    out = validate_definition(app({"code": "基本", "type": "GROUP", "label": "基本"}, text("a"),
                                  {"code": "作成", "type": "CREATOR", "label": "作成者"}))
    assert out["layout"] == [{"type": "GROUP", "code": "基本", "layout": []}, {"type": "ROW", "fields": ["a"]}]


def test_fields_missing_from_a_given_layout_are_appended():
    out = validate_definition(app(text("a"), text("b"), {"code": "t", "type": "SUBTABLE", "label": "t",
                                                         "fields": [text("c")]},
                                  layout=[{"type": "ROW", "fields": ["b"]}]))
    assert out["layout"] == [{"type": "ROW", "fields": ["b"]}, {"type": "ROW", "fields": ["a"]},
                             {"type": "SUBTABLE", "code": "t"}]


def test_definition_fields_walks_top_level_and_table_fields():
    walked = definition_fields(load("soudan"))
    paths = [(p, f["code"], parent) for p, f, parent in walked]
    i = next(k for k, (_, code, _) in enumerate(paths) if code == "支援経過")
    assert paths[i + 1] == (f"{paths[i][0]}.fields[0]", "支援日", "支援経過")
    assert paths[0] == ("fields[0]", "受付番号", None)
    assert definition_fields({"fields": [1, {"code": "x", "type": "SUBTABLE", "fields": "no"}]}) == [
        ("fields[1]", {"code": "x", "type": "SUBTABLE", "fields": "no"}, None)]
    assert definition_fields([]) == [] and definition_fields({"fields": {}}) == []


# ----------------------------------------------------------------------------------------------
# JSON Schema errors, located and in Japanese


def test_not_an_object():
    d = error_at([], "", contains="オブジェクト")
    assert "is not of type" in i18n.translate(d.key, "en", **d.params)


def test_missing_app_name():
    d = error_at({"fields": []}, "name", contains="「アプリ名」は必須です")
    assert "'name' is a required property" in i18n.translate(d.key, "en", **d.params)


def test_missing_label_is_located_at_the_property():
    error_at(app({"code": "a", "type": "NUMBER"}), "fields[0].label", contains="必須です")


def test_unknown_top_level_property():
    error_at(app(colour="red"), "colour", contains="使えないプロパティです")


def test_options_only_for_choice_types():
    d = error_at(app(text("a", options=["x"])), "fields[0].options", contains="使えないプロパティです")
    assert i18n.translate(d.key, "en", **d.params) == "\"options\" is not an allowed property here."


def test_options_required_for_choice_types():
    for t in ("RADIO_BUTTON", "DROP_DOWN", "CHECK_BOX", "MULTI_SELECT"):
        error_at(app({"code": "a", "type": t, "label": "a"}), "fields[0].options", contains="必須です")


def test_property_of_the_wrong_json_type():
    error_at(app(text("a", required="yes")), "fields[0].required", contains="true または false")


def test_enum_property():
    error_at(app({"code": "a", "type": "NUMBER", "label": "a", "unitPosition": "LEFT"}), "fields[0].unitPosition",
             contains="BEFORE")


def test_label_too_long():
    error_at(app(text("a", label="あ" * 129)), "fields[0].label", contains="128文字以内")


def test_unknown_field_type():
    error_at(app({"code": "a", "type": "LOOKUP_PLUS", "label": "a"}), "fields[0].type", contains="LOOKUP_PLUS")


def test_duplicate_options():
    error_at(app({"code": "a", "type": "DROP_DOWN", "label": "a", "options": ["母子保健", "母子保健"]}),
             "fields[0].options")


def test_non_finite_numbers_are_reported():
    error_at(app({"code": "a", "type": "NUMBER", "label": "a", "minValue": float("nan")}), "fields[0].minValue",
             contains="NaN")


@pytest.mark.parametrize("code", ["$id", "a b", "a\u3000b", "a(b", "a)b", 'a"b', "a'b", "a,b", "a=b", "a<b",
                                  "a>b", "a!b", "a&b", "a|b", "a`b", "a{b", "a}b", "a[b", "a]b", "a.b", "1番",
                                  "a\tb", "a\nb", "a-b", "a+b", "a*b", "a/b"])
def test_field_codes_that_would_break_queries_are_refused(code):
    error_at(app(text(code)), "fields[0].code", contains="フィールドコードに使えません")


def test_empty_and_long_field_codes_are_refused():
    error_at(app(text("")), "fields[0].code", contains="1文字以上")
    error_at(app(text("あ" * 129)), "fields[0].code", contains="128文字以内")


@pytest.mark.parametrize("code", ["氏名", "customer_name", "支援・相談", "ＡＢＣ", "No1", "_x", "児童（第1子）",
                                  "ふりがな", "あ" * 128])
def test_field_codes_that_are_fine(code):
    validate_definition(app(text(code)))


# ----------------------------------------------------------------------------------------------
# Fields: codes, system fields, required/unique, subtables


def test_duplicate_code():
    d = error_at(app(text("氏名"), text("氏名")), "fields[1].code", contains="「氏名」が重複")
    assert d.params["other"] == "fields[0]"


def test_duplicate_code_across_a_subtable():
    error_at(app(text("支援日"), {"code": "支援経過", "type": "SUBTABLE", "label": "支援経過",
                                "fields": [{"code": "支援日", "type": "DATE", "label": "支援日"}]}),
             "fields[1].fields[0].code", contains="重複")


def test_duplicate_code_between_two_subtables():
    t1 = {"code": "t1", "type": "SUBTABLE", "label": "t1", "fields": [text("備考")]}
    t2 = {"code": "t2", "type": "SUBTABLE", "label": "t2", "fields": [text("備考")]}
    error_at(app(t1, t2), "fields[1].fields[0].code", contains="重複")


def test_code_of_an_unlisted_system_field_is_reserved():
    error_at(app(text("レコード番号")), "fields[0].code", contains="レコード番号")


def test_a_renamed_system_field_frees_its_default_code():
    out = validate_definition(app({"code": "受付番号", "type": "RECORD_NUMBER", "label": "受付番号"},
                                  text("レコード番号")))
    assert [f["code"] for f in out["fields"]] == ["受付番号", "レコード番号"]


def test_system_field_at_most_once():
    error_at(app({"code": "番号", "type": "RECORD_NUMBER", "label": "番号"},
                 {"code": "番号2", "type": "RECORD_NUMBER", "label": "番号2"}),
             "fields[1].type", contains="1つしか置けません")


def test_duplicate_field_ids():
    error_at(app(text("a", id=3), text("b", id=3)), "fields[1].id", contains="ID 3")


def test_required_only_where_the_type_allows_it():
    error_at(app({"code": "計", "type": "CALC", "label": "計", "formula": "1", "required": True}),
             "fields[0].required", contains="必須項目にできません")
    error_at(app({"code": "g", "type": "GROUP", "label": "g", "required": False}), "fields[0].required")


def test_unique_only_where_the_type_allows_it():
    error_at(app({"code": "備考", "type": "MULTI_LINE_TEXT", "label": "備考", "unique": True}),
             "fields[0].unique", contains="重複の禁止を設定できません")


def test_semantic_layer_checks_required_and_unique_against_the_registry():
    """The registry is the authority even where the schema was bypassed (semantic layer alone)."""
    ds = semantic_details({"fields": [{"code": "m", "type": "MULTI_LINE_TEXT", "label": "m", "unique": True},
                                      {"code": "c", "type": "CALC", "label": "c", "required": True}]})
    assert [(d.path, d.key) for d in ds if d.path.endswith(("unique", "required"))] == [
        ("fields[0].unique", "appdef.unique_not_allowed"), ("fields[1].required", "appdef.required_not_allowed")]


def test_subtable_needs_a_field():
    error_at(app({"code": "t", "type": "SUBTABLE", "label": "t", "fields": []}), "fields[0].fields",
             contains="1件以上")


@pytest.mark.parametrize("inner", [
    {"code": "t2", "type": "SUBTABLE", "label": "t2", "fields": [{"code": "x", "type": "DATE", "label": "x"}]},
    {"code": "g", "type": "GROUP", "label": "g"},
    {"code": "no", "type": "RECORD_NUMBER", "label": "no"},
    {"code": "l", "type": "LABEL", "label": "見出し"},
    {"code": "s", "type": "SPACER"},
])
def test_subtable_holds_no_tables_groups_system_or_layout_fields(inner):
    error_at(app({"code": "t", "type": "SUBTABLE", "label": "t", "fields": [text("a"), inner]}),
             "fields[0].fields[1].type", contains="テーブルの中に")


def test_unique_not_allowed_inside_a_subtable():
    error_at(app({"code": "t", "type": "SUBTABLE", "label": "t", "fields": [text("a", unique=True)]}),
             "fields[0].fields[0].unique", contains="テーブルの中のフィールド")


def test_type_unknown_to_the_registry_is_located(monkeypatch):
    registry = dict(all_types())
    del registry["RICH_TEXT"]
    monkeypatch.setattr(validate_mod, "_registry", lambda: registry)
    error_at(app({"code": "本文", "type": "RICH_TEXT", "label": "本文"}), "fields[0].type",
             contains="このサーバーでは使えません")


# ----------------------------------------------------------------------------------------------
# Type-specific checks (FieldType.check_definition) and default values


def test_number_min_greater_than_max():
    error_at(app({"code": "n", "type": "NUMBER", "label": "n", "minValue": 10, "maxValue": "1"}),
             "fields[0].minValue", contains="最小値が最大値より大きく")


def test_text_min_length_greater_than_max_length():
    error_at(app(text("a", minLength=5, maxLength=2)), "fields[0].minLength")


def test_type_specific_check_inside_a_subtable():
    error_at(app({"code": "t", "type": "SUBTABLE", "label": "t", "fields": [
        text("a"), {"code": "n", "type": "NUMBER", "label": "n", "minValue": 3, "maxValue": 1}]}),
        "fields[0].fields[1].minValue")


def test_default_not_an_option():
    error_at(app({"code": "区分", "type": "DROP_DOWN", "label": "区分", "options": ["母子保健", "児童福祉"],
                  "defaultValue": "高齢福祉"}), "fields[0].defaultValue", contains="高齢福祉")


def test_default_value_must_be_valid_for_the_type():
    error_at(app({"code": "d", "type": "DATE", "label": "d", "defaultValue": "2025-02-30"}), "fields[0].defaultValue")
    error_at(app(text("a", maxLength=3, defaultValue="あいうえお")), "fields[0].defaultValue", contains="3文字以内")
    error_at(app({"code": "u", "type": "LINK", "label": "u", "protocol": "MAIL", "defaultValue": "not-mail"}),
             "fields[0].defaultValue")
    error_at(app({"code": "n", "type": "NUMBER", "label": "n", "maxValue": 10, "defaultValue": "11"}),
             "fields[0].defaultValue")


def test_defaults_that_are_fine():
    validate_definition(app(
        {"code": "d", "type": "DATE", "label": "d", "defaultValue": "2025-04-01"},
        {"code": "c", "type": "CHECK_BOX", "label": "c", "options": ["a", "b"], "defaultValue": ["b"]},
        {"code": "u", "type": "USER_SELECT", "label": "u", "defaultValue": [{"type": "FUNCTION", "code": "LOGINUSER()"}]},
        {"code": "n", "type": "NUMBER", "label": "n", "defaultValue": 5},
    ))


# ----------------------------------------------------------------------------------------------
# Layout


def _layout_app(layout, *extra):
    return app(text("氏名"), text("区分"), {"code": "基本情報", "type": "GROUP", "label": "基本情報"},
               {"code": "支援内容", "type": "SUBTABLE", "label": "支援内容",
                "fields": [{"code": "支援日", "type": "DATE", "label": "支援日"}]}, *extra, layout=layout)


def test_layout_references_existing_fields():
    error_at(_layout_app([{"type": "ROW", "fields": ["氏名", "住所"]}]), "layout[0].fields[1]", contains="「住所」")


def test_layout_places_each_field_once():
    d = error_at(_layout_app([{"type": "ROW", "fields": ["氏名"]},
                              {"type": "GROUP", "code": "基本情報", "layout": [{"type": "ROW", "fields": ["区分", "氏名"]}]}]),
                 "layout[1].layout[0].fields[1]", contains="すでに配置されています")
    assert d.params["other"] == "layout[0].fields[0]"


def test_layout_item_object_form_is_located_at_its_code():
    error_at(_layout_app([{"type": "ROW", "fields": [{"code": "なし", "size": {"width": 100}}]}]),
             "layout[0].fields[0].code")


def test_group_element_must_reference_a_group_field():
    error_at(_layout_app([{"type": "GROUP", "code": "氏名", "layout": []}]), "layout[0].code",
             contains="グループのフィールドではありません")


def test_subtable_element_must_reference_a_subtable_field():
    error_at(_layout_app([{"type": "SUBTABLE", "code": "基本情報"}]), "layout[0].code",
             contains="テーブルのフィールドではありません")


def test_group_and_subtable_are_not_placed_in_rows():
    error_at(_layout_app([{"type": "ROW", "fields": ["基本情報"]}]), "layout[0].fields[0]", contains="GROUP")
    error_at(_layout_app([{"type": "ROW", "fields": ["支援内容"]}]), "layout[0].fields[0]", contains="SUBTABLE")


def test_subtable_fields_are_not_placed_outside_their_table():
    error_at(_layout_app([{"type": "ROW", "fields": ["支援日"]}]), "layout[0].fields[0]", contains="テーブルの外")


def test_subtable_element_lists_only_its_own_fields():
    error_at(_layout_app([{"type": "SUBTABLE", "code": "支援内容", "fields": ["支援日", "氏名"]}]),
             "layout[0].fields[1]", contains="テーブル「支援内容」のフィールドではありません")


def test_layout_shape_errors():
    error_at(_layout_app([{"type": "COLUMN", "fields": []}]), "layout[0].type")
    error_at(_layout_app([{"type": "ROW"}]), "layout[0].fields", contains="必須")
    error_at(_layout_app([{"type": "GROUP", "code": "基本情報", "layout": [{"type": "SUBTABLE", "code": "支援内容"}]}]),
             "layout[0].layout[0].type")


def test_unlisted_system_fields_may_be_placed():
    validate_definition(_layout_app([{"type": "ROW", "fields": ["レコード番号", "作成者", "氏名"]}]))


# ----------------------------------------------------------------------------------------------
# Views and settings


def _view_app(*views, **extra):
    return app(text("氏名"), {"code": "区分", "type": "DROP_DOWN", "label": "区分", "options": ["母子保健", "児童福祉"]},
               {"code": "相談日", "type": "DATE", "label": "相談日"},
               {"code": "経路", "type": "CHECK_BOX", "label": "経路", "options": ["来所", "電話"]},
               {"code": "主訴", "type": "MULTI_LINE_TEXT", "label": "主訴"},
               {"code": "支援内容", "type": "SUBTABLE", "label": "支援内容",
                "fields": [{"code": "支援日", "type": "DATE", "label": "支援日"}]},
               views=list(views), **extra)


def test_views_reference_existing_fields():
    error_at(_view_app({"name": "すべて", "type": "LIST", "fields": ["氏名", "電話番号"]}), "views[0].fields[1]",
             contains="「電話番号」")


def test_views_cannot_show_a_table_as_a_column():
    error_at(_view_app({"name": "すべて", "type": "LIST", "fields": ["支援内容"]}), "views[0].fields[0]",
             contains="一覧に表示できません")


def test_view_names_are_unique():
    error_at(_view_app({"name": "すべて", "type": "LIST"}, {"name": "すべて", "type": "LIST"}), "views[1].name",
             contains="「すべて」が重複")


def test_calendar_date_must_be_a_date_field():
    error_at(_view_app({"name": "予定", "type": "CALENDAR", "date": "氏名"}), "views[0].date",
             contains="日付・日時のフィールド")
    error_at(_view_app({"name": "予定", "type": "CALENDAR"}), "views[0].date", contains="必須")
    error_at(_view_app({"name": "予定", "type": "CALENDAR", "date": "支援日"}), "views[0].date",
             contains="テーブルの中のフィールド")
    validate_definition(_view_app({"name": "予定", "type": "CALENDAR", "date": "相談日", "title": "氏名"},
                                  {"name": "登録順", "type": "CALENDAR", "date": "作成日時"}))


def test_view_filter_syntax_error_is_located():
    d = error_at(_view_app({"name": "a", "type": "LIST", "filterCond": "区分 in (\"母子保健\""}), "views[0].filterCond")
    assert d.key.startswith("query.")


def test_view_filter_names_existing_fields_and_usable_operators():
    error_at(_view_app({"name": "a", "type": "LIST", "filterCond": "年齢 > 3"}), "views[0].filterCond",
             contains="「年齢」")
    error_at(_view_app({"name": "a", "type": "LIST", "filterCond": "経路 = \"来所\""}), "views[0].filterCond",
             contains="演算子「=」")
    validate_definition(_view_app({"name": "a", "type": "LIST",
                                   "filterCond": "経路 in (\"来所\") and 支援日 >= \"2025-04-01\" or $id > 10",
                                   "sort": "相談日 desc, レコード番号 asc"}))


def test_view_filter_is_only_a_condition_and_sort_only_order_items():
    error_at(_view_app({"name": "a", "type": "LIST", "filterCond": "氏名 like \"山\" order by 氏名 asc"}),
             "views[0].filterCond", contains="条件だけ")
    error_at(_view_app({"name": "a", "type": "LIST", "sort": "氏名 asc limit 10"}), "views[0].sort",
             contains="ソートには")


def test_view_sort_on_an_unsortable_field():
    error_at(_view_app({"name": "a", "type": "LIST", "sort": "主訴 asc"}), "views[0].sort", contains="ソートできません")
    error_at(_view_app({"name": "a", "type": "LIST", "sort": "支援日 asc"}), "views[0].sort", contains="ソートできません")


def test_view_sort_error_positions_are_relative_to_the_sort_text():
    d = error_at(_view_app({"name": "a", "type": "LIST", "sort": "氏名 sideways"}), "views[0].sort")
    assert d.params["position"] == 4


def test_title_field_must_exist_and_be_a_simple_top_level_field():
    error_at(_view_app(settings={"titleField": "なし"}), "settings.titleField", contains="「なし」")
    error_at(_view_app(settings={"titleField": "主訴"}), "settings.titleField", contains="タイトルにできません")
    error_at(_view_app(settings={"titleField": "支援日"}), "settings.titleField")
    validate_definition(_view_app(settings={"titleField": "レコード番号"}))


def _provisional_schema(definition: dict) -> AppSchema:
    """What the deploy code will build: ids, columns and tables for every field."""
    fields, ids = {}, {}
    listed = set()
    for n, (_path, fdef, parent) in enumerate(definition_fields(definition), start=1):
        ids[fdef["code"]] = n
        ftype = get_field_type(fdef["type"])
        if fdef["type"] in SYSTEM_FIELDS:
            listed.add(fdef["type"])
            column = SYSTEM_FIELDS[fdef["type"]][1]
        else:
            column = f"f_{n}" if ftype.kind in ("scalar", "multi") else None
        table = "app_1" if parent is None else f"app_1_t_{ids[parent]}"
        if fdef["type"] == "SUBTABLE":
            table = f"app_1_t_{n}"
        fields[fdef["code"]] = FieldDef(n, fdef["code"], fdef["type"], fdef, column, table, parent)
    for t, (code, column) in SYSTEM_FIELDS.items():
        if t not in listed:
            fields[code] = FieldDef(1000 + len(fields), code, t, {"code": code, "type": t}, column, "app_1")
    return AppSchema(app_id=1, version=1, definition=definition, fields=fields)


def test_view_queries_hook_compiles_against_a_schema_builder():
    good = _view_app({"name": "a", "type": "LIST", "filterCond": "相談日 = \"2025-04-01\"", "sort": "相談日 desc"})
    assert check_view_queries(good, _provisional_schema) == []
    validate_definition(good, schema_builder=_provisional_schema)
    bad = _view_app({"name": "a", "type": "LIST", "filterCond": "相談日 = \"あした\""})
    assert check_view_queries(bad) == []  # without a schema, literals are not checked
    found = check_view_queries(bad, _provisional_schema)
    assert [d.path for d in found] == ["views[0].filterCond"]
    with pytest.raises(ValidationError) as ei:
        validate_definition(bad, schema_builder=_provisional_schema)
    assert [d.path for d in ei.value.details] == ["views[0].filterCond"]


# ----------------------------------------------------------------------------------------------
# All problems together, in document order


def test_two_bad_fields_give_two_details():
    ds = details(app(text("a", options=["x"]), {"code": "b", "type": "NUMBER", "label": "b", "minValue": 2, "maxValue": 1}))
    assert [d.path for d in ds] == ["fields[0].options", "fields[1].minValue"]


def test_all_kinds_of_problem_are_collected_in_document_order():
    definition = app(*[text(f"f{i}") for i in range(10)], text("f1"), text("$bad"),
                     layout=[{"type": "ROW", "fields": ["f0", "無い"]}],
                     views=[{"name": "v", "type": "LIST"}, {"name": "v", "type": "LIST"}])
    definition["name"] = ""
    with pytest.raises(ValidationError) as ei:
        validate_definition(definition)
    e = ei.value
    assert e.code == "VALIDATION_ERROR" and e.key == "appdef.invalid"
    assert JAPANESE.search(i18n.translate(e.key, "ja"))
    assert [d.path for d in e.details] == ["fields[10].code", "fields[11].code", "layout[0].fields[1]", "name",
                                           "views[1].name"]


def test_one_message_per_place_when_schema_and_semantics_agree():
    ds = details(app({"code": "t", "type": "SUBTABLE", "label": "t", "fields": [
        {"code": "g", "type": "GROUP", "label": "g"}]}))
    assert [d.path for d in ds] == ["fields[0].fields[0].type"]


def test_english_messages():
    d = error_at(app(text("氏名"), text("氏名")), "fields[1].code")
    assert i18n.translate(d.key, "en", **d.params) == 'The field code "氏名" is used twice (also at fields[0]).'


# ----------------------------------------------------------------------------------------------
# Robustness: any JSON gives a normalised definition or a ValidationError, never anything else

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.sampled_from(["ROW", "GROUP", "SUBTABLE", "LIST", "CALENDAR", "氏名", "DATE"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["code", "type", "label", "fields", "options", "layout", "name", "views", "date",
                         "defaultValue", "minValue", "maxValue", "required", "unique", "filterCond", "sort"])
        | st.text(max_size=5), children, max_size=5),
    max_leaves=20)


def _check_outcome(definition):
    try:
        out = validate_definition(definition)
    except ValidationError as e:
        assert e.details
        for d in e.details:
            assert isinstance(d.path, str)
            assert i18n.translate(d.key, "ja", **d.params) != d.key, d.key
    else:
        assert validate_definition(out) == out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_json_only_ever_raises_validation_error(value):
    _check_outcome(value)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_examples(draw):
    definition = load(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(definition) if p]
        path = draw(st.sampled_from(paths))
        parent = definition
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "copy"]))
        if action == "delete":
            if isinstance(parent, list):
                parent.pop(path[-1])
            else:
                del parent[path[-1]]
        elif action == "copy" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        else:
            parent[path[-1]] = draw(json_values)
    return definition


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_examples())
def test_mutated_examples_only_ever_raise_validation_error(definition):
    _check_outcome(definition)
