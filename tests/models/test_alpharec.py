import numpy as np
import pandas as pd
import torch

from clarec.models import create
from clarec.models.base import Recommender

from .recommender_mixin import RecommenderMixin, TinyBert, block_dataset
from .test_capabilities import ALPHA


class TestAlphaRec(TinyBert, RecommenderMixin):
    uses_validation = True

    def _get_model(self):
        return create("alpharec", ALPHA | {"encoder": self.encoder_dir})


def test_every_vector_comes_from_text(tiny_model_dir, tmp_path):
    data = block_dataset()
    model = create("alpharec", ALPHA | {"encoder": str(tiny_model_dir)}).fit(data)
    # the only parameters are the MLP's: no ID embedding of any size
    assert sum(p.numel() for p in model.mlp_.parameters()) == 32 * 32 + 32 + 32 * 16 + 16  # tiny BERT: 32-d
    # an item nobody interacted with is its text's MLP image (no edges: propagation keeps its direction),
    # so an item added later with the same text gets the same vector
    d0 = data.item_index("d0")
    row = data.items.loc[[d0]].reset_index(drop=True).assign(item_id="d0-again")
    (new,) = model.add_items(row)
    np.testing.assert_allclose(model.item_vecs[new], model.item_vecs[d0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(model.item_vecs, axis=1), 1.0, atol=1e-5)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    (again,) = loaded.add_items(pd.DataFrame({"item_id": ["x"], "title": ["galaxy space alien starship"]}))
    (same,) = model.add_items(pd.DataFrame({"item_id": ["x"], "title": ["galaxy space alien starship"]}))
    np.testing.assert_array_equal(loaded.item_vecs[again], model.item_vecs[same])
    assert isinstance(loaded.mlp_, torch.nn.Module)
