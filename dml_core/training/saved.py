"""A finished trial's model, rebuilt from the state it saved, and inputs shaped as it saw them."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def rebuild_model(config, model_path: str | None):
    """(the trained embedder in eval mode on the CPU, the dataset's image shape (H, W, C))."""
    import torch

    from ..data import read_card
    from ..models import build_embedder, input_options

    if not model_path or not Path(model_path).is_file():
        raise FileNotFoundError(f"no model file at {model_path!r}")
    shape = tuple(int(d) for d in read_card(config.dataset)["image"]["shape"])
    m = config.model
    model = build_embedder(m.name, m.embedding_dim, m.normalize, **input_options(m.name, m.options, shape))
    model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
    return model.eval(), shape


def example_batch(config, image_shape: Sequence[int], size: int = 2):
    """A few eval images as the model sees them (float32 [B, C, H, W]). Two, not one:
    torch.export fixes a batch dimension of size 1."""
    import torch

    from ..data import PreparedDataset

    try:
        ds = PreparedDataset(config.dataset, config.eval.split)
        return ds.get_batch(list(range(min(size, len(ds))))).images.contiguous()
    except Exception as e:  # noqa: BLE001 - the shards may be gone; the card's shape is enough
        log.warning("input example from random pixels (%s)", e)
        h, w, c = image_shape
        return torch.rand((size, c, h, w), generator=torch.Generator().manual_seed(0))
