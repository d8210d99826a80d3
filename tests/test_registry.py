"""Every registry fails on a typo in params.yaml before any work starts: an unknown name or
option is a ValueError that names it and lists what is known."""
import pytest

from dml_core import build_loss, build_miner
from dml_core.losses import LOSSES
from dml_core.miners import MINERS
from dml_core.models import BACKBONES, build_embedder

CASES = {
    "loss": (build_loss, LOSSES, "tripletloss", "triplet", "distance, margin, reduction"),
    "miner": (build_miner, MINERS, "semi_hard", "semihard", "distance, margin, max_triplets"),
    "model": (build_embedder, BACKBONES, "resnet9000", "small_cnn", "in_channels, width"),
}


@pytest.mark.parametrize("build, registry, typo, name, known", CASES.values(), ids=CASES.keys())
def test_an_unknown_name_or_option_lists_the_known_ones(build, registry, typo, name, known):
    with pytest.raises(ValueError) as e:
        build(typo)
    assert typo in str(e.value) and all(n in str(e.value) for n in registry.names())
    with pytest.raises(ValueError, match=f"unknown option 'alpha' for {registry.kind} '{name}'; known options: {known}$"):
        build(name, alpha=1)
