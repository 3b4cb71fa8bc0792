"""The ``device`` setting of the torch models: its forms, what a machine without a GPU answers, and
(on a machine with CUDA) that a model trained on the GPU scores as the same model trained on the CPU."""

import numpy as np
import pytest
import torch
from torch import nn

from clarec.errors import ConfigError
from clarec.models import create
from clarec.models.registry import available_models, get_model_class
from clarec.models.torch_base import TorchRecommender
from clarec.train.loop import Trainer, device_name, resolve_device, to_device

from ..models.recommender_mixin import block_dataset
from ..models.test_capabilities import ALPHA

CUDA = torch.cuda.is_available()
SMALL = {"embedding_dim": 16, "epochs": 5, "batch_size": 32, "progress": False, "seed": 3, "num_threads": 1}


def test_device_forms_and_errors():
    assert [device_name(d) for d in ("cpu", " CUDA ", "cuda:1", "auto")] == ["cpu", "cuda", "cuda:1", "auto"]
    for bad in ("gpu", "cuda:", "cuda:x", "mps"):
        with pytest.raises(ConfigError, match="device must be"):
            device_name(bad)
    with pytest.raises(ConfigError, match="device must be"):
        create("lightgcn", {"device": "gpu"})
    assert resolve_device("cpu") == torch.device("cpu")
    if not CUDA:
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            create("lightgcn", SMALL | {"device": "cuda:0"}).fit(block_dataset())


def test_every_torch_model_declares_the_setting_and_is_in_the_gpu_test():
    torch_models = {n for n in available_models() if issubclass(get_model_class(n), TorchRecommender)}
    for name in torch_models:
        assert get_model_class(name).params["device"].default == "cpu", name
    gpu_tested = {label.split("+")[0] for label in [*SAME_PATH, *OTHER_DRAWS]}
    assert torch_models == gpu_tested


def test_auto_picks_a_gpu_where_there_is_one():
    model = create("bpr", SMALL | {"device": "auto", "epochs": 1}).fit(block_dataset())
    assert model.device_.type == ("cuda" if CUDA else "cpu")
    assert isinstance(model.user_vecs, np.ndarray)


def test_batches_go_to_the_device_with_their_structure():
    batch = (torch.arange(3), [np.arange(2), {"x": torch.ones(2)}], 5)
    moved = to_device(batch, torch.device("cpu"))
    assert isinstance(moved, tuple) and isinstance(moved[1], list) and isinstance(moved[1][1], dict)
    assert torch.equal(moved[0], batch[0]) and moved[1][0] is batch[1][0] and moved[2] == 5


def test_the_trainer_moves_the_module_and_keeps_the_optimiser_on_it():
    module = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    seen = []

    def loss_fn(batch):
        seen.append(batch.device)
        return (module(batch) ** 2).mean()

    device = resolve_device("auto")
    Trainer(epochs=2, progress=False, device=device).fit(
        module, lambda e: [torch.ones(4, 2)], loss_fn, optimizer
    )
    assert module.weight.device.type == device.type and {d.type for d in seen} == {device.type}
    assert optimizer.param_groups[0]["params"][0] is module.weight


# Models whose training draws nothing from the device's random generator: on the GPU they follow the
# CPU run step by step, up to the kernels' rounding (dropout is off: its masks come from the device's
# generator). Labels: the model's name, "+variant" after it.
TEXT = {"encoder": None, "cache_dir": "none"}  # the tiny test encoder goes in at run time
SEQ = {"max_len": 10, "dropout": 0.0}
SAME_PATH = {
    "bpr": {"batch_size": 64},
    "bpr+align": {"align": {"weight": 0.1}},
    "lightgcn": {"n_layers": 2},
    "sgl": {"n_layers": 2, "ssl_weight": 0.02},
    "byol-cf": {"n_layers": 2},
    "alpharec": ALPHA | {"epochs": 5} | TEXT,
    "two-tower": {"dropout": 0.0} | TEXT,
    "two-tower+mined": {"dropout": 0.0, "n_negatives": 8, "hard_negatives": 4, "logq": False} | TEXT,
    "sasrec": SEQ,
    "cl4srec": SEQ | {"ssl_weight": 0.05},
    "duorec": SEQ | {"ssl_weight": 0.05},
    "text-seq": SEQ | {"adaptor_dropout": 0.0} | TEXT,
}
# Draws on the device: SimGCL / XSimGCL's noise.
OTHER_DRAWS = {"simgcl": {"n_layers": 2}, "xsimgcl": {"n_layers": 2}}


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("label", [*SAME_PATH, *OTHER_DRAWS])
def test_a_model_trained_on_the_gpu_scores_as_on_the_cpu(label, tiny_model_dir):
    data = block_dataset()
    name = label.split("+")[0]
    params = SMALL | SAME_PATH.get(label, OTHER_DRAWS.get(label, {}))
    if "encoder" in params:
        params["encoder"] = str(tiny_model_dir)
    if "align" in params:
        params["align"] = params["align"] | {"encoder": str(tiny_model_dir)}
    cpu = create(name, params | {"device": "cpu"}).fit(data)
    gpu = create(name, params | {"device": "cuda"}).fit(data)
    assert gpu.device_.type == "cuda"
    users = np.arange(data.n_users)
    a, b = cpu.score(users), gpu.score(users)
    assert b.shape == a.shape and np.isfinite(b).all()
    if label in OTHER_DRAWS:
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9  # other noise draws, same model
    else:
        # the same path; the kernels round differently, and five epochs carry that along a little
        assert np.abs(b - a).max() <= 1e-2 * np.abs(a).max()


@pytest.mark.parametrize("label", ["lightgcn", "alpharec", "two-tower", "sasrec"])
def test_bf16_mixed_precision_trains_to_nearly_the_same_model(label, tiny_model_dir):
    # on this device (the CPU here): the steps' forward pass in bfloat16, propagation and weights in fp32
    data = block_dataset()
    params = SMALL | SAME_PATH[label]
    if "encoder" in params:
        params["encoder"] = str(tiny_model_dir)
    device = "auto"
    full = create(label, params | {"device": device}).fit(data).score(np.arange(data.n_users))
    mixed = create(label, params | {"device": device, "precision": "bf16"}).fit(data)
    assert mixed.history_.losses != create(label, params).fit(data).history_.losses  # bf16 did run
    scores = mixed.score(np.arange(data.n_users))
    assert np.isfinite(scores).all() and np.corrcoef(full.ravel(), scores.ravel())[0, 1] > 0.99
    with pytest.raises(ConfigError, match="precision"):
        create(label, {"precision": "fp16"})


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_evaluation_on_the_gpu_ranks_as_on_the_cpu():
    """``Evaluator(device="cuda")`` scores an embedding model on the GPU: the same lists as the CPU
    (its float64 product may round differently in the last bit: at most a swap of two near-equal
    scores, so the figures agree to 1e-6)."""
    from clarec.data.split import make_split
    from clarec.evaluate import Evaluator

    split = make_split(block_dataset(), "random", seed=1)
    model = create("lightgcn", SMALL).fit(split.train)
    assert model.query_items() is not None
    cpu, gpu = Evaluator(split), Evaluator(split, device="cuda")
    a, b = cpu.evaluate(model).metrics, gpu.evaluate(model).metrics
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-6 for k in a)
    users = np.arange(split.train.n_users)
    same = cpu.rank(model, users, split.train.to_csr()) == gpu.rank(model, users, split.train.to_csr())
    assert same.mean() > 0.99
