"""An OpenAI-compatible chat endpoint over any clarec generator (``clarec llm serve``): other tools,
or :class:`~clarec.llm.endpoint.EndpointGenerator` on another machine, can use the bundled model
through the API they already speak. Routes: ``GET /v1/models``, ``POST /v1/chat/completions``
(``messages``, ``max_tokens`` or ``max_completion_tokens``, ``temperature`` — a request that samples
without a ``seed`` draws one, so repeated requests differ — ``seed``, ``stop``; one choice, no
streaming). A message's content is a string or a list of text parts (joined by new lines); the
``developer`` role is read as ``system``. One answer is generated at a time; at most ``queue``
requests wait for their turn, and one more is answered 503 (busy, retry later) at once."""

from __future__ import annotations

import logging
import secrets
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

#: the longest answer a request may ask for
MAX_TOKENS = 32768


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")  # e.g. a message's ``name``

    role: str
    content: str | list[_Part]

    def plain(self) -> dict[str, str]:
        """The message as the generators take it (``{"role", "content"}``, content a string)."""
        role = "system" if self.role == "developer" else self.role  # OpenAI's newer name for it
        if isinstance(self.content, str):
            return {"role": role, "content": self.content}
        other = sorted({p.type for p in self.content if p.type != "text"})
        if other:
            raise HTTPException(400, f"only text content parts are supported, got {', '.join(other)}")
        return {"role": role, "content": "\n".join(p.text or "" for p in self.content)}


class _ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients send fields this server does not use

    model: str | None = None
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)  # OpenAI's newer name
    temperature: float | None = Field(None, ge=0, le=2)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    n: int = Field(1, ge=1, le=1)  # one choice per request
    stop: str | list[str] | None = None
    stream: bool = False


def openai_app(generator: Generator, name: str = "clarec", queue: int = 16) -> FastAPI:
    """A FastAPI app answering chat completions with ``generator``: one request at a time, at most
    ``queue`` more waiting (another is answered 503 rather than held for minutes)."""
    if int(queue) < 0:
        raise ConfigError(f"queue must be >= 0, got {queue}")
    app = FastAPI(title="clarec LLM endpoint")
    lock = threading.Lock()  # one generation at a time: the model is not re-entrant
    admitted = threading.BoundedSemaphore(int(queue) + 1)  # the one generating and those waiting

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        # the weights' fingerprint too: a client keys its cached answers by it (another model served
        # under the same name is another model)
        entry = {"id": name, "object": "model", "owned_by": "clarec", "clarec_model_id": generator.model_id}
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions")
    def chat(request: _ChatRequest) -> dict[str, Any]:
        if request.stream:
            raise HTTPException(400, "streaming is not supported")
        seed, drawn = request.seed, False
        if seed is None and (request.temperature or 0) > 0:  # sampling: another draw each request
            seed, drawn = secrets.randbelow(2**32), True
        settings = {
            k: v
            for k, v in (
                ("max_new_tokens", request.max_completion_tokens or request.max_tokens),
                ("temperature", request.temperature),
                ("seed", seed),
            )
            if v is not None
        }
        messages = [m.plain() for m in request.messages]
        if not admitted.acquire(blocking=False):
            busy = f"busy: {queue} requests are already waiting; retry later"
            raise HTTPException(503, busy, headers={"Retry-After": "5"})
        try:
            with lock:
                # an answer to a seed drawn here is not cached: no request would ask for it again
                (text,) = generator.generate([messages], store=not drawn, **settings)
        except ConfigError as e:
            raise HTTPException(400, str(e)) from None
        except Exception as e:  # a clean 500 (the client retries), not a dropped connection
            log.exception("generation failed")
            raise HTTPException(500, f"generation failed: {type(e).__name__}: {e}") from None
        finally:
            admitted.release()
        # "length" where the answer used every token it was allowed (counted where the tokenizer is at hand)
        limit = settings.get("max_new_tokens", generator.settings.max_new_tokens)
        tokenizer = getattr(generator, "tokenizer", None)
        usage = None
        if tokenizer is not None:  # counted as the model reads them (its chat template)
            completion = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            chat = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            prompt = len(tokenizer(chat, add_special_tokens=False)["input_ids"])
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        cut = usage is not None and usage["completion_tokens"] >= limit
        stops = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
        ends = [text.find(x) for x in stops if x and x in text]
        if ends:  # the answer ends before the first stop sequence, as OpenAI's API answers
            text, cut = text[: min(ends)], False
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
        } | ({"usage": usage} if usage is not None else {})

    return app
