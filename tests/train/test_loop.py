import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from clarec.errors import ClarecError
from clarec.train.loop import (
    DivergedError,
    Trainer,
    TrainHistory,
    load_checkpoint,
    seed_everything,
    set_torch_threads,
)


class Scalar(nn.Module):
    """One weight w, loss (w - 10)²: with SGD lr 0.1 each step maps w to 0.8 w + 2."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))


def _setup():
    module = Scalar()
    opt = torch.optim.SGD(module.parameters(), lr=0.1)

    def batches(epoch):
        yield None  # one step per epoch

    def loss_fn(_):
        return (module.w - 10.0) ** 2

    return module, batches, loss_fn, opt


def _scripted(values, module, seen_weights):
    it = iter(values)

    def validate():
        seen_weights.append(float(module.w.detach()))
        return next(it)

    return validate


def test_without_validation_keeps_last_weights_and_loss_falls():
    module, batches, loss_fn, opt = _setup()
    h = Trainer(epochs=3, progress=False).fit(module, batches, loss_fn, opt)
    assert h.epochs == [1, 2, 3]
    # w: 0 -> 2 -> 3.6 -> 4.88; the loss is measured before each step.
    np.testing.assert_allclose(h.losses, [100.0, 64.0, 40.96], rtol=1e-6)
    assert float(module.w.detach()) == pytest.approx(4.88, rel=1e-6)
    assert h.best_epoch == 3 and h.best_metric is None and not h.stopped_early
    assert h.val_metrics == [None, None, None] and len(h.seconds) == 3


def test_early_stopping_restores_best_weights():
    module, batches, loss_fn, opt = _setup()
    weights = []
    validate = _scripted([0.1, 0.5, 0.3, 0.4, 0.2, 0.9], module, weights)
    h = Trainer(epochs=10, patience=3, progress=False).fit(module, batches, loss_fn, opt, validate)
    assert h.epochs == [1, 2, 3, 4, 5]  # 0.3, 0.4, 0.2 do not beat 0.5
    assert h.stopped_early and h.best_epoch == 2 and h.best_metric == 0.5
    assert float(module.w.detach()) == weights[1] == pytest.approx(3.6)


def test_min_epochs_keeps_training_through_an_early_dip():
    module, batches, loss_fn, opt = _setup()
    # a curve that dips after epoch 1 and only recovers at epoch 6
    curve = [0.5, 0.3, 0.2, 0.25, 0.3, 0.6, 0.55, 0.5, 0.4, 0.7, 0.8, 0.9]
    plain = Trainer(epochs=12, patience=3, progress=False).fit(
        module, batches, loss_fn, opt, _scripted(curve, module, [])
    )
    assert plain.epochs == [1, 2, 3, 4] and plain.best_epoch == 1  # stopped inside the dip
    module, batches, loss_fn, opt = _setup()
    weights = []
    h = Trainer(epochs=12, patience=3, min_epochs=6, progress=False).fit(
        module, batches, loss_fn, opt, _scripted(curve, module, weights)
    )
    # no stop before epoch 6; then three validations without improvement
    assert h.epochs == [1, 2, 3, 4, 5, 6, 7, 8, 9] and h.stopped_early
    assert h.best_epoch == 6 and h.best_metric == 0.6
    assert float(module.w.detach()) == weights[5]
    with pytest.raises(ClarecError, match="min_epochs"):
        Trainer(min_epochs=-1)


def test_no_patience_trains_every_epoch_and_keeps_the_best():
    module, batches, loss_fn, opt = _setup()
    validate = _scripted([0.1, 0.105, 0.2, 0.19], module, [])
    h = Trainer(epochs=4, patience=None, progress=False).fit(module, batches, loss_fn, opt, validate)
    assert h.best_epoch == 3 and not h.stopped_early and len(h.epochs) == 4


def test_eval_every_validates_periodically_and_at_the_end():
    module, batches, loss_fn, opt = _setup()
    validate = _scripted([0.1, 0.2, 0.3], module, [])
    h = Trainer(epochs=5, eval_every=2, progress=False).fit(module, batches, loss_fn, opt, validate)
    assert h.val_metrics == [None, 0.1, None, 0.2, 0.3]
    assert h.best_epoch == 5


def test_run_dir_files(tmp_path):
    module, batches, loss_fn, opt = _setup()
    weights = []
    validate = _scripted([0.1, 0.5, 0.3, 0.2], module, weights)
    run = tmp_path / "run"
    h = Trainer(epochs=4, patience=2, metric_name="ndcg@20", run_dir=run, progress=False).fit(
        module, batches, loss_fn, opt, validate
    )
    lines = (run / "log.txt").read_text().splitlines()
    assert [ln.split()[:2] for ln in lines[:4]] == [
        ["epoch", "1"],
        ["epoch", "2"],
        ["epoch", "3"],
        ["epoch", "4"],
    ]
    assert lines[1].startswith("epoch 2 loss 64.000000 ndcg@20 0.500000 time ") and lines[1].endswith(" *")
    assert lines[4].startswith("early stop") and lines[5].startswith("restored epoch 2")
    assert TrainHistory.load(run / "history.json") == h
    assert json.loads((run / "history.json").read_text())["best_epoch"] == 2
    fresh = Scalar()
    load_checkpoint(run / "best.pt", fresh)
    assert float(fresh.w.detach()) == weights[1]


def test_run_dir_without_validation_saves_final_weights(tmp_path):
    module, batches, loss_fn, opt = _setup()
    Trainer(epochs=2, run_dir=tmp_path, progress=False).fit(module, batches, loss_fn, opt)
    assert torch.load(tmp_path / "best.pt", weights_only=True)["w"] == module.w.detach()


def test_diverging_loss_is_a_clear_error():
    module = Scalar()
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    with pytest.raises(DivergedError, match="loss became nan in epoch 1"):
        Trainer(epochs=2, progress=False).fit(
            module, lambda e: [None], lambda _: module.w * float("nan"), opt
        )


@pytest.mark.parametrize("params", [{"epochs": 0}, {"eval_every": 0}, {"patience": 0}])
def test_bad_arguments(params):
    with pytest.raises(ClarecError):
        Trainer(**params)


def test_progress_bar_only_on_a_terminal():
    assert Trainer()._show_progress() is False  # pytest captures stderr: not a tty
    assert Trainer(progress=True)._show_progress() is True


def test_seed_everything_is_reproducible():
    g1 = seed_everything(7)
    a = (torch.rand(3), np.random.rand(), g1.random())
    g2 = seed_everything(7)
    b = (torch.rand(3), np.random.rand(), g2.random())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_set_torch_threads():
    before = torch.get_num_threads()
    try:
        assert set_torch_threads(1) == 1 and torch.get_num_threads() == 1
        cores = len(os.sched_getaffinity(0))  # default: every core this process may run on
        assert set_torch_threads() == cores and torch.get_num_threads() == cores
        assert set_torch_threads(0) == 1  # at least one
    finally:
        torch.set_num_threads(before)


def test_max_steps_ends_mid_epoch_and_validates_there():
    module = Scalar()
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    steps = []

    def batches(epoch):
        for _ in range(4):  # four steps per epoch
            yield None

    def loss_fn(_):
        return (module.w - 10.0) ** 2

    validated = []

    def validate():
        validated.append(float(module.w.detach()))
        return float(module.w.detach())

    h = Trainer(epochs=10, max_steps=6, progress=False).fit(
        module, batches, loss_fn, opt, validate, after_step=[lambda: steps.append(float(module.w.detach()))]
    )
    assert h.epochs == [1, 2] and len(steps) == 6  # epoch 2 stopped after its second step
    # w_{t+1} = 0.8 w_t + 2 from 0: the after-step callback sees each step's result, in order
    want = [0.0]
    for _ in range(6):
        want.append(0.8 * want[-1] + 2)
    np.testing.assert_allclose(steps, want[1:], rtol=1e-6)
    assert len(validated) == 2 and validated[-1] == pytest.approx(want[6])
    with pytest.raises(ClarecError, match="max_steps"):
        Trainer(max_steps=0)


def test_history_traces_changing_temperatures_and_loss_weights(tmp_path):
    from clarec.contrastive import (
        FixedTemperature,
        FixedWeighting,
        LearnableTemperature,
        ScheduledTemperature,
        WarmupWeighting,
    )

    module = Scalar()
    module.sched = ScheduledTemperature(start=0.4, end=0.1, steps=4, kind="linear")
    module.learned = LearnableTemperature(init=0.5)
    module.fixed = FixedTemperature(0.07)
    module.warm = WarmupWeighting({"rec": 1.0, "aux": 0.5}, warmup_steps=4)
    module.constant = FixedWeighting({"other": 2.0})
    opt = torch.optim.SGD(module.parameters(), lr=0.1)

    def batches(epoch):
        yield from (None, None)  # two steps per epoch

    def loss_fn(_):
        return (module.w - 10.0) ** 2 + module.learned.value

    h = Trainer(epochs=3, progress=False, run_dir=tmp_path).fit(
        module, batches, loss_fn, opt, after_step=[module.sched.step, module.warm.step]
    )
    assert set(h.traces) == {"temperature sched", "temperature learned", "weight rec", "weight aux"}
    np.testing.assert_allclose(h.traces["temperature sched"], [0.25, 0.1, 0.1], rtol=1e-6)
    assert h.traces["weight aux"] == [0.25, 0.5, 0.5] and h.traces["weight rec"] == [1.0, 1.0, 1.0]
    learned = h.traces["temperature learned"]
    assert (
        len(learned) == 3 and learned[0] < 0.5 and learned[2] < learned[1] < learned[0]
    )  # loss pulls τ down
    assert TrainHistory.load(tmp_path / "history.json").traces == h.traces


def test_training_and_validation_run_with_numpy_blas_limited_to_torch_threads():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    module, batches, loss_fn, opt = _setup()
    before, seen = blas_threads(), []

    def counted_loss(batch):
        seen.append(blas_threads())
        return loss_fn(batch)

    def validate():
        seen.append(blas_threads())
        return 0.5

    Trainer(epochs=1, num_threads=1, progress=False).fit(module, batches, counted_loss, opt, validate)
    assert len(seen) > 1 and all(threads and all(n == 1 for n in threads) for threads in seen)
    assert blas_threads() == before  # restored after the fit
