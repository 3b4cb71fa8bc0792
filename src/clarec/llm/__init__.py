"""Generative language models: one interface (:class:`Generator`: prompts in, texts out, batched, cached
on disk, greedy by default), run in process (:class:`LocalGenerator`, the bundled SmolLM2 by default,
offline) or by any OpenAI-compatible endpoint (:class:`EndpointGenerator`); :func:`openai_app` serves
a generator as such an endpoint."""

from clarec.llm.base import GenerationCache, GenerationSettings, Generator, as_messages
from clarec.llm.endpoint import EndpointError, EndpointGenerator
from clarec.llm.local import LocalGenerator, bundled_gguf
from clarec.llm.server import openai_app

__all__ = [
    "EndpointError",
    "EndpointGenerator",
    "GenerationCache",
    "GenerationSettings",
    "Generator",
    "LocalGenerator",
    "as_messages",
    "bundled_gguf",
    "openai_app",
]
