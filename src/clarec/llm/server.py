"""An OpenAI-compatible chat endpoint over any clarec generator (``clarec llm serve``): other tools,
or :class:`~clarec.llm.endpoint.EndpointGenerator` on another machine, can use the bundled model
through the API they already speak. Routes: ``GET /v1/models``, ``POST /v1/chat/completions``
(``messages``, ``max_tokens``, ``temperature``, ``seed``; no streaming)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from clarec.errors import ConfigError
from clarec.llm.base import Generator

__all__ = ["openai_app"]

log = logging.getLogger("clarec.llm")


class _Message(BaseModel):
    role: str
    content: str


class _ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients send fields this server does not use

    model: str | None = None
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    seed: int | None = None
    stream: bool = False


def openai_app(generator: Generator, name: str = "clarec") -> FastAPI:
    """A FastAPI app answering chat completions with ``generator`` (one request at a time)."""
    app = FastAPI(title="clarec LLM endpoint")
    lock = threading.Lock()  # one generation at a time: the model is not re-entrant

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "clarec"}]}

    @app.post("/v1/chat/completions")
    def chat(request: _ChatRequest) -> dict[str, Any]:
        if request.stream:
            raise HTTPException(400, "streaming is not supported")
        settings = {
            k: v
            for k, v in (
                ("max_new_tokens", request.max_tokens),
                ("temperature", request.temperature),
                ("seed", request.seed),
            )
            if v is not None
        }
        messages = [m.model_dump() for m in request.messages]
        try:
            with lock:
                (text,) = generator.generate([messages], **settings)
        except ConfigError as e:
            raise HTTPException(400, str(e)) from None
        except Exception as e:  # a clean 500 (the client retries), not a dropped connection
            log.exception("generation failed")
            raise HTTPException(500, f"generation failed: {type(e).__name__}: {e}") from None
        # "length" where the answer used every token it was allowed (counted where the tokenizer is at hand)
        limit = settings.get("max_new_tokens", generator.settings.max_new_tokens)
        tokenizer = getattr(generator, "tokenizer", None)
        cut = tokenizer is not None and len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= limit
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model or name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if cut else "stop",
                }
            ],
        }

    return app
