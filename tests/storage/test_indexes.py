"""Indexes follow the views (and unique fields); SQLite statistics follow the table's growth."""
from __future__ import annotations

from sqlalchemy import inspect, text

from kumiki.storage import stats

APP = {
    "name": "索引",
    "fields": [
        {"code": "番号", "type": "SINGLE_LINE_TEXT", "label": "番号", "unique": True},
        {"code": "区分", "type": "DROP_DOWN", "label": "区分", "options": ["A", "B"]},
        {"code": "日付", "type": "DATE", "label": "日付"},
        {"code": "金額", "type": "NUMBER", "label": "金額"},
        {"code": "明細", "type": "SUBTABLE", "label": "明細", "fields": [
            {"code": "品目", "type": "SINGLE_LINE_TEXT", "label": "品目"}]},
    ],
    "views": [{"name": "A の新しい順", "type": "LIST", "filterCond": '区分 in ("A") and 品目 like "x"',
               "sort": "日付 desc"}],
}


def _indexed_columns(engine, table):
    with engine.connect() as conn:
        return {tuple(ix["column_names"]) for ix in inspect(conn).get_indexes(table)}


def test_views_decide_the_indexes(any_admin_api):
    api = any_admin_api
    resp = api.post("/api/v1/apps?deploy=true", json=APP)
    assert resp.status_code == 201, resp.json
    app_id = resp.json["id"]
    ids = {f["code"]: f["id"] for f in resp.json["definition"]["fields"]}
    sub = next(f for f in resp.json["definition"]["fields"] if f["code"] == "明細")
    engine = api.app.extensions["kumiki"].engine
    cols = _indexed_columns(engine, f"app_{app_id}")
    assert (f"f_{ids['区分']}",) in cols and (f"f_{ids['日付']}",) in cols
    assert (f"f_{ids['番号']}",) in cols            # the unique index
    assert (f"f_{ids['金額']}",) not in cols         # no view uses it
    child = _indexed_columns(engine, f"app_{app_id}_t_{sub['id']}")
    assert (f"f_{sub['fields'][0]['id']}",) in child

    definition = api.get(f"/api/v1/apps/{app_id}").json["definition"]
    definition["views"] = [{"name": "金額順", "type": "LIST", "sort": "金額 desc"}]
    definition.pop("layout")
    api.put(f"/api/v1/apps/{app_id}/draft", json={"definition": definition})
    report = api.post(f"/api/v1/apps/{app_id}/deploy").json["report"]
    assert report["indexed"] == ["金額"] and set(report["unindexed"]) == {"区分", "日付", "品目"}
    cols = _indexed_columns(engine, f"app_{app_id}")
    assert (f"f_{ids['金額']}",) in cols and (f"f_{ids['区分']}",) not in cols
    # queries on unindexed fields still work
    api.post(f"/api/v1/apps/{app_id}/records", json={"records": [{"区分": "A", "日付": "2025-04-01"}]})
    assert len(api.get(f"/api/v1/apps/{app_id}/records", query_string={"query": '区分 in ("A")'}).json["records"]) == 1


def test_statistics_are_refreshed_as_the_table_grows(admin_api, monkeypatch):
    monkeypatch.setattr(stats, "MIN_ROWS", 20)
    api = admin_api
    app_id = api.post("/api/v1/apps?deploy=true", json=APP).json["id"]
    engine = api.app.extensions["kumiki"].engine
    url = f"/api/v1/apps/{app_id}/records"
    api.post(url, json={"records": [{"区分": "A"} for _ in range(10)]})

    def analyzed_rows():
        with engine.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM sqlite_master WHERE name='sqlite_stat1'")).first():
                return None
            stat = conn.execute(text("SELECT stat FROM sqlite_stat1 WHERE tbl=:t"), {"t": f"app_{app_id}"}).scalar()
            return int(stat.split()[0]) if stat else None

    assert analyzed_rows() is None
    api.post(url, json={"records": [{"区分": "B"} for _ in range(15)]})
    assert analyzed_rows() == 25
    api.post(url, json={"records": [{"区分": "B"} for _ in range(5)]})
    assert analyzed_rows() == 25          # grew by less than half: no new ANALYZE yet
