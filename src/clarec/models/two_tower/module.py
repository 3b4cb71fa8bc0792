"""The two-tower model's torch modules: the towers (:class:`TwoTowerModule`) and :class:`_Bundle`,
everything one optimiser trains."""

from __future__ import annotations

import math

import torch
from torch import nn


class TwoTowerModule(nn.Module):
    """The trainable part: text projection, gated ID embeddings, user tower."""

    def __init__(
        self,
        n_items: int,
        lm_dim: int,
        user_lm_dim: int | None,
        dim: int,
        hidden: int,
        dropout: float,
        id_embedding: bool,
        pooling: str,
        max_history: int,
        n_tokens: int = 0,
    ):
        super().__init__()
        self.dim = dim
        self.pooling = pooling
        self.text_proj = _mlp(lm_dim, hidden, dim, dropout)
        self.id_emb = nn.Embedding(n_items, dim) if id_embedding else None
        self.gate = nn.Linear(2 * dim, dim) if id_embedding else None
        if self.id_emb is not None:
            nn.init.normal_(self.id_emb.weight, std=0.05)
        self.pos_emb = nn.Embedding(max_history, dim)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        self.key = nn.Linear(dim, dim)
        self.query = nn.Parameter(torch.zeros(dim))
        self.user_out = nn.Linear(dim, dim)
        self.empty = nn.Parameter(torch.randn(dim) * 0.05)
        self.user_text_proj = _mlp(user_lm_dim, hidden, dim, dropout) if user_lm_dim else None
        self.tokens = nn.EmbeddingBag(n_tokens, dim, mode="sum") if n_tokens else None
        if self.tokens is not None:
            nn.init.normal_(self.tokens.weight, std=0.05)

    def items(
        self,
        lm: torch.Tensor,
        ids: torch.Tensor,
        id_mask: torch.Tensor | None,
        bags: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Item-tower vectors (unnormalised) of items ``ids`` with LM vectors ``lm``; ``id_mask`` (bool)
        says which items may use their ID embedding (``None``: none may); ``bags`` are the items'
        word tokens as ``(token ids, offsets, weights)`` for the word-embedding channel."""
        t = self.text_proj(lm)
        if self.tokens is not None and bags is not None:
            t = t + self.tokens(bags[0], bags[1], per_sample_weights=bags[2])
        if self.id_emb is None or id_mask is None:
            return t
        known = ids < self.id_emb.num_embeddings  # items added after training have no ID vector
        e = self.id_emb(torch.where(known, ids, 0))
        g = torch.sigmoid(self.gate(torch.cat([t, e], dim=-1)))
        return t + (id_mask & known).to(t.dtype).unsqueeze(-1) * g * e

    def users(
        self, hist: torch.Tensor, valid: torch.Tensor, user_lm: torch.Tensor | None = None
    ) -> torch.Tensor:
        """User vectors from history item vectors ``(B, L, dim)`` (most recent first) and their mask."""
        has = valid.any(dim=1, keepdim=True)
        if self.pooling == "attention":
            keys = torch.tanh(self.key(hist + self.pos_emb.weight[: hist.shape[1]]))
            logits = (keys @ self.query) / math.sqrt(self.dim)
            logits = logits.masked_fill(~valid, float("-inf"))
            # Rows without history would be all -inf (NaN after softmax); they get the empty vector below.
            weights = torch.softmax(logits.masked_fill(~has, 0.0), dim=1) * valid
            pooled = (weights.unsqueeze(-1) * hist).sum(1)
        else:
            m = valid.to(hist.dtype).unsqueeze(-1)
            pooled = (m * hist).sum(1) / m.sum(1).clamp(min=1.0)
        out = torch.where(has, self.user_out(pooled), self.empty.expand_as(pooled))
        if self.user_text_proj is not None and user_lm is not None:
            out = out + self.user_text_proj(user_lm)
        return out


def _mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Module:
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in, d_out))
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_out))


class _Bundle(nn.Module):
    """Everything the optimiser trains (and the Trainer checkpoints): towers, loss, weighting, encoder."""

    def __init__(self, towers: TwoTowerModule, loss: nn.Module, weighting: nn.Module, extra: dict):
        super().__init__()
        self.towers, self.loss, self.weighting = towers, loss, weighting
        for name, module in extra.items():
            self.add_module(name, module)
