"""The real server (``clarec serve`` in a subprocess) over loopback HTTP."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from .helpers import Server, build_run, ids


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def history_ids(client, user):
    return [
        x["item_id"] for x in client.get(f"/v1/users/{user}/history", params={"limit": 1000}).json()["items"]
    ]


def test_health_docs_and_metrics(client):
    h = client.get("/v1/health").json()
    assert h["status"] == "ok" and h["model"] == "lm"  # the run's best model by default
    assert h["users"] == 40 and h["items"] >= 30 and h["store"] == "sqlite"
    assert h["index"]["kind"] == "exact" and h["index"]["recall@20"] == 1.0
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/users/{user_id}/recommendations" in paths and "/v1/events" in paths
    assert client.get("/docs").status_code == 200
    client.get("/v1/users/u1/recommendations")
    text = client.get("/metrics").text
    assert (
        'clarec_requests_total{method="GET",route="/v1/users/{user_id}/recommendations",status="200"}' in text
    )
    assert "clarec_request_seconds_bucket" in text
    assert "clarec_index_items " in text


def test_training_user_is_served_by_the_model_with_explanations(client):
    r = client.get("/v1/users/u2/recommendations", params={"k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["path"] == "model" and body["model"] == "lm" and len(body["items"]) == 5
    seen = set(history_ids(client, "u2"))
    assert not seen & set(ids(body))
    scores = [x["score"] for x in body["items"]]
    assert scores == sorted(scores, reverse=True)
    for item in body["items"]:
        because = item["explanation"]["because"]
        assert 1 <= len(because) <= 3 and {b["item_id"] for b in because} <= seen
        sims = [b["similarity"] for b in because]
        assert sims == sorted(sims, reverse=True) and sims[0] > 0
    # shared attributes are genres both items really have
    item = body["items"][0]
    info = client.get(f"/v1/items/{item['item_id']}").json()
    for b in item["explanation"]["because"]:
        other = client.get(f"/v1/items/{b['item_id']}").json()
        expected = sorted(set(info["attributes"]["genres"]) & set(other["attributes"]["genres"]))
        assert b["shared"].get("genres", []) == expected
    # seen items come back when asked
    all_items = client.get("/v1/users/u2/recommendations", params={"k": 1000, "exclude_seen": False}).json()
    assert seen <= set(ids(all_items))


def test_unknown_user_gets_the_popularity_fallback(client):
    body = client.get("/v1/users/stranger/recommendations", params={"k": 3}).json()
    assert body["path"] == "popularity" and len(body["items"]) == 3
    pops = [client.get(f"/v1/items/{i}").json()["popularity"] for i in ids(body)]
    assert pops == sorted(pops, reverse=True)


def test_an_event_changes_the_next_recommendations(client):
    before = client.get("/v1/users/u7/recommendations", params={"k": 10}).json()
    assert before["path"] == "model"
    target = before["items"][-1]["item_id"]
    r = client.post("/v1/events", json={"user_id": "u7", "item_id": target, "behavior": "click"})
    assert r.status_code == 200 and r.json() == {"accepted": 1}
    after = client.get("/v1/users/u7/recommendations", params={"k": 10}).json()
    assert after["path"] == "history" and after["history_mode"] == "exact"
    assert target not in ids(after)  # now seen
    assert [x["score"] for x in after["items"]] != [x["score"] for x in before["items"]]
    assert history_ids(client, "u7")[0] == target
    # a brand-new user with events is served from that history too
    client.post("/v1/events", json=[{"user_id": "newbie", "item_id": target, "timestamp": 5}])
    fresh = client.get("/v1/users/newbie/recommendations", params={"k": 5}).json()
    assert fresh["path"] == "history" and target not in ids(fresh)
    assert fresh["items"][0]["explanation"]["because"][0]["item_id"] == target


def test_a_new_item_is_recommendable_and_findable_at_once(client):
    top = client.get("/v1/users/u3/recommendations", params={"k": 3}).json()["items"][0]
    twin = client.get(f"/v1/items/{top['item_id']}").json()
    r = client.post(
        "/v1/items",
        json={"item_id": "fresh-1", "title": twin["title"], "genres": twin["attributes"]["genres"]},
    )
    assert r.status_code == 201 and r.json()["scored_from_text"] is True
    assert r.json()["unread_fields"] == []  # title and genres: the fields the model reads
    extra = client.post("/v1/items", json={"item_id": "other-0", "title": "x", "beschreibung": "Kaffee"})
    assert extra.json()["unread_fields"] == ["beschreibung"]  # kept and shown, but not scored
    assert client.get("/v1/items/other-0").json()["fields"] == {"beschreibung": "Kaffee"}  # was not shown
    assert list(twin["fields"]) == ["genres"]  # a catalogue item's own columns
    assert sorted(twin["fields"]["genres"]) == twin["attributes"]["genres"]
    # same text as the user's best item (genres perhaps in another order): recommended next to it
    recs = client.get("/v1/users/u3/recommendations", params={"k": 3}).json()
    assert set(ids(recs)[:2]) == {top["item_id"], "fresh-1"}
    sim = client.get(f"/v1/items/{top['item_id']}/similar", params={"k": 3}).json()
    assert (
        sim["items"][0]["item_id"] == "fresh-1" and sim["items"][0]["similarity"] > 0.99
    )  # genres may come in another order
    assert client.get("/v1/items", params={"q": "fresh"}).json()["items"][0]["item_id"] == "fresh-1"
    assert (
        client.get("/v1/items/fresh-1/similar", params={"k": 2}).json()["items"][0]["item_id"]
        == top["item_id"]
    )
    # and it can be interacted with
    assert client.post("/v1/events", json={"user_id": "u3", "item_id": "fresh-1"}).status_code == 200
    assert "fresh-1" not in ids(client.get("/v1/users/u3/recommendations").json())
    assert client.get("/v1/health").json()["added_items"] >= 1


def test_ids_holding_a_slash_are_addressable(client):
    # shop ids like "P 5/x" are accepted by POST, so every route that names an id must reach them
    r = client.post("/v1/items", json={"item_id": "P 5/x", "title": "item 7"})
    assert r.status_code == 201
    assert client.post("/v1/events", json={"user_id": "a/b", "item_id": "P 5/x"}).status_code == 200
    assert client.get("/v1/items/P%205%2Fx").json()["item_id"] == "P 5/x"
    assert client.get("/v1/items/P%205%2Fx/similar", params={"k": 2}).status_code == 200
    body = client.get("/v1/users/a%2Fb/recommendations", params={"k": 3}).json()
    assert body["user_id"] == "a/b" and body["path"] == "history" and "P 5/x" not in ids(body)
    assert [x["item_id"] for x in client.get("/v1/users/a%2Fb/history").json()["items"]] == ["P 5/x"]
    assert client.get("/v1/items/no%2Fsuch").status_code == 404
    # the metrics name the route's template, not the converter
    assert 'route="/v1/items/{item_id}"' in client.get("/metrics").text


def test_event_timestamps_may_be_iso_dates(client):
    # as the training files may hold them (timestamp_unit: datetime); a time without a zone is UTC
    events = [
        {"user_id": "iso-user", "item_id": "i3", "timestamp": "2024-03-05T10:00:00Z"},
        {"user_id": "iso-user", "item_id": "i4", "timestamp": "2024-03-05T11:00:00"},
        {"user_id": "iso-user", "item_id": "i5", "timestamp": 1709632800 - 60},  # 09:59 UTC
    ]
    assert client.post("/v1/events", json=events).json() == {"accepted": 3}
    assert history_ids(client, "iso-user") == ["i4", "i3", "i5"]  # most recent first
    soon = {"user_id": "iso-user", "item_id": "i6", "timestamp": int(time.time()) + 3600}
    assert client.post("/v1/events", json=soon).status_code == 200  # a clock a little ahead is fine


def test_diversity_reranks(client):
    plain = client.get("/v1/users/u4/recommendations", params={"k": 8}).json()
    diverse = client.get("/v1/users/u4/recommendations", params={"k": 8, "diversity": 0.9}).json()
    assert len(diverse["items"]) == 8 and ids(diverse)[0] == ids(plain)[0]
    assert ids(diverse) != ids(plain)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"item_id": "i1"}, "user_id"),
        ({"user_id": "u1", "item_id": "i1", "timestamp": "yesterday"}, "timestamp"),
        ([{"user_id": "u1", "item_id": "i1"}, {"user_id": "u1"}], "1.item_id"),
        ({"user_id": "u1", "item_id": "i1", "colour": "red"}, "colour"),
    ],
)
def test_malformed_events_are_422_naming_the_field(client, body, field):
    r = client.post("/v1/events", json=body)
    assert r.status_code == 422
    assert field in r.json()["fields"] and field in r.json()["error"]


def test_bad_input_codes_and_the_server_keeps_serving(client):
    n_events = client.get("/v1/health").json()["events"]
    assert (
        client.post(
            "/v1/events", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    r = client.post("/v1/events", json={"user_id": "u1", "item_id": "no-such-item"})
    assert r.status_code == 404 and "no-such-item" in r.json()["error"]
    # a batch with one unknown item is refused as a whole
    batch = [{"user_id": "u1", "item_id": "i1"}, {"user_id": "u1", "item_id": "nope"}]
    assert client.post("/v1/events", json=batch).status_code == 404
    big = [{"user_id": "u1", "item_id": "i1"}] * 1001
    assert client.post("/v1/events", json=big).status_code == 413
    huge = (
        b"["
        + b",".join([b'{"user_id": "u1", "item_id": "i1", "behavior": "' + b"x" * 60 + b'"}'] * 20000)
        + b"]"
    )
    assert (
        client.post("/v1/events", content=huge, headers={"content-type": "application/json"}).status_code
        == 413
    )
    # sent in chunks, a body has no length up front: it was read whole and stored (200)
    padded = b'{"user_id": "u1", "item_id": "i1"' + b" " * 1_100_000 + b"}"
    chunks = (padded[i : i + 65536] for i in range(0, len(padded), 65536))
    r = client.post("/v1/events", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413
    small = iter([b'{"user_id": "chunked", ', b'"item_id": "i1"}'])
    r = client.put(
        "/v1/users/chunked/profile",
        content=iter([b'{"text": "war', b' films"}']),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text  # a small chunked body is read as any other
    n_events += 1
    r = client.post("/v1/events", content=small, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json() == {"accepted": 1}, r.text
    assert client.get("/v1/health").json()["events"] == n_events  # nothing refused was stored
    assert client.get("/v1/items/no-such-item/similar").status_code == 404
    assert client.get("/v1/items/no-such-item").status_code == 404
    for params in ({"k": 0}, {"k": 1001}, {"k": "ten"}, {"diversity": 1.5}):
        r = client.get("/v1/users/u1/recommendations", params=params)
        assert r.status_code == 422 and r.json()["fields"][0].startswith("query.")
    assert client.get("/v1/items/i1/similar", params={"k": -1}).status_code == 422
    r = client.post("/v1/items", json={"item_id": "x-1"})
    assert r.status_code == 422 and r.json()["fields"] == ["title"]
    assert client.post("/v1/items", json={"item_id": "i1", "title": "dup"}).status_code == 409
    assert client.get("/v1/health").status_code == 200
    assert client.get("/v1/users/u1/recommendations", params={"k": 2}).status_code == 200
    # timestamps the store cannot hold, or that are not numbers; JSON nested past the parser's depth
    for user in ("   ", "a\x00b", "line\nbreak"):
        r = client.post("/v1/events", json={"user_id": user, "item_id": "i1"})
        assert r.status_code == 422 and r.json()["fields"] == ["user_id"], repr(user)
    for ts in (2**63, True, "100", "2024-13-45", "1969-12-31T00:00:00Z"):
        r = client.post("/v1/events", json={"user_id": "u1", "item_id": "i1", "timestamp": ts})
        assert r.status_code == 422 and r.json()["fields"] == ["timestamp"], ts
    # a time far ahead would stay the user's latest event for good (both were accepted)
    now = int(time.time())
    for ts, said in (
        (now * 1000, "milliseconds?"),
        (99999999999, "a day ahead"),
        ("3000-01-01", "a day ahead"),
    ):
        r = client.post("/v1/events", json={"user_id": "u1", "item_id": "i1", "timestamp": ts})
        assert r.status_code == 422 and r.json()["fields"] == ["timestamp"], ts
        assert said in json.dumps(r.json()), r.json()
    deep = "[" * 100_000 + "]" * 100_000
    for url in ("/v1/events", "/v1/items"):
        r = client.post(url, content=deep, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["fields"] == ["body"], url
    # a body cut short: the field is the body, not the character position where parsing stopped
    for method, url, text in (
        ("PUT", "/v1/users/newbie/profile", '{"text":"I'),
        ("POST", "/v1/items", '{"item_id":"x'),
        ("POST", "/v1/events", '{"user_id":'),
    ):
        r = client.request(method, url, content=text, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["fields"] == ["body"], (url, r.json())
        assert r.json()["error"] == "invalid request: body (not JSON)" or "not JSON" in str(
            r.json()["detail"]
        )
    assert client.get("/v1/health").json()["events"] == n_events


def test_a_profile_serves_a_user_without_history(client):
    r = client.put("/v1/users/profiled/profile", json={"text": "item 12"})
    assert r.status_code == 200 and r.json()["text"] == "item 12"
    assert r.json()["served_from_profile"] is True  # lm-content reads text
    body = client.get("/v1/users/profiled/recommendations", params={"k": 3}).json()
    assert body["path"] == "profile" and len(body["items"]) == 3
    r = client.put("/v1/users/profiled2/profile", json={"occupation": "engineer", "likes": ["space"]})
    assert r.json()["text"] == "Occupation: engineer. Likes: space."
    assert client.put("/v1/users/empty/profile", json={}).status_code == 422
    assert client.put("/v1/users/empty/profile", json={"text": 5}).status_code == 422
    # once the user has events, the history serves them
    client.post("/v1/events", json={"user_id": "profiled", "item_id": "i12"})
    assert client.get("/v1/users/profiled/recommendations").json()["path"] == "history"


@pytest.mark.parametrize(
    ("name", "mode"),
    [("lightgcn", "fold-in"), ("xsimgcl", "exact"), ("sasrec", "exact"), ("slit", "exact")],
)
def test_an_event_changes_a_models_next_recommendations(tmp_path, name, mode):
    # The graph models inherit their fold-in; the server must see it and serve the new history. A
    # sequential model reads the history in order, the event last (slit: closed form, no epochs).
    params = {"embedding_dim": 16, "epochs": 5, "progress": False, "num_threads": 1}
    if name == "slit":
        params = {"reg": 1.0}
    folder = build_run(tmp_path / "run", {name: (name, params)})
    server = Server(folder, f"sqlite:///{tmp_path / 'events.db'}").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.get("/v1/health").json()["history_mode"] == mode
            before = c.get("/v1/users/u7/recommendations", params={"k": 10}).json()
            assert before["path"] == "model"
            target = before["items"][-1]["item_id"]
            assert c.post("/v1/events", json={"user_id": "u7", "item_id": target}).json() == {"accepted": 1}
            after = c.get("/v1/users/u7/recommendations", params={"k": 10}).json()
            assert after["path"] == "history" and after["history_mode"] == mode
            assert target not in ids(after)
            assert [x["score"] for x in after["items"]] != [x["score"] for x in before["items"]]
            fresh = c.post("/v1/events", json={"user_id": "newbie", "item_id": target})
            assert fresh.status_code == 200
            assert c.get("/v1/users/newbie/recommendations", params={"k": 5}).json()["path"] == "history"
    finally:
        server.stop()


def test_a_sequential_text_model_serves_new_items_and_events_in_order(tmp_path, tiny_model_dir):
    # text-seq without ID vectors: an item posted with text has a vector at once (its text's), and
    # the user's next list reads the new event last
    params = {"encoder": str(tiny_model_dir), "cache_dir": "none", "adaptor_dropout": 0.0, "temperature": 0.1}
    params |= {"embedding_dim": 16, "inner_size": 32, "epochs": 5, "progress": False, "num_threads": 1}
    folder = build_run(tmp_path / "run", {"text-seq": ("text-seq", params)})
    server = Server(folder, f"sqlite:///{tmp_path / 'events.db'}").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.get("/v1/health").json()["history_mode"] == "exact"
            top = c.get("/v1/users/u5/recommendations", params={"k": 3}).json()["items"][0]
            twin = c.get(f"/v1/items/{top['item_id']}").json()
            fields = {"title": twin["title"], "genres": twin["attributes"]["genres"]}
            r = c.post("/v1/items", json={"item_id": "fresh-1", **fields})
            assert r.status_code == 201 and r.json()["scored_from_text"] is True
            recs = c.get("/v1/users/u5/recommendations", params={"k": 3}).json()
            # the same text (genres perhaps in another order): about the same score, right behind it
            assert ids(recs)[:2] == [top["item_id"], "fresh-1"]
            before = [x["score"] for x in recs["items"]]
            assert c.post("/v1/events", json={"user_id": "u5", "item_id": "fresh-1"}).status_code == 200
            after = c.get("/v1/users/u5/recommendations", params={"k": 3}).json()
            assert after["path"] == "history" and "fresh-1" not in ids(after)
            assert [x["score"] for x in after["items"]] != before
    finally:
        server.stop()
