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


def test_vectors_are_the_papers_formula(tiny_model_dir):
    """The fitted vectors are AlphaRec's: a user's ego vector is the MLP of the mean of their training
    items' text vectors (computed inside the model through the first layer's linearity), items' the
    MLP of their own, then the layer mean of the propagation, unit length."""
    import torch.nn.functional as F

    from clarec.models._lm import model_text_vectors
    from clarec.models.graph import normalized_adjacency, propagate

    data = block_dataset()
    model = create("alpharec", ALPHA | {"encoder": str(tiny_model_dir)}).fit(data)
    item_text = model_text_vectors(model, data.items)
    counts = np.asarray(model.seen.sum(axis=1)).ravel()
    user_text = (model.seen @ item_text) / np.maximum(counts, 1)[:, None]
    coo = model.seen.tocoo()
    adj = normalized_adjacency(model.n_users, model.n_items, coo.row, coo.col)
    with torch.no_grad():
        layers = [model.mlp_(torch.from_numpy(np.vstack([user_text, item_text]).astype(np.float32)))]
        for _ in range(model.n_layers):
            layers.append(propagate(adj, layers[-1]))
        out = F.normalize(torch.stack(layers).mean(0), dim=-1).numpy()
    assert model.n_layers >= 1 and (counts > 1).any()
    np.testing.assert_allclose(model.user_vecs, out[: model.n_users], atol=2e-5)
    np.testing.assert_allclose(model.item_vecs, out[model.n_users :], atol=2e-5)


def test_an_empty_history_is_scored_as_a_training_user_without_items(tiny_model_dir):
    """A training user with no items is the MLP of a zero text vector; an ad-hoc empty history is
    the same user, not a zero vector that ranks nothing."""
    data = block_dataset()
    keep = data.interactions["user"] != 0  # user 0 keeps its place, without training items
    model = create("alpharec", ALPHA | {"encoder": str(tiny_model_dir)}).fit(
        data.with_interactions(data.interactions[keep])
    )
    assert model.seen[0].nnz == 0
    empty = model.score_histories([np.array([], dtype=np.int64)])[0]
    np.testing.assert_allclose(empty, model.score(np.array([0]))[0], rtol=1e-5, atol=1e-6)
    assert empty.std() > 0
