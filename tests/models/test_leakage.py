"""Validation must not teach a model: only early stopping (and settings a model documents as chosen
on validation, such as a cold-item score shift) may read it.

Every registered model that trains with torch is fitted twice with the same seed and two different
validation sets, validating only after its last epoch — so early stopping cannot choose another
epoch — and must give identical scores. A model that trained on validation interactions, or whose
training randomness depended on them, would not.
"""

from __future__ import annotations

import numpy as np
import pytest

from clarec.models.torch_base import TorchRecommender

from .recommender_mixin import block_dataset
from .test_capabilities import CASES


def _validation_sets(data):
    inter = data.interactions
    return data.with_interactions(inter.iloc[:6]), data.with_interactions(inter.iloc[-6:])


@pytest.mark.parametrize("case", sorted(CASES))
def test_validation_does_not_change_the_model(case, tiny_model_dir):
    name, factory = CASES[case]
    data = block_dataset()
    scores = []
    for valid in _validation_sets(data):
        model = factory(str(tiny_model_dir))
        if not isinstance(model, TorchRecommender):
            pytest.skip(f"{name} does not train with torch (its fit reads no validation)")
        model.epochs = min(model.epochs, 8)
        model.eval_every = model.epochs  # one validation, after the last epoch: the last weights stay
        scores.append(model.fit(data, valid=valid).score(np.arange(data.n_users)))
    np.testing.assert_array_equal(scores[0], scores[1])
