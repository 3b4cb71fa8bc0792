"""clarec.llm: the generator interface, its cache, the in-process and endpoint backends, the
OpenAI-compatible server, and what happens when things go wrong."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from fastapi import FastAPI

from clarec.errors import ConfigError
from clarec.llm import EndpointError, EndpointGenerator, Generator, LocalGenerator, as_messages, openai_app

PROMPTS = ["Describe Toy Story in one sentence.", "Why watch Heat?", [{"role": "user", "content": "Hello"}]]


@pytest.fixture
def local(tiny_llm_dir, tmp_path):
    def build(**kwargs):
        return LocalGenerator(
            tiny_llm_dir, **({"cache_dir": tmp_path / "cache", "max_new_tokens": 8} | kwargs)
        )

    return build


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app: FastAPI):
    """``app`` on a loopback port in a background thread; yields its ``/v1`` URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


def test_answers_are_cached_and_a_rerun_generates_nothing(local, tmp_path):
    first = local()
    texts = first.generate(PROMPTS + [PROMPTS[0]])  # a repeated prompt is generated once
    assert len(texts) == 4 and texts[3] == texts[0] and all(isinstance(t, str) for t in texts)
    assert first.generated == 3
    again = local()  # a new process would see the same file
    assert again.generate(PROMPTS) == texts[:3] and again.generated == 0
    longer = again.generate(PROMPTS[:1], max_new_tokens=12)  # a changed setting is another answer
    assert again.generated == 1 and len(longer[0]) >= len(texts[0])
    off = local(cache_dir="none")
    off.generate(PROMPTS[:1])
    off.generate(PROMPTS[:1])
    assert off.generated == 2


def test_greedy_is_deterministic_and_independent_of_batching(local):
    one = local(cache_dir="none", batch_size=1).generate(PROMPTS)
    batched = local(cache_dir="none", batch_size=3).generate(PROMPTS)
    assert one == batched
    assert len(set(one)) > 1  # different prompts, different answers


def test_sampling_follows_the_seed(local):
    gen = local(cache_dir="none", max_new_tokens=12)
    a = gen.generate(PROMPTS[:1], temperature=2.0, seed=1)
    assert a == gen.generate(PROMPTS[:1], temperature=2.0, seed=1)
    others = {gen.generate(PROMPTS[:1], temperature=2.0, seed=s)[0] for s in range(2, 6)}
    assert others - set(a)


def test_bad_prompts_and_settings_are_refused_before_generating(local):
    gen = local(max_prompt_tokens=12)
    with pytest.raises(ConfigError, match="prompt 1 has .* tokens; at most 12"):
        gen.generate(["short", "a much longer prompt " * 10])
    assert gen.generated == 0
    for bad, match in ((42, "string or a non-empty list"), ([{"role": "robot", "content": "x"}], "role")):
        with pytest.raises(ConfigError, match=match):
            as_messages(bad)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        gen.generate(["x"], max_new_tokens=0)
    with pytest.raises(ConfigError, match="not found"):
        LocalGenerator("no/such/model")


def test_endpoint_answers_as_the_model_in_process(local):
    in_process = local(cache_dir="none", batch_size=1)
    expected = in_process.generate(PROMPTS)
    with serving(openai_app(in_process, name="tiny")) as url:
        remote = EndpointGenerator(url, "tiny", cache_dir="none", batch_size=2, max_new_tokens=8)
        assert remote.generate(PROMPTS) == expected
        import requests

        assert requests.get(f"{url}/models", timeout=5).json()["data"][0]["id"] == "tiny"
        bad = requests.post(f"{url}/chat/completions", json={"messages": []}, timeout=5)
        assert bad.status_code == 422
        # an answer that used every allowed token says so, as OpenAI's API does
        body = {"messages": [{"role": "user", "content": PROMPTS[0]}], "max_tokens": 1}
        answer = requests.post(f"{url}/chat/completions", json=body, timeout=60).json()
        cut = answer["choices"][0]
        assert cut["finish_reason"] == "length" and cut["message"]["content"]
        usage = answer["usage"]  # as OpenAI's API answers (it had none)
        assert usage["completion_tokens"] == 1 and usage["prompt_tokens"] > 5
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


class Flaky(Generator):
    """Answers ``echo: <content>`` and fails (raises) from the ``fail_after``-th prompt on."""

    model_id = "flaky"

    def __init__(self, fail_after=None, delay=0.0, **kwargs):
        super().__init__(**kwargs)
        self.fail_after, self.delay, self.calls = fail_after, delay, 0

    def _generate(self, batch, settings):
        time.sleep(self.delay)
        self.calls += len(batch)
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("backend crashed")
        return [f"echo: {m[-1]['content']}" for m in batch]


def test_endpoint_faults_get_a_clear_error(tmp_path):
    down = EndpointGenerator(
        f"http://127.0.0.1:{free_port()}/v1", "m", cache_dir="none", retries=2, backoff=0.01
    )
    with pytest.raises(EndpointError, match="cannot connect .*after 3 attempts"):
        down.generate(["x"])
    with serving(openai_app(Flaky(delay=1.0, cache_dir="none"))) as url:
        slow = EndpointGenerator(url, "m", cache_dir="none", timeout=0.2, retries=0)
        with pytest.raises(EndpointError, match="no answer within 0.2 s"):
            slow.generate(["x"])
    junk = FastAPI()
    junk.post("/v1/chat/completions")(lambda: {"answer": "no choices here"})
    with serving(junk) as url:
        with pytest.raises(EndpointError, match="not a chat completion"):
            EndpointGenerator(url, "m", cache_dir="none").generate(["x"])
    with pytest.raises(ConfigError, match="http"):
        EndpointGenerator("ftp://x", "m")


def test_what_was_generated_before_a_failure_is_kept(tmp_path):
    cache = tmp_path / "cache"
    prompts = [f"p{i}" for i in range(6)]
    with serving(openai_app(Flaky(fail_after=2, cache_dir="none"))) as url:  # 500 from the third prompt
        gen = EndpointGenerator(url, "m", cache_dir=cache, batch_size=2, retries=1, backoff=0.01)
        with pytest.raises(EndpointError, match="HTTP 500"):
            gen.generate(prompts)
    with serving(openai_app(Flaky(cache_dir="none"))) as url:
        gen = EndpointGenerator(url, "m", cache_dir=cache, batch_size=2)
        assert gen.generate(prompts) == [f"echo: {p}" for p in prompts]
        assert gen.generated == 4  # the first batch came from the cache


def test_a_decoder_only_lm_gives_text_vectors(tiny_llm_dir):
    from transformers import AutoModel

    from clarec.text import TextEncoder

    texts = ["toy story", "a much longer text about heat and crime in los angeles", "heat"]
    for pooling in ("last", "mean"):
        enc = TextEncoder(tiny_llm_dir, pooling=pooling, normalize=False, progress=False)
        together = enc.encode(texts)
        alone = np.stack([enc.encode([t])[0] for t in texts])
        np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)  # padding changes nothing
        assert together.shape == (3, 32)
    # last pooling is the base model's state at each text's last token
    base = AutoModel.from_pretrained(tiny_llm_dir).eval()
    ids = enc.tokenizer(texts[0], return_tensors="pt")["input_ids"][:, : enc._max_tokens]
    with torch.no_grad():
        state = base(input_ids=ids).last_hidden_state[0, -1].numpy()
    last = TextEncoder(tiny_llm_dir, pooling="last", normalize=False, progress=False).encode(texts[:1])[0]
    np.testing.assert_allclose(last, state, rtol=1e-4, atol=1e-5)


def test_llm_serve_command_serves_a_model(tiny_llm_dir, tmp_path):
    import os
    import subprocess
    import sys

    import requests

    port = free_port()
    env = {**os.environ, "CLAREC_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "clarec.cli", "llm-serve", "--model", str(tiny_llm_dir), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/models", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "llm-serve did not start"
                time.sleep(0.2)
        remote = EndpointGenerator(url, "clarec", cache_dir="none", max_new_tokens=8)
        local = LocalGenerator(tiny_llm_dir, cache_dir="none", max_new_tokens=8, batch_size=1)
        assert remote.generate(PROMPTS[:2]) == local.generate(PROMPTS[:2])
    finally:
        proc.terminate()
        proc.wait(10)


def test_answers_of_another_server_or_model_are_not_read_back(tmp_path):
    # the cache key was the model name sent ("default"): server B answered with server A's answers
    cache = tmp_path / "cache"

    class Says(Flaky):
        def __init__(self, word, **kwargs):
            super().__init__(**kwargs)
            self.word, self.model_id = word, f"says-{word}"

        def _generate(self, batch, settings):
            return [f"{self.word}: {m[-1]['content']}" for m in batch]

    with serving(openai_app(Says("A", cache_dir="none"))) as url:
        assert EndpointGenerator(url, "default", cache_dir=cache).generate(["hi"]) == ["A: hi"]
    with serving(openai_app(Says("B", cache_dir="none"))) as url:
        gen = EndpointGenerator(url, "default", cache_dir=cache)
        assert gen.generate(["hi"]) == ["B: hi"] and gen.generated == 1
    with serving(openai_app(Says("A", cache_dir="none"))) as url:  # A again, at another address
        gen = EndpointGenerator(url, "default", cache_dir=cache)
        assert gen.generate(["hi"]) == ["A: hi"] and gen.generated == 0
    for bad in ("http://bad host/v1", "http://127.0.0.1:99999/v1"):  # a traceback at the first request
        with pytest.raises(ConfigError, match="not a valid address"):
            EndpointGenerator(bad, "m")


def test_llm_serve_answers_as_an_openai_endpoint_does():
    import requests

    class Echo(Flaky):
        def _generate(self, batch, settings):
            return [f"seed {settings.seed} tokens {settings.max_new_tokens}. END more" for _ in batch]

    with serving(openai_app(Echo(cache_dir="none"))) as url:

        def ask(**body):
            body = {"messages": [{"role": "user", "content": "hi"}]} | body
            return requests.post(f"{url}/chat/completions", json=body, timeout=10)

        def text(**body):
            return ask(**body).json()["choices"][0]["message"]["content"]

        # sampling without a seed: a new draw each request (it was seed 0, the same text, every time)
        assert len({text(temperature=0.9) for _ in range(4)}) > 1
        assert text(temperature=0.9, seed=7) == text(temperature=0.9, seed=7)
        assert "tokens 5." in text(max_completion_tokens=5)  # was ignored
        assert text(stop=["END"]) == text(stop="END") == text().split("END")[0]
        for bad in ({"n": 2}, {"seed": 2**70}, {"max_tokens": 10**6}, {"temperature": -1}):
            assert ask(**bad).status_code == 422, bad  # 500 for the seed, a negative limit for max_tokens


def test_one_bad_prompt_does_not_lose_the_batchs_other_answers(tmp_path):
    # a 400 for one prompt of a batch of 4 threw away the 3 answers already generated
    class Picky(Flaky):
        def _generate(self, batch, settings):
            if any("bad" in m[-1]["content"] for m in batch):
                raise ConfigError("prompt refused")  # llm-serve answers 400
            return super()._generate(batch, settings)

    cache, prompts = tmp_path / "cache", ["p0", "bad", "p2", "p3"]
    with serving(openai_app(Picky(cache_dir="none"))) as url:
        gen = EndpointGenerator(url, "m", cache_dir=cache, batch_size=4)
        with pytest.raises(EndpointError, match="HTTP 400"):
            gen.generate(prompts)
        assert gen.generated == 3
        again = EndpointGenerator(url, "m", cache_dir=cache, batch_size=4)
        assert again.generate(["p0", "p2", "p3"]) == ["echo: p0", "echo: p2", "echo: p3"]
        assert again.generated == 0


def test_the_time_out_bounds_the_whole_answer_not_each_read():
    # a server that trickles its answer a byte at a time held the caller past any time-out
    import http.server

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gen = EndpointGenerator(
            f"http://127.0.0.1:{server.server_address[1]}/v1", "m", cache_dir="none", timeout=0.5, retries=0
        )
        gen._model_id = "trickle"
        start = time.monotonic()
        with pytest.raises(EndpointError, match="no answer within 0.5 s"):
            gen.generate(["x"])
        assert time.monotonic() - start < 2.0  # not the 4 s the server takes
    finally:
        server.shutdown()


def test_the_api_key_goes_over_https_or_to_this_machine_only(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    for url, sent in (
        ("https://api.example.org/v1", True),
        ("http://127.0.0.1:8080/v1", True),
        ("http://10.0.0.5:8080/v1", False),  # was sent in plain text to any server
    ):
        headers = EndpointGenerator(url, "m", cache_dir="none")._headers()
        assert (headers == {"Authorization": "Bearer sk-secret"}) is sent


def _raw_server(word: str, body: str = "whole"):
    """A plain OpenAI-like server (not clarec's): ``GET /v1/models`` lists ``default`` without a
    weights fingerprint; a POST answers ``word``, or with ``body`` "cut" / "stall" breaks off after a
    few bytes of a longer announced body (closing the connection / waiting 3 s)."""
    import http.server
    import json as json_

    class Handler(http.server.BaseHTTPRequestHandler):
        def _json(self, payload: dict, announce: int | None = None) -> None:
            data = json_.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(announce or len(data)))
            self.end_headers()
            if body == "whole":
                self.wfile.write(data)
                return
            self.wfile.write(data[:10])
            self.wfile.flush()
            if body == "stall":
                time.sleep(3)
            self.close_connection = True

        def do_GET(self):  # noqa: N802
            self._json({"data": [{"id": "default"}]})

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self._json(
                {"choices": [{"message": {"content": word}}]}, announce=500 if body != "whole" else None
            )

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def test_two_other_servers_listing_the_same_name_do_not_share_answers(tmp_path):
    # a server that is not clarec's lists "default" with no fingerprint: the key was that name alone
    (a, url_a), (b, url_b) = _raw_server("from A"), _raw_server("from B")
    try:
        assert EndpointGenerator(url_a, "default", cache_dir=tmp_path).generate(["hi"]) == ["from A"]
        gen = EndpointGenerator(url_b, "default", cache_dir=tmp_path)
        assert gen.generate(["hi"]) == ["from B"] and gen.generated == 1
        assert url_b in gen.model_id
    finally:
        a.shutdown()
        b.shutdown()


@pytest.mark.parametrize("body, message", [("cut", "cannot connect"), ("stall", "no answer within 0.5 s")])
def test_an_answer_broken_off_mid_body_is_retried_then_one_clear_error(body, message):
    # the body is read from the raw stream, whose urllib3 errors escaped the retries as they were
    server, url = _raw_server("x", body)
    try:
        gen = EndpointGenerator(url, "m", cache_dir="none", timeout=0.5, retries=1, backoff=0.0)
        gen._model_id = "broken"
        with pytest.raises(EndpointError, match=f"{message}.*after 2 attempts"):
            gen.generate(["x"])
    finally:
        server.shutdown()


def test_an_empty_answer_is_not_cached(tmp_path):
    class Blank(Generator):
        model_id = "blank"

        def _generate(self, batch, settings):
            return ["  " if "empty" in m[-1]["content"] else "fine" for m in batch]

    first = Blank(cache_dir=tmp_path / "cache")
    assert first.generate(["an empty one", "a full one"]) == ["  ", "fine"]
    again = Blank(cache_dir=tmp_path / "cache")
    again.generate(["an empty one", "a full one"])
    assert again.generated == 1  # the empty answer is asked again; the other comes from the cache


def test_the_cache_key_names_every_file_that_changes_an_answer(tiny_llm_dir, tmp_path):
    # two folders of one name and the same weights, one with another chat template: their answers
    # differ, so they must not share cached ones
    import json
    import shutil

    copies = []
    for n, template in enumerate(["{{ messages[0]['content'] }}", None]):
        folder = tmp_path / f"copy{n}" / "model"
        shutil.copytree(tiny_llm_dir, folder)
        if template is not None:
            config = folder / "tokenizer_config.json"
            settings = json.loads(config.read_text())
            settings["chat_template"] = template
            config.write_text(json.dumps(settings))
            (folder / "chat_template.jinja").unlink(missing_ok=True)
        copies.append(LocalGenerator(folder, cache_dir="none", max_new_tokens=2))
    assert copies[0].model_id.startswith("model@") and copies[0].model_id != copies[1].model_id
    same = LocalGenerator(tmp_path / "copy1" / "model", cache_dir="none", max_new_tokens=2)
    assert same.model_id == copies[1].model_id


def test_a_sampled_answer_does_not_depend_on_its_batch_nor_move_the_callers_generator(local):
    gen = local(cache_dir="none", temperature=1.0, seed=7, batch_size=3)
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    batched = gen.generate([PROMPTS[1], PROMPTS[0], "Why watch Alien?"])
    assert torch.equal(torch.rand(1), expected_draw)  # the caller's random state as it was
    alone = local(cache_dir="none", temperature=1.0, seed=7, batch_size=1).generate([PROMPTS[0]])
    assert batched[1] == alone[0]


def test_greedy_answers_share_one_cache_entry_and_drawn_seeds_are_not_cached(tmp_path):
    from fastapi.testclient import TestClient

    class Echo(Generator):
        model_id = "echo"

        def _generate(self, batch, settings):
            return [f"{m[-1]['content']} t={settings.temperature} s={settings.seed}" for m in batch]

    gen = Echo(cache_dir=tmp_path / "cache")
    gen.generate(["hi"], seed=1)
    gen.generate(["hi"], seed=2)  # greedy: the seed changes nothing, so neither does the answer
    assert gen.generated == 1
    gen.generate(["hi"], temperature=1.0, seed=1)
    gen.generate(["hi"], temperature=1.0, seed=2)
    assert gen.generated == 3  # sampled: another seed, another answer
    client = TestClient(openai_app(gen))
    body = {"messages": [{"role": "user", "content": "yo"}], "temperature": 1.0}
    for _ in range(3):  # no seed: the server draws one each time, and keeps none of them
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert gen.generated == 6
    import sqlite3

    with sqlite3.connect(gen.cache.path) as db:  # the greedy one and the two seeded ones
        assert db.execute("select count(*) from answers").fetchone()[0] == 3


def test_llm_serve_reads_text_parts_and_the_developer_role_and_refuses_other_parts():
    from fastapi.testclient import TestClient

    class Echo(Generator):
        model_id = "echo"

        def _generate(self, batch, settings):
            return [" | ".join(f"{m['role']}:{m['content']}" for m in b) for b in batch]

    client = TestClient(openai_app(Echo(cache_dir="none")))

    def ask(messages):
        return client.post("/v1/chat/completions", json={"messages": messages})

    parts = [{"type": "text", "text": "hello"}, {"type": "text", "text": "there"}]
    answer = ask([{"role": "developer", "content": "be brief"}, {"role": "user", "content": parts}])
    assert answer.status_code == 200, answer.text  # both were 422
    assert answer.json()["choices"][0]["message"]["content"] == "system:be brief | user:hello\nthere"
    image = [{"type": "image_url", "image_url": {"url": "data:,"}}]
    refused = ask([{"role": "user", "content": image}])
    assert refused.status_code == 400 and "only text content parts" in refused.json()["detail"]
    assert ask([{"role": "tool", "content": "x"}]).status_code == 400  # a role no generator takes


def test_llm_serve_turns_requests_away_beyond_its_queue():
    from fastapi.testclient import TestClient

    started, release = threading.Event(), threading.Event()

    class Slow(Generator):
        model_id = "slow"

        def _generate(self, batch, settings):
            started.set()
            release.wait(10)
            return ["done" for _ in batch]

    client = TestClient(openai_app(Slow(cache_dir="none"), queue=0))
    body = {"messages": [{"role": "user", "content": "hi"}]}
    first: list = []
    worker = threading.Thread(target=lambda: first.append(client.post("/v1/chat/completions", json=body)))
    worker.start()
    assert started.wait(10)
    busy = client.post("/v1/chat/completions", json=body)  # it waited behind the first, unbounded
    release.set()
    worker.join(10)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5" and "busy" in busy.json()["detail"]
    assert first[0].status_code == 200
    assert client.post("/v1/chat/completions", json=body).status_code == 200  # its place was given back
    with pytest.raises(ConfigError, match="queue"):
        openai_app(Slow(cache_dir="none"), queue=-1)


def test_an_answer_length_that_leaves_no_room_for_a_prompt_is_refused_clearly(local):
    gen = local()
    with pytest.raises(ConfigError, match=f"max_new_tokens {gen.context} leaves no room"):
        gen.generate(["hi"], max_new_tokens=gen.context)  # was: "at most -N fit"
    capped = local(max_prompt_tokens=10**6)  # a prompt limit beyond the context is held to it
    with pytest.raises(ConfigError, match=f"at most {capped.context - 8} fit"):
        capped.generate(["word " * capped.context])
    assert gen.generated == capped.generated == 0
