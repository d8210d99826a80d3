"""The generators of sampling losses and miners are seeded from the trial seed (issue 16):
another trial seed draws other negatives, the same seed the same ones, and the trial id and
the config stay as the user wrote them."""
import numpy as np
import pytest
import torch

from dml_core.training import TrialConfig, run_trial
from dml_core.training.identity import trial_id
from dml_core.training.trial import Trial, derived_seed


@pytest.fixture(scope="module")
def config(tiny_dataset, tiny_trial):
    """config(seed, loss, miner=None) -> the tiny trial: one batch, scored on the eval split only."""
    return lambda seed, loss, miner=None: TrialConfig.model_validate(tiny_trial(
        tiny_dataset, seed=seed, loss=loss, miner=miner, train=dict(epochs=1, max_batches_per_epoch=1),
        eval=dict(ks=[1], val_split=None, nmi=False),
    ))


def batch():
    g = torch.Generator().manual_seed(123)
    return torch.randn(24, 8, generator=g, dtype=torch.float64), torch.arange(6).repeat_interleave(4)


NCE = dict(name="nce", options=dict(num_noise=3))
INFONCE = dict(name="infonce", options=dict(num_negatives=3))
RANDOM = dict(name="random")
TRIPLET = dict(name="triplet")


def loss_draws(trial):
    """Three successive loss values on one fixed batch: they differ only by the negatives drawn."""
    x, y = batch()
    return [float(trial.loss(x, y, None)) for _ in range(3)]


def miner_draws(trial):
    x, y = batch()
    return [torch.stack(trial.miner(x, y)) for _ in range(2)]


@pytest.mark.parametrize("loss", [NCE, INFONCE], ids=["nce", "infonce_num_negatives"])
def test_the_trial_seed_moves_the_negatives_a_loss_draws(config, loss):
    a = loss_draws(Trial(config(3, loss)))
    again = loss_draws(Trial(config(3, loss)))
    b = loss_draws(Trial(config(4, loss)))
    assert a == again
    assert a != b


def test_the_trial_seed_moves_the_random_miners_triplets(config):
    a = miner_draws(Trial(config(3, TRIPLET, RANDOM)))
    again = miner_draws(Trial(config(3, TRIPLET, RANDOM)))
    b = miner_draws(Trial(config(4, TRIPLET, RANDOM)))
    for x, y in zip(a, again):
        assert torch.equal(x, y)
    assert any(not torch.equal(x, y) for x, y in zip(a, b))


def test_the_derived_seeds_are_stable_and_distinct_per_component(config):
    trial = Trial(config(3, NCE, RANDOM))
    assert trial.loss.seed == derived_seed(3, "loss") and trial.miner.seed == derived_seed(3, "miner")
    assert derived_seed(3, "loss") != derived_seed(3, "miner") != derived_seed(4, "miner")
    # a fixed value: the derivation must not depend on the process (no hash())
    assert derived_seed(0, "loss") == int.from_bytes(__import__("hashlib").sha256(b"0:loss").digest()[:8], "big") >> 1
    assert 0 <= derived_seed(-5, "miner") < 2**63


def test_the_derived_seed_stays_out_of_the_config_and_the_trial_id(config):
    cfg = config(3, NCE, RANDOM)
    before = (trial_id(cfg), cfg.model_dump())
    Trial(cfg)
    assert (trial_id(cfg), cfg.model_dump()) == before
    assert "seed" not in cfg.loss.options and "seed" not in cfg.miner.options


def test_a_seed_written_in_the_options_wins(config):
    loss = dict(name="nce", options=dict(num_noise=3, seed=11))
    a = Trial(config(3, loss, dict(name="random", options=dict(seed=5))))
    b = Trial(config(4, loss, dict(name="random", options=dict(seed=5))))
    assert a.loss.seed == b.loss.seed == 11 and a.miner.seed == b.miner.seed == 5
    assert loss_draws(a) == loss_draws(b)


def test_components_without_a_seed_option_build_as_before(config):
    trial = Trial(config(3, TRIPLET, dict(name="batch_semihard")))
    assert not hasattr(trial.loss, "seed") and not hasattr(trial.miner, "seed")


def test_an_nce_trial_resumes_its_generators(config):
    def cfg():
        c = config(7, dict(name="nce", options=dict(num_noise=1)), RANDOM)
        c.train.epochs, c.train.max_batches_per_epoch = 2, 2
        return c

    full = run_trial(cfg())
    saved = {}
    Trial(cfg()).run(on_epoch=lambda row, trial, epoch: saved.setdefault("state", trial.state(epoch)))
    resumed = run_trial(cfg(), resume=saved["state"])
    assert resumed.history == full.history
    np.testing.assert_array_equal(resumed.embeddings, full.embeddings)
