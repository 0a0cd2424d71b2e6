"""Comments with replies and @mentions, visible exactly to those who may see the record."""
from __future__ import annotations

from kumiki import audit
from tests.conftest import ApiClient, make_user

APP = {"name": "相談", "fields": [
    {"code": "氏名", "type": "SINGLE_LINE_TEXT", "label": "氏名"},
    {"code": "担当者", "type": "USER_SELECT", "label": "担当者"}],
    "permissions": {"record": [{"condition": "", "entities": [
        {"entity": {"type": "FIELD_ENTITY", "code": "担当者"}, "view": True, "edit": True}]}]}}


def test_comment_thread_mentions_and_permissions(any_app):
    from kumiki import directory

    app = any_app
    _a, admin_token = make_user(app, "admin")
    sato = ApiClient(app, make_user(app, "sato", is_admin=False)[1])
    other = ApiClient(app, make_user(app, "other", is_admin=False)[1])
    with app.extensions["kumiki"].Session() as s:
        directory.create_group(s, "hokenshi", "保健師")
        s.commit()
    admin = ApiClient(app, admin_token)
    app_id = admin.post("/api/v1/apps?deploy=true", json=APP).json["id"]
    rid = admin.post(f"/api/v1/apps/{app_id}/records", json={"record": {"氏名": "A", "担当者": ["sato"]}}).json["id"]
    url = f"/api/v1/apps/{app_id}/records/{rid}/comments"

    first = sato.post(url, json={"text": "家庭訪問しました。@保健師 確認お願いします",
                                 "mentions": [{"code": "hokenshi", "type": "GROUP"}, {"code": "admin"}]})
    assert first.status_code == 201, first.json
    reply = admin.post(url, json={"text": "確認しました", "parent_id": first.json["id"]})
    assert reply.status_code == 201
    assert admin.post(url, json={"text": "x", "parent_id": reply.json["id"]}).status_code == 400   # one level
    bad = sato.post(url, json={"text": "x", "mentions": [{"code": "nobody"}]})
    assert bad.status_code == 400 and "mentions[0]" in bad.json["errors"]
    assert sato.post(url, json={"text": "   "}).status_code == 400

    thread = sato.get(url).json["comments"]
    assert [c["text"] for c in thread] == ["家庭訪問しました。@保健師 確認お願いします"]
    assert thread[0]["mentions"] == [{"type": "GROUP", "code": "hokenshi"}, {"type": "USER", "code": "admin"}]
    assert [r["text"] for r in thread[0]["replies"]] == ["確認しました"]
    # someone who may not see the record sees no comments and cannot write one
    assert other.get(url).status_code == 404
    assert other.post(url, json={"text": "覗き見"}).status_code == 404
    # only the author (or an app manager) withdraws a comment
    assert sato.delete(f"{url}/{reply.json['id']}").status_code == 403
    assert sato.delete(f"{url}/{first.json['id']}").status_code == 204
    withdrawn = admin.get(url).json["comments"][0]
    assert withdrawn["deleted"] and withdrawn["text"] == "" and withdrawn["replies"][0]["text"] == "確認しました"
    with app.extensions["kumiki"].Session() as s:
        actions = {e.action for e in audit.query(s, app_id=app_id, limit=100)[0]}
    assert {"comment.create", "comment.list", "comment.delete"} <= actions
