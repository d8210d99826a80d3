"""A trial's continuous targets and binned labels follow the dataset card, not the trial."""
import json
import shutil

import numpy as np
import pytest
import torch

from dml_core.data import angle_to_unit_vector
from dml_core.training import TrialConfig, TrialError, run_trial
from dml_core.training.trial import Trial


@pytest.fixture(scope="module")
def rotation(tmp_path_factory):
    """A tiny rotation set (card: an angle of period 360) and copies of it whose cards say
    the same values are plain (linear) ones, or say nothing of their kind."""
    from dml_core.data import prepare_dataset
    from dml_core.data.synthetic import write_fashion_mnist

    root = tmp_path_factory.mktemp("continuous")
    raw = write_fashion_mnist(root / "raw", per_class=(16, 4))
    prepare_dataset("rotation", raw, root / "angle", seed=1)
    prepare_dataset("fashion_mnist", raw, root / "classes")
    for name, info in {"linear": {"kind": "linear"}, "unstated": {"name": "angle"}}.items():
        shutil.copytree(root / "angle", root / name)
        card = json.loads((root / name / "card.json").read_text())
        card["continuous_label"] = info
        (root / name / "card.json").write_text(json.dumps(card))
    return root


def config(dataset, labels="continuous", **over):
    sampler = dict(kind="continuous", batch_size=12, options=dict(num_neighbors=3))
    if labels == "binned":
        sampler = dict(batch_size=12, m_per_class=3)
    cfg = dict(
        dataset=str(dataset),
        model=dict(name="small_cnn", embedding_dim=4, options=dict(width=4)),
        loss=dict(name="log_ratio") if labels == "continuous" else dict(name="contrastive"),
        labels=labels,
        label_bins=4,
        sampler=sampler,
        train=dict(epochs=1, max_batches_per_epoch=2, num_threads=1),
        eval=dict(ks=[1, 2]),
        seed=0,
    )
    return TrialConfig.model_validate({**cfg, **over})


def first_batch(trial):
    trial.loader.set_epoch(0)
    return next(iter(trial.loader))


def test_an_angle_card_gives_unit_vectors_and_equal_arcs(rotation):
    trial = Trial(config(rotation / "angle"))
    batch = first_batch(trial)
    expected = angle_to_unit_vector(batch.continuous_labels)
    assert torch.equal(trial.targets(batch), expected)
    np.testing.assert_array_equal(trial.sampler.labels, angle_to_unit_vector(torch.from_numpy(trial.train_set.continuous_labels)).numpy())
    binned = Trial(config(rotation / "angle", "binned"))
    batch = first_batch(binned)
    arcs = (batch.continuous_labels.double() // 90).long()
    assert torch.equal(binned.targets(batch), arcs)


def test_a_linear_card_passes_the_values_through(rotation):
    trial = Trial(config(rotation / "linear"))
    batch = first_batch(trial)
    assert torch.equal(trial.targets(batch), batch.continuous_labels)
    np.testing.assert_array_equal(trial.sampler.labels[:, 0], trial.train_set.continuous_labels)
    # Bins are equal intervals of the training rows' range, not arcs of 360.
    binned = Trial(config(rotation / "linear", "binned"))
    values = binned.train_set.continuous_labels.astype(np.float64)
    low, high = values.min(), values.max()
    assert (binned.label_meaning.low, binned.label_meaning.high) == (float(low), float(high))
    expected = np.clip(np.floor((values - low) / ((high - low) / 4)), 0, 3)
    np.testing.assert_array_equal(binned.sampler.labels, expected)
    result = run_trial(config(rotation / "linear"))
    assert {"ndcg@1", "spearman"} <= set(result.metrics)


def test_a_card_without_a_kind_gives_plain_values_and_a_warning(rotation):
    with pytest.warns(UserWarning, match="unstated/card.json: continuous_label has no kind"):
        trial = Trial(config(rotation / "unstated"))
        batch = first_batch(trial)
        assert torch.equal(trial.targets(batch), batch.continuous_labels)


def test_a_set_without_continuous_labels_is_a_trial_error(rotation):
    with pytest.raises(TrialError, match="sampler.kind: continuous, but dataset .* has no continuous labels"):
        Trial(config(rotation / "classes"))
    with pytest.raises(TrialError, match="labels: binned needs a dataset with continuous labels"):
        Trial(config(rotation / "classes", "binned"))
    trial = Trial(config(rotation / "classes", sampler=dict(batch_size=12, m_per_class=4)))
    with pytest.raises(TrialError, match="labels: continuous, but dataset .* has no continuous labels"):
        trial.targets(first_batch(trial))
