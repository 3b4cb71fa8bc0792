"""The HTTP API (FastAPI) over a :class:`~clarec.serve.service.RecService`.

Endpoints (OpenAPI docs at ``/docs``, schema at ``/openapi.json``)::

    GET  /                                      demo page (plain HTML + JS)
    GET  /v1/users/{user_id}/recommendations    ?k=20&exclude_seen=true&diversity=0.0
    GET  /v1/users/{user_id}/history            the user's items, most recent first
    PUT  /v1/users/{user_id}/profile            {text} or profile fields: cold-start users
    GET  /v1/users                              user ids (for the demo page)
    GET  /v1/items/{item_id}/similar            ?k=20
    GET  /v1/items/{item_id}                    one item
    GET  /v1/items                              ?q=text search over titles and ids
    POST /v1/events                             one event or a list of at most MAX_BATCH
    POST /v1/items                              {item_id, title, ...text fields}
    GET  /v1/health
    GET  /metrics                               Prometheus text format

Errors: a malformed body or parameter → 422 naming the field; an unknown item → 404; a batch of
more than ``MAX_BATCH`` events or a body over ``MAX_BODY_BYTES`` → 413; an existing item id → 409.
Every error is answered as JSON and the server keeps serving.

Why one file of this length: the request and response schemas sit next to the routes that use them,
so each endpoint's contract reads in one place.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from clarec.errors import ClarecError, UnknownIdError
from clarec.serve.service import RANKING_CACHE_SIZE, ConflictError, RecService, UnsupportedError
from clarec.serve.store import Event

log = logging.getLogger("clarec.serve")

#: Most events accepted in one request.
MAX_BATCH = 1000
#: Largest request body accepted (bytes).
MAX_BODY_BYTES = 1_000_000
#: Most items per answer.
MAX_K = 1000
#: How far ahead of the server's clock an event's timestamp may be (clocks differ a little).
MAX_AHEAD_SECONDS = 86_400


class EventIn(BaseModel):
    """One interaction: ``timestamp`` in seconds or an ISO 8601 date (a time without a zone is UTC;
    default: when it is received)."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=255)
    item_id: str = Field(min_length=1, max_length=255)
    behavior: str = Field("interaction", min_length=1, max_length=64)
    timestamp: int | None = Field(None, ge=0, le=2**63 - 1, strict=True)  # what the store holds

    @field_validator("timestamp", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                "a timestamp is whole seconds or an ISO 8601 date (2024-03-05T10:00:00Z)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int(when.timestamp())  # before 1970 fails the check below (ge=0)

    @field_validator("timestamp")
    @classmethod
    def _not_ahead(cls, value: int | None) -> int | None:
        # a time far ahead would stay the user's latest event, before everything that follows it
        ahead = 0 if value is None else value - time.time()
        if ahead > MAX_AHEAD_SECONDS:
            unit = " (milliseconds? a timestamp is whole seconds)" if value > 10**11 else ""
            raise ValueError(f"a timestamp is at most a day ahead of this server's clock{unit}")
        return value

    @field_validator("user_id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("a user id is printable text, not blank (no control characters)")
        return value


_EVENTS = TypeAdapter(list[EventIn])


class ItemIn(BaseModel):
    """A new item: its id, title and any further text fields (genres, categories, brand, description...)."""

    model_config = ConfigDict(extra="allow")
    item_id: str = Field(min_length=1, max_length=255)
    title: str = Field(min_length=1, max_length=2000)

    @field_validator("item_id", "title")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class ProfileIn(BaseModel):
    """A user's profile: ``text``, or fields (age, occupation, likes...) written as one text."""

    model_config = ConfigDict(extra="allow")
    text: str | None = Field(None, max_length=5000)


class ProfileOut(BaseModel):
    user_id: str
    text: str
    served_from_profile: bool  # false: the model cannot read text, so the user gets popularity


class ExplanationItem(BaseModel):
    item_id: str
    title: str | None
    similarity: float
    shared: dict[str, list[str]]


class Explanation(BaseModel):
    because: list[ExplanationItem]
    shared: dict[str, list[str]]
    sentence: str | None = Field(None, description="with words=true: why, in one sentence")
    sentence_source: str | None = Field(None, description="llm, or template when generation failed")


class RecommendedItem(BaseModel):
    item_id: str
    title: str | None
    score: float
    explanation: Explanation


class RecommendationsOut(BaseModel):
    user_id: str
    path: str = Field(description="what served the user: model, history, profile or popularity")
    model: str
    history_mode: str | None = Field(description="exact, fold-in or constant (path 'history' only)")
    items: list[RecommendedItem]


class SimilarItem(BaseModel):
    item_id: str
    title: str | None
    similarity: float


class SimilarOut(BaseModel):
    item_id: str
    items: list[SimilarItem]


class EventsOut(BaseModel):
    accepted: int


class ItemOut(BaseModel):
    item_id: str
    index: int
    scored_from_text: bool
    unread_fields: list[str]  # given, but not among the text fields the model reads (kept and shown)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message, **extra})


def _json(payload: dict[str, Any]) -> Response:
    """A JSON answer written directly (as ``JSONResponse`` writes it), without FastAPI validating it
    against the response model again: the service builds it in that shape."""
    body = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), media_type="application/json")


class MeasureMiddleware:
    """Refuses bodies over ``MAX_BODY_BYTES`` (413) and records each request's latency and status
    per route. Plain ASGI: Starlette's ``BaseHTTPMiddleware`` costs a task and a stream per request."""

    def __init__(self, app, observe) -> None:
        self.app, self.observe = app, observe

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _error(413, f"request body over {MAX_BODY_BYTES} bytes")
        length = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if length is not None:
            if length.isdigit() and int(length) > MAX_BODY_BYTES:
                await too_large(scope, receive, send)
                return
        elif scope["method"] in ("POST", "PUT", "PATCH"):
            # a body sent in chunks says nothing of its size up front: read it here, up to the limit
            messages, size = [], 0
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                size += len(message.get("body", b""))
                if size > MAX_BODY_BYTES:
                    await too_large(scope, receive, send)
                    return
                if not message.get("more_body"):
                    break
            upstream = receive

            async def receive():  # the body read above, then whatever comes next (a disconnect)
                return messages.pop(0) if messages else await upstream()

        t0 = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_status)
        route = scope.get("route")
        label = getattr(route, "path_format", "unmatched")  # the template without converters
        self.observe(scope["method"], label, status, time.perf_counter() - t0)


def create_app(service: RecService) -> FastAPI:
    """The FastAPI application serving ``service``."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )

    app = FastAPI(
        title="clarec",
        version="1",
        description="Real-time recommendations from a clarec run folder: live events, new items, explanations.",
    )
    app.state.service = service
    registry = CollectorRegistry()
    requests_total = Counter(
        "clarec_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "clarec_request_seconds",
        "Request latency",
        ["route"],
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        registry=registry,
    )
    paths_total = Counter(
        "clarec_recommendation_paths_total", "Users served per path", ["path"], registry=registry
    )
    Gauge(
        "clarec_index_items", "Items in the vector index (or the catalogue without one)", registry=registry
    ).set_function(lambda: service.index.size if service.index is not None else len(service.item_ids))
    Gauge("clarec_items", "Items in the catalogue", registry=registry).set_function(
        lambda: len(service.item_ids)
    )
    Gauge("clarec_events", "Events accepted since the data was collected", registry=registry).set_function(
        lambda: service.n_events
    )

    def observe(method: str, route: str, status: int, seconds: float) -> None:
        latency.labels(route).observe(seconds)
        requests_total.labels(method, route, str(status)).inc()

    app.add_middleware(MeasureMiddleware, observe=observe)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()

        def where(e: dict) -> str:  # a body that is not JSON: its loc's number is a character position
            if e.get("type") == "json_invalid":
                return "body"
            return ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"

        def message(e: dict) -> str:
            if e.get("type") == "json_invalid":
                return (
                    f"not JSON ({e.get('ctx', {}).get('error', 'decode error')} at character {e['loc'][-1]})"
                )
            return e.get("msg", "")

        fields = [where(e) for e in errors]
        detail = [{"field": f, "message": message(e)} for f, e in zip(fields, errors, strict=True)]
        return _error(
            422, f"invalid request: {', '.join(dict.fromkeys(fields))}", fields=fields, detail=detail
        )

    @app.exception_handler(UnknownIdError)
    async def unknown(request: Request, exc: UnknownIdError):
        return _error(404, str(exc))

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, exc: ConflictError):
        return _error(409, str(exc))

    @app.exception_handler(UnsupportedError)
    async def unsupported(request: Request, exc: UnsupportedError):
        return _error(501, str(exc))

    @app.exception_handler(ClarecError)
    async def clarec_error(request: Request, exc: ClarecError):
        return _error(400, str(exc))

    @app.exception_handler(sa.exc.SQLAlchemyError)
    async def store_error(request: Request, exc: sa.exc.SQLAlchemyError):
        # the event store refused or is out of reach (locked, read-only, down): nothing was applied
        log.error("event store: %s", exc)
        if isinstance(exc, sa.exc.IntegrityError):
            return _error(409, "the event store already holds this (another server's write?)")
        if isinstance(exc, sa.exc.DataError):
            return _error(400, f"the event store refused a value: {str(exc.orig)[:200]}")
        return _error(503, f"the event store is unavailable: {str(getattr(exc, 'orig', exc))[:200]}")

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, exc: RecursionError):  # JSON nested past the parser's depth
        return _error(422, "invalid request: body (nested too deeply)", fields=["body"])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # every error in one form; a body FastAPI could not parse is a malformed body like any other
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            return _error(422, "invalid request: body (not readable JSON)", fields=["body"])
        return JSONResponse(
            status_code=exc.status_code, content={"error": str(exc.detail)}, headers=exc.headers
        )

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(resources.files("clarec.serve").joinpath("static/index.html").read_text())

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return service.health()

    # ------------------------------------------------------------------ users
    @app.get("/v1/users/{user_id:path}/recommendations", response_model=RecommendationsOut)
    def recommendations(
        user_id: str,
        k: int = Query(20, ge=1, le=MAX_K, description="number of items"),
        exclude_seen: bool = Query(True, description="leave out the user's history"),
        diversity: float = Query(
            0.0, ge=0.0, le=1.0, description="> 0 re-ranks by maximal marginal relevance"
        ),
        words: bool = Query(False, description="add a one-sentence reason per item (needs --explain-words)"),
    ) -> Response:
        recs = service.recommend(user_id, k=k, exclude_seen=exclude_seen, diversity=diversity, words=words)
        paths_total.labels(recs.path).inc()
        mode = service.model.history_mode if recs.path == "history" else None
        return _json(
            {
                "user_id": user_id,
                "path": recs.path,
                "model": service.label,
                "history_mode": mode,
                "items": recs.items,
            }
        )

    @app.get("/v1/users/{user_id:path}/history")
    def history(user_id: str, limit: int = Query(50, ge=1, le=MAX_K)) -> dict[str, Any]:
        return {"user_id": user_id, "items": service.history_items(user_id, limit)}

    @app.put("/v1/users/{user_id:path}/profile", response_model=ProfileOut)
    def set_profile(user_id: str, profile: ProfileIn) -> Any:
        """Store a profile; a user without history is then served from its text (``profile`` path)."""
        fields = {k: v for k, v in profile.model_dump().items() if v not in (None, "", [])}
        if not fields:
            return _error(422, "invalid request: text (the profile is empty)", fields=["text"])
        text = service.set_profile(user_id, fields)
        return {"user_id": user_id, "text": text, "served_from_profile": bool(service.model.supports_texts)}

    @app.get("/v1/users")
    def users(limit: int = Query(50, ge=1, le=MAX_K), offset: int = Query(0, ge=0)) -> dict[str, Any]:
        return {"users": service.list_users(limit, offset)}

    # ------------------------------------------------------------------ items
    @app.get("/v1/items/{item_id:path}/similar", response_model=SimilarOut)
    def similar(item_id: str, k: int = Query(20, ge=1, le=MAX_K)) -> dict[str, Any]:
        return {"item_id": item_id, "items": service.similar(item_id, k)}

    @app.get("/v1/items/{item_id:path}")
    def item(item_id: str) -> dict[str, Any]:
        return service.item_info(item_id)

    @app.get("/v1/items")
    def search(q: str = Query("", max_length=200), limit: int = Query(20, ge=1, le=MAX_K)) -> dict[str, Any]:
        return {"items": service.search_items(q, limit)}

    @app.post("/v1/items", status_code=201, response_model=ItemOut)
    def add_item(item: ItemIn) -> dict[str, Any]:
        fields = item.model_dump()
        item_id = fields.pop("item_id")
        idx = service.add_item(item_id, fields)
        from_text = bool(service.model.new_items_from_text)
        read = set(getattr(service.model, "text_fields_", None) or []) if from_text else set()
        unread = [f for f in fields if f not in read and fields[f] not in (None, "", [])]
        return {"item_id": item_id, "index": idx, "scored_from_text": from_text, "unread_fields": unread}

    # ------------------------------------------------------------------ events
    @app.post(
        "/v1/events",
        response_model=EventsOut,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": TypeAdapter(EventIn | list[EventIn]).json_schema()}
                },
            }
        },
    )
    async def add_events(request: Request) -> Any:
        """One event ``{user_id, item_id, behavior, timestamp}`` or a list of at most ``MAX_BATCH``;
        stored durably before the answer, and reflected in the user's next recommendations."""
        try:
            body = await request.json()
        except ValueError:  # (JSON nested past the parser's depth: the RecursionError handler)
            return _error(422, "invalid request: body (not JSON)", fields=["body"])
        batch = body if isinstance(body, list) else [body]
        if len(batch) > MAX_BATCH:
            return _error(413, f"batch of {len(batch)} events; at most {MAX_BATCH} per request")
        if not batch:
            return _error(422, "invalid request: body (an empty batch)", fields=["body"])
        try:
            parsed = _EVENTS.validate_python(batch)
        except ValidationError as e:
            errors = e.errors()
            fields = [
                ".".join(str(p) for p in (err["loc"] if isinstance(body, list) else err["loc"][1:])) or "body"
                for err in errors
            ]
            detail = [{"field": f, "message": err["msg"]} for f, err in zip(fields, errors, strict=True)]
            return _error(
                422, f"invalid request: {', '.join(dict.fromkeys(fields))}", fields=fields, detail=detail
            )
        now = int(time.time())
        events = [
            Event(e.user_id, e.item_id, e.behavior, e.timestamp if e.timestamp is not None else now)
            for e in parsed
        ]
        # the store write and the model update are blocking: off the event loop
        accepted = await run_in_threadpool(service.add_events, events)
        return {"accepted": accepted}

    return app


def explanation_generator(spec: str, endpoint_model: str = "default"):
    """The generator of ``--explain-words``: ``bundled``, a model folder / GGUF file, or an endpoint URL
    (asked for ``endpoint_model``)."""
    from clarec.llm import EndpointGenerator, LocalGenerator

    common = {"max_new_tokens": 48, "batch_size": 8}
    if spec.startswith(("http://", "https://")):  # on a request's path: a short wait, no retries
        return EndpointGenerator(spec, endpoint_model, timeout=10.0, retries=0, **common)
    return LocalGenerator(None if spec == "bundled" else spec, **common)


def serve(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    db: str | None = None,
    model: str | None = None,
    log_level: str = "info",
    threads: int | None = 1,
    ranking_cache: int = RANKING_CACHE_SIZE,
    explain_words: str | None = None,
    explain_words_model: str = "default",
) -> None:
    """Load a run folder and serve it with uvicorn until stopped.

    ``explain_words`` turns on sentences in explanations (``?words=true``): ``"bundled"`` (the bundled
    SmolLM2, in process), a model folder or GGUF file, or an OpenAI-compatible endpoint's base URL
    (asked for ``explain_words_model``).

    ``threads`` caps the BLAS and torch threads of the process (``None``: their defaults). A request
    scores one user (a matrix-vector product), where more threads only spin and take CPU from the
    other requests and the event loop; one thread per request serves the most requests per core.
    ``ranking_cache`` is how many ranked lists the service keeps (0: none).
    """
    import socket

    import uvicorn

    try:  # a port in use is said at once, not after the model has loaded
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        raise ClarecError(
            f"cannot listen on {host}:{port} ({e.strerror or e}): give another --port"
        ) from None
    if threads is not None:
        limit_threads(threads)
    service = RecService(run_dir, db_url=db, model_label=model)
    if service.skipped_items:
        print(
            f"note: model {service.label!r} does not take {len(service.skipped_items)} stored item(s) "
            f"(added while another model was served, or without text it can read): they are left out "
            f"({', '.join(service.skipped_items[:5])}{', ...' if len(service.skipped_items) > 5 else ''})",
            file=sys.stderr,
        )
    service.ranking_cache_size = int(ranking_cache)
    if explain_words is not None:
        service.explainer = explanation_generator(explain_words, explain_words_model)
    app = create_app(service)
    print(
        f"serving {service.label!r} from {run_dir} at http://{host}:{port}/ ({len(service.item_ids)} items)",
        file=sys.stderr,
    )
    # What start-up made (catalogue, histories, the model, the libraries) lives as long as the server:
    # out of the collector's sight, a full collection no longer walks it (on Beauty that was a pause
    # of 100-300 ms every few seconds under load).
    gc.collect()
    gc.freeze()
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)
    finally:
        service.close()


def limit_threads(n: int) -> None:
    """At most ``n`` threads in BLAS (numpy, FAISS's OpenMP) and torch's intra-op pool."""
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(n))
    torch.set_num_threads(int(n))
