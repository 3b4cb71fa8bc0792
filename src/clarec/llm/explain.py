"""Explanations in words: one sentence per recommended item, written by a generative model from the
structured explanation the server already has (the history items that contribute most, the
attributes they share), or, when generation fails, from a template (logged)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from clarec.llm.base import Generator

__all__ = ["explain_in_words", "sentence_prompt", "template_sentence"]

log = logging.getLogger("clarec.llm")


def _facts(explanation: dict[str, Any]) -> tuple[list[str], list[str]]:
    titles = [b.get("title") or b["item_id"] for b in explanation.get("because", [])]
    shared = [f"{field}: {', '.join(values)}" for field, values in explanation.get("shared", {}).items()]
    return titles, shared


def sentence_prompt(title: str, explanation: dict[str, Any]) -> str:
    """The prompt for one item's sentence: only the facts of its structured explanation."""
    because, shared = _facts(explanation)
    lines = [f"Recommended item: {title}."]
    if because:
        lines.append(f"The user recently chose similar items: {'; '.join(because)}.")
    if shared:
        lines.append(f"In common with them: {'; '.join(shared)}.")
    lines.append(
        "In one short sentence addressed to the user, say why this item is recommended. Use only these facts."
    )
    return "\n".join(lines)


#: What a sentence says of an item with no history item behind it, by the path that served the user.
NO_FACTS = {
    "popularity": "{title} is popular with other users.",
    "profile": "{title} matches the profile you gave.",
}


def template_sentence(title: str, explanation: dict[str, Any], path: str = "popularity") -> str:
    """A plain sentence from the same facts (no model); with no history item behind the item, what the
    serving ``path`` says (popular with others, the user's profile, else the model's own ranking)."""
    because, shared = _facts(explanation)
    if not because:
        return NO_FACTS.get(path, "{title} is ranked high for you by the model.").format(title=title)
    text = f"Recommended because you chose {', '.join(because)}"  # every item the shared facts come from
    return text + (f" ({'; '.join(shared)})." if shared else ".")


#: seconds a failed generator is left alone (template sentences meanwhile): a model that is down
#: does not hold up every request with its time-out
RETRY_AFTER = 30.0


def explain_in_words(
    generator: Generator, items: Sequence[dict[str, Any]], path: str = "popularity"
) -> list[tuple[str, str]]:
    """``(sentence, source)`` per item (``item["title"]``/``item_id`` and ``item["explanation"]``);
    source ``"llm"``, or ``"template"`` when generation failed (the failure is logged) or the item has
    no history item behind it (a model given nothing but a title invents reasons). ``path``: the
    serving path, which a template names when there are no facts."""
    titles = [it.get("title") or it["item_id"] for it in items]
    templates = [
        (template_sentence(t, it["explanation"], path), "template")
        for t, it in zip(titles, items, strict=True)
    ]
    asked = [i for i, it in enumerate(items) if _facts(it["explanation"])[0]]
    if not asked or time.monotonic() < getattr(generator, "down_until", 0.0):  # failed a moment ago
        return templates
    prompts = [sentence_prompt(titles[i], items[i]["explanation"]) for i in asked]
    try:
        answers = generator.generate(prompts)
    except Exception as e:  # the list is still served: a template says what the model would have
        generator.down_until = time.monotonic() + RETRY_AFTER
        log.warning(
            "explanations in words: generation failed (%s: %s); template sentences used, the model asked "
            "again in %.0f s",
            type(e).__name__,
            e,
            RETRY_AFTER,
        )
        return templates
    sentences = [""] * len(items)
    for i, answer in zip(asked, answers, strict=True):
        sentences[i] = answer
    # an empty answer says nothing: that item keeps its template sentence
    return [(s, "llm") if s.strip() else t for s, t in zip(sentences, templates, strict=True)]
