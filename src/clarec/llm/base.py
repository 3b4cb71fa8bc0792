"""The generator interface: prompts in, texts out, with batching, a progress bar and an on-disk cache.

A prompt is a string (one user message) or a list of chat messages ``{"role", "content"}``. Settings
(``max_new_tokens``, ``temperature``: 0 is greedy and the default, ``seed`` for sampling) are part of
each answer's cache key together with the model's identity and the messages, so a re-run with the same
inputs generates nothing, and a changed setting never returns a stale answer. Answers are written to
the cache after every batch: a run that stops (an endpoint going down, a kill) loses nothing already
generated.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from clarec.errors import ClarecError, ConfigError

__all__ = ["GenerationCache", "GenerationSettings", "Generator", "Messages", "Prompt", "as_messages"]

Messages = list[dict[str, str]]
Prompt = str | Messages
ROLES = ("system", "user", "assistant")
CACHE_ENV = "CLAREC_CACHE"


def default_llm_cache_dir() -> Path:
    """``$CLAREC_CACHE/llm`` when the variable is set, else ``~/.cache/clarec/llm``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path("~/.cache/clarec").expanduser()) / "llm"


def as_messages(prompt: Prompt, index: int = 0) -> Messages:
    """A prompt as chat messages; anything else is a ConfigError naming the prompt."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list | tuple) or not prompt:
        raise ConfigError(
            f"prompt {index}: a string or a non-empty list of messages, got {type(prompt).__name__}"
        )
    out = []
    for m in prompt:
        if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
            raise ConfigError(
                f"prompt {index}: each message needs a role in {ROLES} and a string content, got {m!r}"
            )
        out.append({"role": m["role"], "content": m["content"]})
    return out


@dataclass(frozen=True)
class GenerationSettings:
    """How texts are generated: at most ``max_new_tokens`` tokens, ``temperature`` 0 = greedy (the
    default, deterministic), above 0 sampling from a generator seeded with ``seed``."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if int(self.max_new_tokens) < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not float(self.temperature) >= 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")


class GenerationCache:
    """Answers on disk: one SQLite file, a row per (model, messages, settings) key. ``path=None``
    keeps nothing."""

    def __init__(self, path: str | Path | None):
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT, prompt TEXT, "
                    "settings TEXT, text TEXT, created REAL)"
                )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    @staticmethod
    def key(model: str, messages: Messages, settings: GenerationSettings) -> str:
        blob = json.dumps([model, messages, asdict(settings)], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, keys: Sequence[str]) -> dict[str, str]:
        if self.path is None or not keys:
            return {}
        found: dict[str, str] = {}
        with self._connect() as db:
            for start in range(0, len(keys), 900):
                part = list(keys[start : start + 900])
                marks = ",".join("?" * len(part))
                found |= dict(db.execute(f"SELECT key, text FROM answers WHERE key IN ({marks})", part))
        return found

    def put(self, rows: Sequence[tuple[str, str, Messages, GenerationSettings, str]]) -> None:
        """Store ``(key, model, messages, settings, text)`` rows."""
        if self.path is None or not rows:
            return
        now = time.time()
        with self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (k, m, json.dumps(p, ensure_ascii=False), json.dumps(asdict(s)), t, now)
                    for k, m, p, s, t in rows
                ],
            )


class PartialAnswers(Exception):
    """Raised by a backend's ``_generate`` when some prompts of a batch failed: ``answers`` maps the
    batch positions that were answered to their texts (cached before ``cause`` is raised)."""

    def __init__(self, answers: dict[int, str], cause: BaseException):
        super().__init__(str(cause))
        self.answers, self.cause = answers, cause


class Generator:
    """Base of the generators: subclasses set :attr:`model_id` (what identifies their answers) and
    implement :meth:`_generate` for one batch of message lists.

    Args:
        cache_dir: folder of the answer cache (``None``: ``$CLAREC_CACHE/llm`` or
            ``~/.cache/clarec/llm``; ``"none"``: no cache).
        batch_size: prompts per batch (one forward pass in process, concurrent requests for an endpoint).
        progress: show a progress bar (``None``: when stderr is a terminal).
        max_new_tokens, temperature, seed: the default :class:`GenerationSettings`.
    """

    model_id: str = ""

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        batch_size: int = 8,
        progress: bool | None = None,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        seed: int = 0,
    ):
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.progress = progress
        self.settings = GenerationSettings(max_new_tokens, temperature, seed)
        if cache_dir == "none":
            self.cache = GenerationCache(None)
        else:
            folder = default_llm_cache_dir() if cache_dir is None else Path(cache_dir)
            self.cache = GenerationCache(folder / "answers.sqlite")
        #: prompts actually sent to the model (not answered from the cache) since creation
        self.generated = 0

    def generate(self, prompts: Sequence[Prompt], store: bool = True, **settings) -> list[str]:
        """One answer per prompt, in order; ``settings`` override the defaults for this call.
        ``store=False`` keeps this call's answers out of the cache (a seed drawn for one request
        would never be asked for again)."""
        chosen = GenerationSettings(**(asdict(self.settings) | settings))
        messages = [as_messages(p, i) for i, p in enumerate(prompts)]
        self._check(messages, chosen)
        # greedy answers do not depend on the seed: one cache entry whatever seed was named
        keyed = chosen if chosen.temperature > 0 else replace(chosen, seed=0)
        keys = [GenerationCache.key(self.model_id, m, keyed) for m in messages]
        answers = self.cache.get(keys)
        first: dict[str, int] = {}  # each missing answer once, at its first prompt
        for i, k in enumerate(keys):
            if k not in answers:
                first.setdefault(k, i)
        todo = list(first.values())
        show = self.progress if self.progress is not None else False
        with tqdm(total=len(todo), desc="generate", unit="prompt", disable=not show) as bar:
            for start in range(0, len(todo), self.batch_size):
                batch = todo[start : start + self.batch_size]
                try:
                    texts = self._generate([messages[i] for i in batch], chosen)
                except PartialAnswers as e:  # what was answered is kept: a re-run asks the rest only
                    done = [(batch[j], t) for j, t in sorted(e.answers.items())]
                    if store:
                        self.cache.put(
                            [(keys[i], self.model_id, messages[i], chosen, t) for i, t in done if t.strip()]
                        )
                    self.generated += len(done)
                    raise e.cause from None
                if len(texts) != len(batch) or not all(isinstance(t, str) for t in texts):
                    raise ClarecError(
                        f"{type(self).__name__}: expected {len(batch)} texts, got {texts!r:.200}"
                    )
                rows = [
                    (keys[i], self.model_id, messages[i], chosen, t)
                    for i, t in zip(batch, texts, strict=True)
                    if t.strip()  # an empty answer is asked again next time, not kept for good
                ]
                if store:
                    self.cache.put(rows)  # after every batch: nothing generated is lost
                answers |= {keys[i]: t for i, t in zip(batch, texts, strict=True)}
                self.generated += len(batch)
                bar.update(len(batch))
        return [answers[k] for k in keys]

    def _check(self, messages: list[Messages], settings: GenerationSettings) -> None:  # noqa: B027 - a hook
        """Refuse prompts the model cannot take (before anything is generated)."""

    def _generate(self, batch: list[Messages], settings: GenerationSettings) -> list[str]:
        raise NotImplementedError
