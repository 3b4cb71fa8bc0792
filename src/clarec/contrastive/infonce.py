"""InfoNCE (a.k.a. NT-Xent, multiple-negatives ranking, sampled softmax) with in-batch and/or sampled
negatives."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from clarec.contrastive._reduce import check_reduction, reduce
from clarec.contrastive.temperature import Temperature, as_temperature

__all__ = ["InfoNCELoss", "gathered_scores"]

#: elements of one (rows × table) block of scores in :func:`gathered_scores` (8 MB in fp32: the block
#: stays in cache instead of a (B × N) matrix being written, read, zeroed and read again)
_BLOCK = 1 << 21
#: elements of one (rows × picks × d) block of gathered vectors (1 MB in fp32)
_GATHER_BLOCK = 1 << 18
#: the picked rows are gathered, not read from the product, when the table has more than this many
#: times as many rows as each query picks (per element, gathering costs about 12–16 products on a CPU)
_GATHER_RATIO = 16


class _GatheredScores(torch.autograd.Function):
    """``(query @ table.T).gather(1, rows)`` a block of query rows at a time, forward and backward:
    from the block's product with the whole table, or — when each row picks few of the table's rows —
    from the picked vectors themselves (then the backward is two sparse products, all rows at once)."""

    @staticmethod
    def forward(ctx, query: torch.Tensor, table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        picks, dim = rows.shape[1], query.shape[1]
        ctx.pick = len(table) > _GATHER_RATIO * picks
        acc = _accumulate(query, table)
        if ctx.pick:
            step = max(1, _GATHER_BLOCK // max(1, picks * dim))
            blocks = [
                (_picked(table, rows[s : s + step], acc) * query[s : s + step, None].to(acc)).sum(-1)
                for s in range(0, len(query), step)
            ]
        else:
            step = max(1, _BLOCK // max(1, len(table)))
            blocks = [
                (query[s : s + step] @ table.T).gather(1, rows[s : s + step])
                for s in range(0, len(query), step)
            ]
        out = torch.cat(blocks)
        if ctx.pick and torch.is_autocast_enabled("cpu"):  # the dtype the product would have had
            out = out.to(torch.get_autocast_dtype("cpu"))
        ctx.save_for_backward(query, table, rows)
        ctx.step = step
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable  # computed on NumPy arrays: no graph of its own
    def backward(ctx, grad: torch.Tensor):
        query, table, rows = ctx.saved_tensors
        want_q, want_t = ctx.needs_input_grad[:2]
        acc = _accumulate(query, table)
        t32 = table.to(acc)
        if ctx.pick:
            # the gradient of the scores as a sparse (queries × table) matrix, one entry per pick
            # (repeats summed by the products): both gradients are its products, with the table and,
            # transposed, with the queries — nnz × d work, no gathered copy and no scatter
            b, n = rows.shape
            picks = sp.csr_matrix(
                (grad.to(acc).contiguous().numpy().ravel(), rows.numpy().ravel(), np.arange(b + 1) * n),
                shape=(b, len(table)),
            )
            grad_q = torch.from_numpy(np.ascontiguousarray(picks @ t32.detach().numpy())) if want_q else None
            q32 = query.detach().to(acc).numpy()
            grad_t = torch.from_numpy(np.ascontiguousarray(picks.T @ q32)) if want_t else None
        else:
            grad_q = torch.empty(query.shape, dtype=acc, device=query.device) if want_q else None
            grad_t = torch.zeros(table.shape, dtype=acc, device=table.device) if want_t else None
            for s in range(0, len(query), ctx.step):
                r, g = rows[s : s + ctx.step], grad[s : s + ctx.step].to(acc)
                # the block's gradient over every table row: each row's picked columns, repeats summed
                block = grad.new_zeros(len(r), len(table), dtype=acc)
                block.scatter_add_(1, r, g)
                if want_q:
                    grad_q[s : s + ctx.step] = block @ t32
                if want_t:
                    grad_t.addmm_(block.T, query[s : s + ctx.step].to(acc))
        return (
            None if grad_q is None else grad_q.to(query.dtype),
            None if grad_t is None else grad_t.to(table.dtype),
            None,
        )


def _accumulate(query: torch.Tensor, table: torch.Tensor) -> torch.dtype:
    """The dtype sums are made in: float64 when an input is, else float32 (also for bf16/fp16 inputs)."""
    return torch.float64 if torch.float64 in (query.dtype, table.dtype) else torch.float32


def _tensors(*values):
    """Ids and log-probabilities given as lists or arrays, as tensors (``None`` stays ``None``)."""
    return tuple(
        v if v is None or isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)) for v in values
    )


def _check_columns(name: str, values: torch.Tensor | None, batch: int, extra: int | None) -> None:
    """``values`` is ``(B,)`` per row (``extra`` ``None``), or ``(extra,)`` / ``(B, extra)`` per
    extra negative; else one clear error (not a broadcasting error deep in the loss)."""
    if values is None:
        return
    shape = tuple(values.shape)
    fits = shape in {(batch,)} if extra is None else shape in {(extra,), (batch, extra)}
    if not fits:
        want = f"({batch},)" if extra is None else f"({extra},) or ({batch}, {extra})"
        raise ValueError(f"{name} must be {want}, got {shape}")


def _picked(table: torch.Tensor, rows: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``table[rows]`` as ``dtype``, ``(b, n, d)`` for ``(b, n)`` rows (index_select: the fastest gather)."""
    return table.index_select(0, rows.reshape(-1)).view(*rows.shape, table.shape[1]).to(dtype)


def gathered_scores(query: torch.Tensor, table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``(query @ table.T).gather(1, rows)``: row ``i``'s scores against the table rows ``rows[i]``
    (``(B, d)``, ``(N, d)``, ``(B, n)`` → ``(B, n)``). On the CPU the (B × N) product is made and
    differentiated a block of rows at a time (the same sums, up to float rounding, without the large
    matrix: its memory stays within a cache-sized block however large the table), or, when the
    table has many more rows than each query picks, from the picked rows gathered a block at a
    time (differentiated as sparse products); elsewhere it is one product."""
    rows = rows.to(query.device)
    if query.device.type != "cpu":
        return (query @ table.T).gather(1, rows)
    out = _GatheredScores.apply(query, table, rows)
    half = torch.result_type(query, table)  # half-precision inputs give half-precision scores,
    if half in (torch.bfloat16, torch.float16) and out.dtype != half:  # the gathered way sums in float32
        out = out.to(half)
    return out


class InfoNCELoss(nn.Module):
    """InfoNCE over in-batch negatives plus optional extra negatives (van den Oord et al., 2018).

    Row ``i`` scores query ``i`` against every positive of the batch and the extra negatives, and the
    loss is the cross-entropy of picking positive ``i``::

        logits[i, j] = sim(q_i, p_j) / τ        (j < B: in-batch columns)
        logits[i, B + k] = sim(q_i, n_k) / τ    (extra negatives, shared or per row)
        loss_i = -logits[i, i] + logsumexp_j logits[i, j]

    ``sim`` is the cosine (inputs L2-normalised inside) when ``normalize=True``, else the dot product.
    With ``in_batch=False`` the other positives of the batch are not negatives: row ``i`` scores its
    own positive (column 0) against its extra negatives only (sampled softmax, e.g. AlphaRec's loss).

    Args:
        temperature: a number (fixed τ) or a :class:`~clarec.contrastive.temperature.Temperature`
            module (learnable or scheduled; its parameters then belong to this loss).
        symmetric: also score each positive against all queries of the batch (CLIP-style) and average
            the two directions. The reverse direction uses in-batch columns only.
        mask_duplicates: with ids given, drop false negatives from the softmax (see ``forward``).
        normalize: cosine similarity (default) or raw dot product. A zero vector (padding) has no
            direction: its cosine gradient is about 1/1e-12, so leave such rows out of the batch.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (one loss per row, ``(B,)``; with
            ``symmetric`` the mean of row ``i``'s forward and reverse losses).
        in_batch: the batch's other positives are negatives (default); ``False`` needs extra
            negatives in ``forward`` and excludes ``symmetric``.
    """

    def __init__(
        self,
        temperature: float | Temperature = 0.07,
        symmetric: bool = False,
        mask_duplicates: bool = True,
        normalize: bool = True,
        reduction: str = "mean",
        in_batch: bool = True,
    ):
        super().__init__()
        if symmetric and not in_batch:
            raise ValueError("symmetric InfoNCE needs in-batch negatives (in_batch=True)")
        self.temperature = as_temperature(temperature)
        self.symmetric = bool(symmetric)
        self.mask_duplicates = bool(mask_duplicates)
        self.normalize = bool(normalize)
        self.reduction = check_reduction(reduction)
        self.in_batch = bool(in_batch)

    def forward(
        self,
        query: torch.Tensor,
        positive: torch.Tensor,
        negatives: torch.Tensor | None = None,
        query_ids: torch.Tensor | None = None,
        positive_ids: torch.Tensor | None = None,
        negative_ids: torch.Tensor | None = None,
        positive_logq: torch.Tensor | None = None,
        negative_logq: torch.Tensor | None = None,
        negative_rows: torch.Tensor | None = None,
        pair_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss for ``query (B, d)`` and ``positive (B, d)``, row ``i`` of each forming a pair.

        Args:
            negatives: extra negatives, ``(N, d)`` shared by all rows or ``(B, n, d)`` one set per row
                (sampled or mined hard negatives); ``None`` for in-batch negatives only.
            query_ids, positive_ids: ids ``(B,)`` of the queries / positives. Off-diagonal pair
                ``(i, j)`` is masked out of both directions when ``positive_ids[i] == positive_ids[j]``
                (the same item twice in a batch) or ``query_ids[i] == query_ids[j]`` (the same user
                twice: ``p_j`` is a positive of query ``i`` too).
            negative_ids: ids of the extra negatives, ``(N,)`` or ``(B, n)``; a negative equal to its
                row's ``positive_ids`` entry is masked (needs ``positive_ids``).
            positive_logq, negative_logq: log sampling probability of each positive ``(B,)`` / extra
                negative (``(N,)`` or ``(B, n)``). When given, it is subtracted from the forward logits of
                that column (log-q correction, Yi et al. 2019), so items that are often in batches
                because they are popular are not over-penalised.
            negative_rows: ``(B, n)`` rows of ``negatives``, then an ``(N, d)`` table (e.g. every
                item's vector): row ``i``'s extra negatives are ``negatives[negative_rows[i]]``, the
                same loss as passing that ``(B, n, d)`` gather, computed from the ``(B, N)`` product
                (:func:`gathered_scores`: on the CPU a block of rows at a time) — much faster when
                ``n`` is large.
            pair_mask: ``(B, B)`` booleans, True where in-batch column ``j`` is to be left out of row
                ``i``'s softmax besides what the ids mask (known false negatives: ``p_j`` one of query
                ``i``'s own positives elsewhere); the diagonal (the positive) is never masked.
        """
        positive_logq, negative_logq = _tensors(positive_logq, negative_logq)
        logits, mask = self.logits(
            query, positive, negatives, query_ids, positive_ids, negative_ids, negative_rows
        )
        if pair_mask is not None:
            batch = len(query)
            if not self.in_batch or tuple(pair_mask.shape) != (batch, batch):
                raise ValueError(f"pair_mask must be ({batch}, {batch}) booleans, with in-batch negatives")
            extra = torch.zeros_like(logits, dtype=torch.bool)
            extra[:, :batch] = pair_mask.to(device=logits.device, dtype=torch.bool)
            extra[:, :batch].fill_diagonal_(False)
            mask = extra if mask is None else mask | extra
        labels = torch.arange(len(query), device=logits.device)
        if not self.in_batch:
            labels = torch.zeros_like(labels)
        forward = logits
        if negative_logq is not None and negatives is None:
            raise ValueError("negative_logq corrects extra negatives: give negatives too")
        _check_columns("positive_logq", positive_logq, len(query), None)
        _check_columns("negative_logq", negative_logq, len(query), logits.shape[1] - self._width(logits))
        if positive_logq is not None or negative_logq is not None:
            forward = logits - self._logq_columns(logits, positive_logq, negative_logq)
        loss = _masked_cross_entropy(forward, mask, labels)
        if self.symmetric:
            # Positive i against every query: the transpose of the in-batch block, without log-q
            # (queries are not drawn from the item sampling distribution); the duplicate mask is
            # symmetric, so it transposes too.
            batch = len(query)
            reverse_mask = None if mask is None else mask[:, :batch].T
            loss = 0.5 * (loss + _masked_cross_entropy(logits[:, :batch].T, reverse_mask, labels))
        return reduce(loss, self.reduction)

    def logits(
        self,
        query: torch.Tensor,
        positive: torch.Tensor,
        negatives: torch.Tensor | None = None,
        query_ids: torch.Tensor | None = None,
        positive_ids: torch.Tensor | None = None,
        negative_ids: torch.Tensor | None = None,
        negative_rows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Forward logits ``(B, B + n_extra)`` (already divided by τ) and the boolean mask of dropped
        entries (``None`` when nothing is masked); the positive of row ``i`` is column ``i``. With
        ``in_batch=False``: ``(B, 1 + n_extra)``, the positive of every row in column 0."""
        if query.dim() != 2 or query.shape != positive.shape:
            raise ValueError(
                f"query and positive must both be (B, d), got {tuple(query.shape)}, {tuple(positive.shape)}"
            )
        query_ids, positive_ids, negative_ids, negative_rows = _tensors(
            query_ids, positive_ids, negative_ids, negative_rows
        )
        if len(query) == 0:
            raise ValueError("InfoNCE of an empty batch (B = 0)")
        dtypes = [x.dtype for x in (query, positive, negatives) if x is not None]
        if len(set(dtypes)) > 1 and not torch.is_autocast_enabled(query.device.type):  # autocast mixes them
            raise ValueError(f"query, positive and negatives must share a dtype, got {dtypes}")
        if negatives is not None and (negatives.dim() not in (2, 3) or negatives.shape[-1] != query.shape[1]):
            raise ValueError(
                f"negatives must be (N, d) or (B, n, d) with d = {query.shape[1]}, got {tuple(negatives.shape)}"
            )
        if negative_ids is not None and positive_ids is None and self.mask_duplicates:
            raise ValueError("negative_ids are compared with positive_ids: give positive_ids too")
        q, p = self._prep(query), self._prep(positive)
        if not self.in_batch and (negatives is None or negatives.shape[-2] == 0 and negative_rows is None):
            raise ValueError("InfoNCE with in_batch=False needs extra negatives")
        columns = [q @ p.T if self.in_batch else (q * p).sum(-1, keepdim=True)]
        if negatives is not None:
            n = self._prep(negatives)
            if negative_rows is not None:
                if n.dim() != 2 or negative_rows.dim() != 2 or len(negative_rows) != len(q):
                    raise ValueError(
                        "negative_rows must be (B, n) rows of a (N, d) negatives table, got "
                        f"{tuple(negative_rows.shape)} and {tuple(negatives.shape)}"
                    )
                columns.append(gathered_scores(q, n, negative_rows))
            elif n.dim() == 2:
                columns.append(q @ n.T)
            elif n.dim() == 3 and n.shape[0] == len(q):
                columns.append(torch.einsum("bd,bnd->bn", q, n))
            else:
                raise ValueError(f"negatives must be (N, d) or (B, n, d), got {tuple(negatives.shape)}")
        logits = torch.cat(columns, dim=1) / self.temperature.value
        for name, ids in (("query_ids", query_ids), ("positive_ids", positive_ids)):
            _check_columns(name, ids, len(q), None)
        _check_columns("negative_ids", negative_ids, len(q), logits.shape[1] - self._width(logits))
        mask = self._mask(logits, query_ids, positive_ids, negative_ids) if self.mask_duplicates else None
        return logits, mask

    def _width(self, logits: torch.Tensor) -> int:
        """The positives' columns: the batch's in-batch block, or row ``i``'s own positive."""
        return logits.shape[0] if self.in_batch else 1

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.normalize else x

    def _mask(
        self,
        logits: torch.Tensor,
        query_ids: torch.Tensor | None,
        positive_ids: torch.Tensor | None,
        negative_ids: torch.Tensor | None,
    ) -> torch.Tensor | None:
        batch = logits.shape[0]
        if query_ids is None and positive_ids is None:
            return None
        mask = torch.zeros_like(logits, dtype=torch.bool)
        width = self._width(logits)
        if self.in_batch:
            same = torch.zeros(batch, batch, dtype=torch.bool, device=logits.device)
            for ids in (query_ids, positive_ids):
                if ids is not None:
                    ids = ids.to(logits.device).reshape(-1)
                    same |= ids[:, None] == ids[None, :]
            same.fill_diagonal_(False)  # the positive itself is never masked
            mask[:, :batch] = same
        if negative_ids is not None and positive_ids is not None and logits.shape[1] > width:
            neg = negative_ids.to(logits.device)
            pos = positive_ids.to(logits.device).reshape(-1, 1)
            mask[:, width:] = (neg[None, :] if neg.dim() == 1 else neg) == pos
        return mask

    def _logq_columns(
        self, logits: torch.Tensor, positive_logq: torch.Tensor | None, negative_logq: torch.Tensor | None
    ) -> torch.Tensor:
        width = self._width(logits)
        correction = torch.zeros_like(logits)
        if positive_logq is not None:
            shape = (1, -1) if self.in_batch else (-1, 1)  # column j's positive, or row i's own
            correction[:, :width] = positive_logq.to(logits).reshape(shape)
        if negative_logq is not None and logits.shape[1] > width:
            neg = negative_logq.to(logits)
            correction[:, width:] = neg.reshape(1, -1) if neg.dim() == 1 else neg
        return correction

    def extra_repr(self) -> str:
        return (
            f"symmetric={self.symmetric}, mask_duplicates={self.mask_duplicates}, "
            f"normalize={self.normalize}, reduction={self.reduction!r}, in_batch={self.in_batch}"
        )


def _masked_cross_entropy(
    logits: torch.Tensor, mask: torch.Tensor | None, labels: torch.Tensor
) -> torch.Tensor:
    """Per-row cross-entropy with masked entries removed from the softmax (the label is never masked)."""
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    return F.cross_entropy(logits, labels, reduction="none")
