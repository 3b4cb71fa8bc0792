"""Explanations in words: opt-in per request, written from the structured explanation, cached, and a
template sentence (logged) when generation fails; the default path does not touch the generator."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from clarec.llm import Generator
from clarec.llm.explain import sentence_prompt, template_sentence
from clarec.serve.app import create_app
from clarec.serve.service import RecService


class Scripted(Generator):
    model_id = "scripted"

    def __init__(self, fail=False, **kwargs):
        super().__init__(**kwargs)
        self.fail, self.prompts = fail, []

    def _generate(self, batch, settings):
        if self.fail:
            raise TimeoutError("endpoint too slow")
        self.prompts += [m[-1]["content"] for m in batch]
        return [f"Because of {m[-1]['content'].splitlines()[0]}" for m in batch]


@pytest.fixture
def service(run_dir):
    svc = RecService(run_dir, db_url="sqlite://", model_label="knn")
    yield svc
    svc.close()


def test_sentences_are_written_from_the_explanation_and_cached(service, tmp_path):
    service.explainer = Scripted(cache_dir=tmp_path / "cache")
    client = TestClient(create_app(service))
    plain = client.get("/v1/users/u1/recommendations", params={"k": 3}).json()
    assert service.explainer.generated == 0 and "sentence" not in plain["items"][0]["explanation"]
    words = client.get("/v1/users/u1/recommendations", params={"k": 3, "words": "true"}).json()
    for item, prompt in zip(words["items"], service.explainer.prompts, strict=True):
        exp = item["explanation"]
        assert exp["sentence_source"] == "llm" and exp["sentence"].startswith(
            f"Because of Recommended item: {item['title']}"
        )
        assert prompt == sentence_prompt(item["title"], exp)  # only the facts of the structured explanation
        for b in exp["because"]:
            assert b["title"] in prompt
    assert service.explainer.generated == 3
    again = client.get("/v1/users/u1/recommendations", params={"k": 3, "words": "true"}).json()
    assert again["items"] == words["items"] and service.explainer.generated == 3  # from the cache


def test_failures_fall_back_to_a_template_and_words_need_a_generator(service, caplog):
    client = TestClient(create_app(service))
    r = client.get("/v1/users/u1/recommendations", params={"k": 2, "words": "true"})
    assert r.status_code == 501 and "--explain-words" in r.json()["error"]
    service.explainer = Scripted(fail=True, cache_dir="none")
    items = client.get("/v1/users/u1/recommendations", params={"k": 2, "words": "true"}).json()["items"]
    for item in items:
        assert item["explanation"]["sentence_source"] == "template"
        assert item["explanation"]["sentence"] == template_sentence(item["title"], item["explanation"])
    assert "generation failed (TimeoutError" in caplog.text
    # a model that just failed is left alone a while: the next lists are not held up by its time-out
    service.explainer.calls = 0
    service.explainer._generate = lambda batch, settings: service.explainer.__setattr__("calls", 1) or []
    again = client.get("/v1/users/u1/recommendations", params={"k": 3, "words": "true"}).json()["items"]
    assert service.explainer.calls == 0 and {i["explanation"]["sentence_source"] for i in again} == {
        "template"
    }
    service.explainer.down_until = 0.0  # its back-off over: asked again
    client.get("/v1/users/u1/recommendations", params={"k": 3, "words": "true"})
    assert service.explainer.calls == 1


def test_template_sentences():
    exp = {
        "because": [{"item_id": "a", "title": "Heat"}, {"item_id": "b", "title": None}],
        "shared": {"genres": ["Crime"]},
    }
    assert template_sentence("Ronin", exp) == "Recommended because you chose Heat, b (genres: Crime)."
    assert template_sentence("Ronin", {"because": [], "shared": {}}) == "Ronin is popular with other users."
    # the shared facts may come from the third item: it is named too
    exp["because"].append({"item_id": "c", "title": "Se7en"})
    assert template_sentence("Ronin", exp) == "Recommended because you chose Heat, b, Se7en (genres: Crime)."


def test_explain_words_option(tiny_llm_dir):
    from clarec.llm import EndpointGenerator, LocalGenerator
    from clarec.serve.app import explanation_generator

    assert isinstance(explanation_generator("http://127.0.0.1:9/v1"), EndpointGenerator)
    hosted = explanation_generator("https://api.example.org/v1", "gpt-4o-mini")  # was always "default"
    assert hosted.model == "gpt-4o-mini" and hosted.timeout == 10.0 and hosted.retries == 0
    assert isinstance(explanation_generator(str(tiny_llm_dir)), LocalGenerator)


def test_an_empty_answer_keeps_the_template_sentence(service):
    # an empty generated sentence was served as the model's explanation
    service.explainer = Scripted(cache_dir="none")
    service.explainer._generate = lambda batch, settings: ["  "] + ["Fine."] * (len(batch) - 1)
    items = (
        TestClient(create_app(service))
        .get("/v1/users/u1/recommendations", params={"k": 2, "words": "true"})
        .json()["items"]
    )
    first, second = (item["explanation"] for item in items)
    assert first["sentence_source"] == "template" and first["sentence"] == template_sentence(
        items[0]["title"], first
    )
    assert (second["sentence"], second["sentence_source"]) == ("Fine.", "llm")


def test_an_item_with_no_history_behind_it_is_not_sent_to_the_model(service):
    # given nothing but a title the model invents reasons ("for its durability"): such an item gets
    # the template, which says what served the user
    service.explainer = Scripted(cache_dir="none")
    client = TestClient(create_app(service))
    body = client.get("/v1/users/stranger/recommendations", params={"k": 3, "words": "true"}).json()
    assert body["path"] == "popularity" and service.explainer.generated == 0
    for item in body["items"]:
        exp = item["explanation"]
        assert exp["sentence_source"] == "template"
        assert exp["sentence"] == f"{item['title']} is popular with other users."
    none = {"because": [], "shared": {}}
    assert template_sentence("Ronin", none, "profile") == "Ronin matches the profile you gave."
    assert template_sentence("Ronin", none, "model") == "Ronin is ranked high for you by the model."
