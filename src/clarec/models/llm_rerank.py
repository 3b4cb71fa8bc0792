"""``llm-rerank``: a generative language model re-orders the top of another model's list (LLMRank-style
zero-shot listwise re-ranking)."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from clarec.data.dataset import Dataset
from clarec.errors import ClarecError, ConfigError
from clarec.models._lm import choose_fields
from clarec.models.base import Recommender
from clarec.models.params import param
from clarec.models.registry import create, inner_params, register
from clarec.text.templates import item_text

log = logging.getLogger("clarec.models")

PROMPT = (
    "A user chose these items, most recent first:\n{history}\n\n"
    "Candidates:\n{candidates}\n\n"
    "Rank the candidates from the one this user will most likely choose next to the least likely. "
    "Answer with the candidate numbers only, separated by commas."
)


_NUMBER_LIST = re.compile(r"\s*(?:[A-Za-z ]{1,20}:)?\s*\[?\s*(\d+(?:\s*[,;]\s*\d+)*)")
_LINE_MARK = re.compile(r"^\s*(?:\d+\s*[.):]|[-*•])\s*")


def _norm(text: str) -> str:
    text = text.strip().strip("*_`").strip()  # markdown emphasis: "**Title**"
    text = re.sub(r"^\s*title\s*:\s*", "", text, flags=re.IGNORECASE)
    return re.sub(r"[\s.,;:!]+$", "", text).strip().lower()


def parse_ranking(answer: str, n: int, titles: list[str] | None = None) -> list[int] | None:
    """Candidate positions (0-based) in the order an answer gives them, each once; ``None`` when the
    answer is not a ranking of the candidates.

    Two forms are read: the one the prompt asks for, candidate numbers separated by commas at the
    start of the answer ("3, 1, 2"; a number outside 1..n makes the whole answer unusable); and,
    with the candidates' ``titles``, one candidate per line, each line's text (after its own list
    mark, "1." or "-") being a candidate's title — a title cut off by the token limit counts when
    what is left names one candidate only, and a last line cut off before it names one is dropped. Anything else — numbers inside prose ("I cannot rank
    these 10 candidates", a year, "the 2 most recent"), titles that are not candidates — is not a
    ranking, and the caller keeps the base order."""
    plain = re.sub(r"[*_`]", "", answer)  # markdown emphasis: "**3, 1, 2**"
    m = _NUMBER_LIST.match(plain)
    if m is not None:
        numbers = [int(t) for t in re.split(r"\s*[,;]\s*", m.group(1))]
        if len(numbers) >= 2 or not plain[m.end() :].strip():
            if not all(1 <= k <= n for k in numbers):
                return None
            return list(dict.fromkeys(k - 1 for k in numbers))
    if titles is None:
        return None
    names = [_norm(t) for t in titles]

    def named(text: str) -> list[int]:
        text = _norm(text)
        found = [k for k, name in enumerate(names) if name == text]
        if not found and len(text) >= 5:  # a title cut short
            found = [k for k, name in enumerate(names) if name.startswith(text)]
        return found

    lines = [line for line in answer.splitlines() if _norm(_LINE_MARK.sub("", line))]
    order: list[int] = []
    for n_line, line in enumerate(lines):
        # the line without its list mark; else whole (a title may begin "2001:")
        found = named(_LINE_MARK.sub("", line)) or named(line)
        if len(found) != 1:
            if n_line == len(lines) - 1 and order:
                break  # the last line, cut off by the token limit before it names one candidate
            return None  # a line that names no candidate (or several): not a ranking of them
        if found[0] not in order:
            order.append(found[0])
    return order or None


@register("llm-rerank")
class LLMRerank(Recommender):
    """The ``top_n`` items a base model ranks first for a user (training items left out; in an
    evaluation, the items its ranking leaves out: :meth:`score_excluding`), re-ordered
    by a generative model from a listwise prompt: the titles of the user's most recent training items
    and the numbered candidates; the answer's candidate numbers (or titles, one per line) give the new
    order (:func:`parse_ranking`), candidates it leaves out follow in the base order, and an answer
    that is not a ranking of the candidates keeps the base order (counted in ``cost_["fallbacks"]``).
    The rest of the catalogue keeps the base model's scores, below the re-ranked items. ``cost_``
    adds up, over the :meth:`score` calls since fitting or :meth:`reset_cost`, users, prompts sent,
    seconds and the tokens of the answers, cached ones included (``None`` when the generator does not
    run in process); the experiment runner records what validation and test cost as ``eval_cost``. Answers are cached with the generator's cache, so scoring the same users again
    costs nothing.

    Args:
        base: the registered model whose list is re-ranked; base_params: its parameters.
        top_n: candidates per user.
        generator: a model folder or GGUF file (``None``: the bundled SmolLM2), or the base URL of an
            OpenAI-compatible endpoint (``http://...``); endpoint_model: the model name sent to it.
        n_recent: training items listed in the prompt.
        max_new_tokens: longest answer.
        batch_size: prompts per generation batch.
        cache_dir: the answer cache (``None``: the default; ``"none"``: off).
        fields: item text fields in the prompt (``None``: the title, else the default text fields).
        seed, run_dir, resume, eval_history, eval_k: handed to the base model where it takes them
            and ``base_params`` does not set them (``run_dir`` as ``RUN_DIR/base``), as a run hands
            them to a model: a seed of the run is a seed of the base's training.
    """

    base = param("ease", str)
    base_params = param(None, dict, nullable=True)
    top_n = param(10, ge=2)
    generator = param(None, str)
    endpoint_model = param("default", str)
    n_recent = param(10, ge=0)
    max_new_tokens = param(48, ge=1)
    batch_size = param(8, ge=1)
    cache_dir = param(None, str)
    fields = param(None, list, nullable=True)
    seed = param(None, int, nullable=True, ge=0)
    run_dir = param(None, str)
    resume = param(False)
    eval_history = param("masked", choices=("masked", "kept"))
    eval_k = param(20, ge=1)

    def _check_params(self) -> None:
        if self.base == self.name:
            raise ConfigError("llm-rerank: base must be another model")

    def trains_torch(self) -> bool:
        return create(self.base, self.base_params or {}).trains_torch()

    def _generator(self):
        if getattr(self, "_gen", None) is None:
            from clarec.llm import EndpointGenerator, LocalGenerator

            common = {
                "cache_dir": self.cache_dir,
                "max_new_tokens": self.max_new_tokens,
                "batch_size": self.batch_size,
            }
            if self.generator is not None and self.generator.startswith(("http://", "https://")):
                self._gen = EndpointGenerator(self.generator, self.endpoint_model, **common)
            else:
                self._gen = LocalGenerator(self.generator, **common)
        return self._gen

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        self.cost_ = None
        base_params = inner_params(
            self.base,
            self.base_params or {},
            seed=self.seed,
            run_dir=None if self.run_dir is None else str(Path(self.run_dir) / "base"),
            resume=self.resume,
            eval_history=self.eval_history,
            eval_k=self.eval_k,
        )
        self.base_ = create(self.base, base_params).fit(train, valid)
        default = ["title"] if "title" in train.items.columns else None
        fields = choose_fields(train.items, self.fields or default, self.name)
        self.titles = np.array(item_text(train.items, fields), dtype=str)
        hists = train.user_histories()
        self.hist_items = np.concatenate(hists) if hists else np.empty(0, dtype=np.int64)
        self.hist_offsets = np.concatenate([[0], np.cumsum([len(h) for h in hists])]).astype(np.int64)

    def _prompt(self, user: int, candidates: np.ndarray) -> str:
        h = self.hist_items[self.hist_offsets[user] : self.hist_offsets[user + 1]]
        recent = h[::-1][: self.n_recent]
        history = "\n".join(f"- {self.titles[i]}" for i in recent) or "- (nothing yet)"
        listed = "\n".join(f"{k + 1}. {self.titles[i]}" for k, i in enumerate(candidates))
        return PROMPT.format(history=history, candidates=listed)

    def score(self, users) -> np.ndarray:
        """Scores with the candidates taken from the items outside each user's training history."""
        users = self._check_users(users)
        return self.score_excluding(users, self.seen[users])

    def score_excluding(self, users, excluded, allowed: np.ndarray | None = None) -> np.ndarray:
        """Scores with the ``top_n`` candidates taken from the items a ranking can hold: not in
        ``excluded`` (a sparse matrix, one row per user: the evaluator's exclusions, so a test list's
        candidates leave out the validation items too, and a ``kept`` protocol's include the
        history) and, with ``allowed`` (a boolean mask over items), among those."""
        users = self._check_users(users)
        scores = np.array(self.base_.score(users), dtype=np.float32, copy=True)
        masked = scores.copy()
        excluded = sp.csr_matrix(excluded)
        masked[np.repeat(np.arange(len(users)), np.diff(excluded.indptr)), excluded.indices] = -np.inf
        if allowed is not None:
            masked[:, ~np.asarray(allowed, dtype=bool)] = -np.inf
        n = min(self.top_n, self.n_items)
        top = np.argsort(-masked, axis=1, kind="stable")[:, :n]
        rows = [r for r in range(len(users)) if np.isfinite(masked[r, top[r]]).sum() >= 2]
        gen = self._generator()
        start, before = time.perf_counter(), gen.generated
        answers = gen.generate([self._prompt(int(users[r]), top[r]) for r in rows])
        fallbacks = 0
        for r, answer in zip(rows, answers, strict=True):
            order = parse_ranking(answer, n, [str(self.titles[i]) for i in top[r]])
            if order is None:
                fallbacks += 1
                continue
            order += [k for k in range(n) if k not in order]
            ranked = top[r][order]
            ranked = ranked[np.isfinite(masked[r, ranked])]
            high = float(np.max(scores[r][np.isfinite(scores[r])])) + 1.0
            scores[r, ranked] = high + np.arange(len(ranked), 0, -1, dtype=np.float32)
        tokenizer = getattr(gen, "tokenizer", None)
        tokens = None
        if tokenizer is not None:
            tokens = (
                sum(len(t) for t in tokenizer(list(answers), add_special_tokens=False)["input_ids"])
                if answers
                else 0
            )
        add = {
            "users": len(users),
            "answers": len(rows),
            "prompts": gen.generated - before,
            "seconds": time.perf_counter() - start,
            "fallbacks": fallbacks,
            "tokens": tokens,
        }
        cost = getattr(self, "cost_", None) or dict.fromkeys(add, 0)
        self.cost_ = {k: None if cost[k] is None or add[k] is None else cost[k] + add[k] for k in add}
        if fallbacks:
            log.warning(
                "llm-rerank: %d of %d answers were not a ranking of the candidates; base order kept",
                fallbacks,
                len(rows),
            )
        return scores

    def reset_cost(self) -> None:
        """Start counting :attr:`cost_` from zero."""
        self.cost_ = None

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"titles": self.titles, "hist_items": self.hist_items, "hist_offsets": self.hist_offsets}

    def _set_state(self, state: dict) -> None:
        self.titles = np.asarray(state["titles"]).astype(str)
        self.hist_items, self.hist_offsets = state["hist_items"], state["hist_offsets"]

    def _save_files(self, path: Path) -> None:
        self.base_.save(path / "base")

    def _load_files(self, path: Path) -> None:
        self.base_ = Recommender.load(path / "base")
        if self.base_.name != self.base:  # model.json's base edited, or another folder
            raise ClarecError(
                f"{path}: its base is a {self.base_.name!r} model, its parameters name {self.base!r}"
            )
