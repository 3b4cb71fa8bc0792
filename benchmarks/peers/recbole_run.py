"""Train a RecBole model on a clarec split folder and write its top-k lists for `clarec evaluate`.

Runs inside benchmarks/peers/.venv-recbole (see setup_recbole.sh); it does not import clarec.

The split folder's train.tsv / valid.tsv / test.tsv (header `user_id<TAB>item_id[<TAB>timestamp]`)
are copied as RecBole atomic files `<name>.train.inter`, `<name>.valid.inter`, `<name>.test.inter`
and loaded through RecBole's `benchmark_filename` option, so RecBole uses the split as it is (no
re-splitting, no filtering). Outputs in OUT_DIR:

- `recs.tsv`: `user_id<TAB>item_id<TAB>rank`, top-k (default 20) per test user, items the user has
  in train or valid excluded (the same candidate set as clarec's evaluator and RecBole's test pass);
- `recbole.json`: model, settings, seconds per training epoch (wall time of each
  `Trainer._train_epoch` call), best validation epoch and RecBole's own test metrics (NDCG@20, ...);
- `last.pth`: the training state after the last finished epoch (validation and early-stopping
  bookkeeping included), so that ``--resume`` continues a stopped run — a SASRec run on Beauty takes
  hours on one core. The resumed run goes on from that state with the random generators as they
  were; RecBole's data loader reshuffles from its seed, so its later epochs see other orders than an
  uninterrupted run's would (a training of the same settings, not the same numbers).

Usage:
    .venv-recbole/bin/python recbole_run.py --split DIR --model LightGCN --epochs 2 --out OUT_DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

# RecBole core models covered; SimGCL / XSimGCL live in recbole-gnn, which is not installed.
GRAPH_MODELS = {"LightGCN", "SGL", "NGCF"}
SEQUENTIAL_MODELS = {"SASRec"}
MODELS = {"BPR"} | GRAPH_MODELS | SEQUENTIAL_MODELS


def numpy1_aliases() -> None:
    """RecBole 1.2.1's ``Config`` sets ``np.float = np.float_`` and the like, from aliases NumPy 2
    removed; they are given back with their NumPy 1 meaning, so that RecBole also runs where NumPy 2
    is installed (the GPU machines' image; setup_recbole.sh pins NumPy 1 instead)."""
    for old, new in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
        if not hasattr(np, old):
            setattr(np, old, getattr(np, new))


def read_sequences(split: Path) -> dict[str, dict[str, list[str]]]:
    """Each part's items per user in time order (file order for ties), from a clarec split folder."""
    parts: dict[str, dict[str, list[str]]] = {}
    for part in ("train", "valid", "test"):
        with (split / f"{part}.tsv").open(newline="") as fh:
            reader = csv.reader(fh, delimiter="\t")
            header = next(reader)
            if header[:3] != ["user_id", "item_id", "timestamp"]:
                raise SystemExit(f"{split / part}.tsv: a sequential model needs user_id, item_id, timestamp")
            rows = sorted(
                ((u, float(t), n, i) for n, (u, i, t, *_) in enumerate(reader)),
                key=lambda r: (r[0], r[1], r[2]),
            )
        seqs: dict[str, list[str]] = {}
        for u, _, _, i in rows:
            seqs.setdefault(u, []).append(i)
        parts[part] = seqs
    return parts


def write_sequence_atomic(parts: dict, folder: Path, name: str, max_len: int) -> dict[str, int]:
    """RecBole's pre-split sequential files: ``user_id, item_id_list, item_id`` rows. Train: every
    prefix of each training sequence → its next item (RecBole's own augmentation); valid: the
    training sequence → the validation item; test: training + validation → the test item; inputs
    cut to the last ``max_len`` items."""
    counts = {}
    for part in ("train", "valid", "test"):
        rows = []
        for u, seq in parts["train"].items():
            if part == "train":
                rows += [(u, seq[max(0, t - max_len) : t], seq[t]) for t in range(1, len(seq))]
            else:
                history = seq + (parts["valid"].get(u, []) if part == "test" else [])
                rows += [(u, history[-max_len:], item) for item in parts[part].get(u, [])]
        with (folder / f"{name}.{part}.inter").open("w") as fh:
            fh.write("user_id:token\titem_id_list:token_seq\titem_id:token\n")
            fh.writelines(f"{u}\t{' '.join(h)}\t{i}\n" for u, h, i in rows)
        counts[part] = len(rows)
    return counts


def sequential_top_k(model, test_data, depth: dict[str, int], k: int) -> list[tuple[str, list[str]]]:
    """Each test user's top ``k + depth[user]`` items from the whole catalogue (history items kept,
    RecBole's sequential default), so the list stays ``k`` long once ``clarec evaluate --history-items
    masked`` has removed the user's ``depth[user]`` history items."""
    dataset = test_data._dataset
    uid_field, iid_field = dataset.uid_field, dataset.iid_field
    users, items = dataset.field2id_token[uid_field], dataset.field2id_token[iid_field]
    out = []
    model.eval()
    with torch.no_grad():
        for batch in test_data:
            interaction = batch[0].to(model.device)
            scores = model.full_sort_predict(interaction).view(len(interaction), -1).clone()
            scores[:, 0] = -torch.inf  # [PAD]
            tokens = [users[u] for u in interaction[uid_field].cpu().numpy()]
            width = min(scores.shape[1] - 1, k + max(depth.get(t, 0) for t in tokens))
            top = torch.topk(scores, width, dim=1).indices.cpu().numpy()
            out += [
                (t, [items[i] for i in row[: k + depth.get(t, 0)]])
                for t, row in zip(tokens, top, strict=True)
            ]
    return out


def write_atomic(src: Path, dst: Path) -> int:
    """Copy a clarec TSV to a RecBole .inter file with typed headers; returns the row count."""
    with src.open(newline="") as fin, dst.open("w", newline="") as fout:
        reader = csv.reader(fin, delimiter="\t")
        header = next(reader)
        if header[:2] != ["user_id", "item_id"]:
            raise SystemExit(f"{src}: expected header user_id, item_id[, timestamp]; got {header}")
        keep = 3 if len(header) >= 3 and header[2] == "timestamp" else 2
        types = ["user_id:token", "item_id:token", "timestamp:float"][:keep]
        writer = csv.writer(fout, delimiter="\t", lineterminator="\n")
        writer.writerow(types)
        rows = 0
        for row in reader:
            writer.writerow(row[:keep])
            rows += 1
    return rows


def load_checkpoint(model, path: str) -> None:
    # RecBole's own loader calls torch.load with the default weights_only=True (torch >= 2.6),
    # which refuses its checkpoints (they hold the config object), so load them here.
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["state_dict"])
    model.load_other_parameter(state.get("other_parameter"))


def top_k(model, dataset, histories, users: np.ndarray, k: int, batch: int = 256) -> np.ndarray:
    """Top-k internal item ids per internal user id, excluding each user's history and padding."""
    from recbole.data.interaction import Interaction

    uid_field = dataset.uid_field
    n_items = dataset.item_num
    out = np.empty((len(users), k), dtype=np.int64)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(users), batch):
            chunk = users[start : start + batch]
            inter = Interaction({uid_field: torch.as_tensor(chunk, dtype=torch.int64)}).to(model.device)
            scores = model.full_sort_predict(inter).view(len(chunk), n_items).clone()
            scores[:, 0] = -torch.inf  # [PAD]
            for row, uid in enumerate(chunk):
                seen = histories.get(int(uid))
                if seen is not None:
                    scores[row, seen.to(scores.device)] = -torch.inf
            out[start : start + len(chunk)] = torch.topk(scores, k, dim=1).indices.cpu().numpy()
    return out


def write_general_recs(args, dataset, train_data, valid_data, test_data, trainer) -> np.ndarray:
    """Top-k lists of a general model, each user's train + valid items excluded (internal ids)."""
    uid_field, iid_field = dataset.uid_field, dataset.iid_field
    histories: dict[int, list[int]] = {}
    for part in (train_data._dataset, valid_data._dataset):
        for u, i in zip(part.inter_feat[uid_field].numpy(), part.inter_feat[iid_field].numpy(), strict=True):
            histories.setdefault(int(u), []).append(int(i))
    hist_t = {u: torch.as_tensor(v, dtype=torch.int64) for u, v in histories.items()}
    test_users = np.unique(test_data._dataset.inter_feat[uid_field].numpy())
    recs = top_k(trainer.model, dataset, hist_t, test_users, args.k)
    user_tokens = dataset.field2id_token[uid_field]
    item_tokens = dataset.field2id_token[iid_field]
    with (args.out / "recs.tsv").open("w", newline="") as fh:
        fh.write("user_id\titem_id\trank\n")
        for uid, items in zip(test_users, recs, strict=True):
            for rank, iid in enumerate(items, start=1):
                fh.write(f"{user_tokens[uid]}\t{item_tokens[iid]}\t{rank}\n")

    return test_users


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", required=True, type=Path, help="clarec split folder")
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--out", required=True, type=Path, help="output folder")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--n-layers", type=int, default=3, help="graph models only")
    ap.add_argument("--embedding-size", type=int, default=64)
    ap.add_argument("--train-batch-size", type=int, default=2048)
    ap.add_argument("--reg-weight", type=float, default=None, help="RecBole default when unset")
    ap.add_argument("--max-len", type=int, default=50, help="sequential models: items read")
    ap.add_argument("--dropout", type=float, default=0.5, help="sequential models: hidden and attention")
    ap.add_argument("--eval-step", type=int, default=1, help="validate every N epochs")
    ap.add_argument("--stopping-step", type=int, default=10)
    ap.add_argument("--k", type=int, default=20, help="length of the written lists")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--name", default="clarec", help="RecBole dataset name")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cuda: the first GPU")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pth when there is one")
    ap.add_argument(
        "--timing-only",
        action="store_true",
        help="train --epochs epochs without validation, write only the epoch times (no recs.tsv)",
    )
    args = ap.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config would otherwise try to parse our options
    numpy1_aliases()

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    args.split, args.out = args.split.resolve(), args.out.resolve()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = args.out / "recbole-data"
    (data_dir / args.name).mkdir(parents=True, exist_ok=True)
    sequential = args.model in SEQUENTIAL_MODELS
    if sequential:
        parts = read_sequences(args.split)
        counts = write_sequence_atomic(parts, data_dir / args.name, args.name, args.max_len)
    else:
        counts = {
            part: write_atomic(args.split / f"{part}.tsv", data_dir / args.name / f"{args.name}.{part}.inter")
            for part in ("train", "valid", "test")
        }

    params = {
        "data_path": str(data_dir),
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "load_col": {"inter": ["user_id", "item_id"]},
        # keep every interaction: no rating/count filters, no re-splitting
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "eval_args": {"group_by": "user", "order": "RO", "mode": "full"},
        "metrics": ["NDCG", "Recall", "Precision"],
        "topk": [10, 20],
        "valid_metric": "NDCG@20",
        "metric_decimal_place": 6,
        "embedding_size": args.embedding_size,
        "train_batch_size": args.train_batch_size,
        "eval_batch_size": 4096,
        "learning_rate": args.learning_rate,
        "epochs": args.epochs,
        "eval_step": args.eval_step,
        "stopping_step": args.stopping_step,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "seed": args.seed,
        "reproducibility": True,
        "gpu_id": "" if args.device == "cpu" else "0",  # RecBole takes a visible GPU whatever "device" says
        "show_progress": False,
        "checkpoint_dir": str(args.out / "saved"),
        "log_wandb": False,
        "state": "INFO",
    }
    if sequential:
        # SASRec with the softmax over every item (loss_type CE: no negatives sampled); RecBole's
        # SASRec defaults otherwise (2 layers, 2 heads, inner size 256, GELU, init std 0.02)
        params |= {
            "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
            "eval_args": {"group_by": "user", "order": "TO", "mode": "full"},
            "hidden_size": args.embedding_size,
            "inner_size": 4 * args.embedding_size,
            "n_layers": 2,
            "n_heads": 2,
            "hidden_dropout_prob": args.dropout,
            "attn_dropout_prob": args.dropout,
            "MAX_ITEM_LIST_LENGTH": args.max_len,
            "loss_type": "CE",
            "train_neg_sample_args": None,
        }
    elif args.model in GRAPH_MODELS:
        params["n_layers"] = args.n_layers
    if args.reg_weight is not None:
        params["reg_weight"] = args.reg_weight

    config = Config(model=args.model, dataset=args.name, config_dict=params)
    init_seed(config["seed"], config["reproducibility"])
    os.chdir(args.out)  # RecBole writes log/ and log_tensorboard/ in the working directory
    init_logger(config)
    logger = logging.getLogger()
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    epoch_seconds: list[float] = []
    inner = trainer._train_epoch
    last_file = args.out / "last.pth"
    earlier = {"fit_seconds": 0.0, "resumed_after": []}
    if args.resume and not args.timing_only and last_file.is_file():
        state = torch.load(last_file, map_location="cpu", weights_only=False)
        trainer.model.load_state_dict(state["state_dict"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.start_epoch = state["epoch"] + 1
        trainer.cur_step, trainer.best_valid_score = state["cur_step"], state["best_valid_score"]
        trainer.best_valid_result = state["best_valid_result"]
        # the best checkpoint by its name under this run's saved/ (the folder may have moved)
        trainer.saved_model_file = str(args.out / "saved" / Path(state["saved_model_file"]).name)
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        epoch_seconds += state["epoch_seconds"]
        earlier = {
            "fit_seconds": state["fit_seconds"],
            "resumed_after": state["resumed_after"] + [state["epoch"]],
        }
        logger.info("resumed after epoch %d from %s", state["epoch"], last_file)
    fit_start = time.perf_counter()

    def save_last(epoch: int) -> None:
        """The state after ``epoch`` (trained, validated, early stopping counted, best model saved)."""
        state = {
            "epoch": epoch,
            "state_dict": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "cur_step": trainer.cur_step,
            "best_valid_score": trainer.best_valid_score,
            "best_valid_result": trainer.best_valid_result,
            "saved_model_file": trainer.saved_model_file,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "epoch_seconds": list(epoch_seconds),
            "fit_seconds": earlier["fit_seconds"] + time.perf_counter() - fit_start,
            "resumed_after": earlier["resumed_after"],
        }
        torch.save(state, last_file.with_suffix(".tmp"))
        last_file.with_suffix(".tmp").replace(last_file)  # never half a file

    def timed_train_epoch(train, epoch_idx, *a, **kw):
        if not args.timing_only and epoch_idx > trainer.start_epoch:
            save_last(epoch_idx - 1)  # the previous epoch is finished when the next one starts
        start = time.perf_counter()
        result = inner(train, epoch_idx, *a, **kw)
        epoch_seconds.append(time.perf_counter() - start)
        return result

    trainer._train_epoch = timed_train_epoch

    if args.timing_only:
        # Speed only: no validation pass, no checkpoint, no test; `_train_epoch` is one pass over
        # the training pairs (negative sampling in the data loader, SGL's view redraw in
        # model.train(), forward, backward, optimiser step).
        fit_start = time.perf_counter()
        trainer.fit(train_data, None, saved=False, show_progress=False)
        timing = {
            "toolkit": "recbole",
            "model": args.model,
            "timing_only": True,
            "torch_threads": torch.get_num_threads(),
            "settings": {
                "embedding_size": args.embedding_size,
                "train_batch_size": args.train_batch_size,
                "n_layers": args.n_layers if args.model in GRAPH_MODELS else None,
                "epochs": args.epochs,
                "seed": args.seed,
            },
            "rows_loaded": {"train": len(train_data._dataset.inter_feat)},
            "seconds_per_epoch": epoch_seconds,
            "fit_seconds": time.perf_counter() - fit_start,
        }
        (args.out / "recbole.json").write_text(json.dumps(timing, indent=2) + "\n")
        print(json.dumps({k: timing[k] for k in ("model", "seconds_per_epoch")}))
        return 0

    best_valid, best_valid_result = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    fit_seconds = earlier["fit_seconds"] + time.perf_counter() - fit_start
    load_checkpoint(trainer.model, trainer.saved_model_file)
    test_result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)

    if sequential:
        # lists with history items kept, deep enough to be scored masked too (clarec evaluate
        # --history-items masked); every user's history: training + validation items
        depth = {u: len(set(seq) | set(parts["valid"].get(u, []))) for u, seq in parts["train"].items()}
        ranked = sequential_top_k(trainer.model, test_data, depth, args.k)
        with (args.out / "recs.tsv").open("w", newline="") as fh:
            fh.write("user_id\titem_id\trank\n")
            for user, items in ranked:
                fh.writelines(f"{user}\t{item}\t{rank}\n" for rank, item in enumerate(items, start=1))
        test_users = np.array([u for u, _ in ranked])
    else:
        test_users = write_general_recs(args, dataset, train_data, valid_data, test_data, trainer)

    import recbole

    summary = {
        "toolkit": "recbole",
        "recbole_version": recbole.__version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "model": args.model,
        "split": str(args.split.resolve()),
        "rows": counts,
        "rows_loaded": {
            part: len(data._dataset.inter_feat)
            for part, data in zip(
                ("train", "valid", "test"), (train_data, valid_data, test_data), strict=True
            )
        },
        "settings": {
            "embedding_size": args.embedding_size,
            "train_batch_size": args.train_batch_size,
            "learning_rate": args.learning_rate,
            "epochs": args.epochs,
            "n_layers": 2 if sequential else args.n_layers if args.model in GRAPH_MODELS else None,
            "max_len": args.max_len if sequential else None,
            "dropout": args.dropout if sequential else None,
            "reg_weight": config["reg_weight"] if "reg_weight" in config else None,
            "eval_step": args.eval_step,
            "stopping_step": args.stopping_step,
            "seed": args.seed,
        },
        "epochs_run": len(epoch_seconds),
        "seconds_per_epoch": epoch_seconds,
        "mean_seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else None,
        "fit_seconds": fit_seconds,
        "resumed_after": earlier["resumed_after"],
        "best_valid_ndcg@20": float(best_valid) if best_valid is not None else None,
        "best_valid": {key: float(v) for key, v in (best_valid_result or {}).items()},
        "recbole_test": {key: float(v) for key, v in (test_result or {}).items()},
        "recbole_test_ndcg@20": float(test_result["ndcg@20"]) if test_result else None,
        "recs_file": "recs.tsv",
        "recs_users": int(len(test_users)),
        "k": args.k,
        "history_items": "kept (lists deep enough to be scored masked)" if sequential else "masked",
    }
    (args.out / "recbole.json").write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("wrote %s and %s", args.out / "recs.tsv", args.out / "recbole.json")
    print(json.dumps({k: summary[k] for k in ("model", "seconds_per_epoch", "recbole_test_ndcg@20")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
