"""Replicates are (seed x class partition) pairs (issue 16): a trial's `partition` re-folds the
training classes into train / validation, as Musgrave et al. (ECCV 2020) do, without
re-preparing the data; the evaluation classes never move."""
import hashlib
import json
import pickle

import numpy as np
import pytest
from pydantic import ValidationError

from dml_core.data import BatchLoader, PreparedDataset
from dml_core.data.subset import ClassSubset, held_out_classes, partition_splits
from dml_core.samplers import MPerClassSampler
from dml_core.training import TrialConfig, run_trial
from dml_core.training.identity import trial_id, trial_name
from dml_core.training.trial import Trial


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Fashion-MNIST layout, 10 classes: 3 train, 2 val (the default val_classes), 5 eval;
    shards of 20 rows, so a fold spans several shards of both splits."""
    from dml_core.data import prepare_dataset
    from dml_core.data.synthetic import write_fashion_mnist

    root = tmp_path_factory.mktemp("partitions")
    raw = write_fashion_mnist(root / "raw", per_class=(12, 4))
    prepare_dataset("fashion_mnist", raw, root / "prepared", shard_size=20)
    prepare_dataset("fashion_mnist", raw, root / "no_val", val_classes=0)
    return root


def config(dataset, partition=0, seed=0, **eval_):
    return TrialConfig.model_validate(dict(
        dataset=str(dataset),
        model=dict(name="small_cnn", embedding_dim=8, options=dict(width=4)),
        loss=dict(name="triplet"),
        miner=dict(name="batch_semihard"),
        sampler=dict(batch_size=8, m_per_class=4),
        train=dict(epochs=1, max_batches_per_epoch=2, num_threads=1),
        eval=dict(ks=[1, 2], every_epoch=False, nmi=False, **eval_),
        seed=seed,
        partition=partition,
    ))


def classes(ds) -> set[int]:
    return set(np.unique(ds.labels).tolist())


def keys(ds) -> list[str]:
    return ds.keys(np.arange(len(ds)))


def test_partition_0_is_the_prepared_split(prepared):
    path = prepared / "prepared"
    trial = Trial(config(path))
    for got, split in ((trial.train_set, "train"), (trial.val_set, "val")):
        want = PreparedDataset(path, split)
        assert type(got) is PreparedDataset and got.splits == (split,)
        np.testing.assert_array_equal(got.labels, want.labels)
        assert keys(got) == keys(want)
        np.testing.assert_array_equal(got.gather_uint8(np.arange(len(got))), want.gather_uint8(np.arange(len(want))))
    train, val = partition_splits(path, 0)
    assert keys(train) == keys(trial.train_set) and keys(val) == keys(trial.val_set)


def test_other_partitions_are_other_class_disjoint_folds_of_train_and_val(prepared):
    path = prepared / "prepared"
    card_train, card_val = PreparedDataset(path, "train"), PreparedDataset(path, "val")
    pool_classes = classes(card_train) | classes(card_val)
    pool_keys = sorted(keys(card_train) + keys(card_val))
    folds = {0: (classes(card_train), classes(card_val))}
    for p in (1, 2, 3):
        train, val = partition_splits(path, p)
        assert isinstance(train, ClassSubset) and isinstance(val, ClassSubset)
        assert not classes(train) & classes(val)
        assert classes(train) | classes(val) == pool_classes
        assert len(classes(val)) == len(classes(card_val)) == 2
        assert sorted(keys(train) + keys(val)) == pool_keys  # every row once, none from eval
        folds[p] = (classes(train), classes(val))
    held = [frozenset(v) for _, v in folds.values()]
    assert len(set(held)) == len(held)  # partitions 0..3 hold out four different class pairs


def test_the_same_partition_gives_the_same_split(prepared):
    path = prepared / "prepared"
    a, b = partition_splits(path, 2), partition_splits(path, 2)
    for x, y in zip(a, b):
        assert keys(x) == keys(y)
        np.testing.assert_array_equal(x.labels, y.labels)
    # A pure function of the class ids: pinned, so no numpy or code change moves a fold silently.
    pool, val0 = np.arange(5), np.array([3, 4])
    assert held_out_classes(pool, val0, 0).tolist() == [3, 4]
    assert [held_out_classes(pool, val0, p).tolist() for p in (1, 2, 3)] == [[0, 4], [0, 1], [1, 2]]
    drawn = [tuple(held_out_classes(pool, val0, p).tolist()) for p in range(10)]
    assert len(set(drawn)) == 10  # C(5, 2) = 10: the first ten partitions are all the folds
    assert tuple(held_out_classes(pool, val0, 10).tolist()) in set(drawn)  # then repeats are allowed


def test_the_eval_split_is_the_same_in_every_partition(prepared):
    path = prepared / "prepared"
    evals = [Trial(config(path, partition=p)).eval_set for p in (0, 1, 2)]
    for ev in evals[1:]:
        assert type(ev) is PreparedDataset and ev.splits == ("eval",)
        assert keys(ev) == keys(evals[0])
        np.testing.assert_array_equal(ev.labels, evals[0].labels)
    tuning = Trial(config(path, partition=1, split=None))
    assert tuning.eval_set is None and isinstance(tuning.val_set, ClassSubset)


def test_a_class_subset_is_a_dataset_everything_accepts(prepared):
    train, _ = partition_splits(prepared / "prepared", 1)
    pool = train.base
    assert train.image_shape == pool.image_shape and train.card is pool.card and train.path == pool.path
    rows = np.array([0, 5, len(train) - 1])
    batch = train.get_batch(rows)
    assert batch.indices.tolist() == rows.tolist()  # subset row numbers, as a sampler gave them
    np.testing.assert_array_equal(batch.labels.numpy(), train.labels[rows])
    np.testing.assert_array_equal(batch.images.numpy(), pool.get_batch(train.rows[rows]).images.numpy())
    image, label = train[5]
    assert label == train.labels[5] and image.shape == batch.images[1].shape
    with pytest.raises(IndexError, match="out of range"):
        train.get_batch([len(train)])
    sampler = MPerClassSampler(train.labels, 8, m_per_class=4, seed=0)
    seen = [b for b in BatchLoader(train, sampler, augment="default", seed=0)]
    assert seen and all(set(b.labels.tolist()) <= classes(train) for b in seen)
    again = pickle.loads(pickle.dumps(train))  # what a DataLoader or Ray worker receives
    assert keys(again) == keys(train) and again.get_batch(rows).labels.tolist() == batch.labels.tolist()


def test_a_trial_runs_end_to_end_on_partition_1(prepared):
    path = prepared / "prepared"
    result = run_trial(config(path, partition=1))
    trial = Trial(config(path, partition=1))
    assert np.isfinite(result.history[-1]["train/loss"])
    row = result.history[-1]
    assert row["val/queries"] == len(trial.val_set) and np.isfinite(row["val/map@r"])  # scored on the fold's val classes
    assert result.metrics and set(np.unique(result.labels)) == classes(PreparedDataset(path, "eval"))
    assert classes(trial.train_set) != classes(PreparedDataset(path, "train"))


def test_the_trial_id_of_partition_0_is_the_id_it_had_before(prepared):
    # fp32 in NCHW memory: what every trial computed before train.precision existed.
    cfg = config(prepared / "prepared")
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"precision": "fp32", "channels_last": False})})
    before = cfg.model_dump(mode="json")
    before.pop("partition")  # what the config dumped before partitions existed
    before.pop("partition_scope")  # ... and before class draws
    del before["optimizer"]["warmup"]  # ... and before the warm-up schedule
    del before["train"]["precision"], before["train"]["channels_last"]  # ... and before precision
    assert trial_id(cfg) == hashlib.sha1(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]
    other = config(prepared / "prepared", partition=1)
    assert trial_id(other) != trial_id(cfg)
    assert trial_id(config(prepared / "prepared", partition=2)) not in (trial_id(cfg), trial_id(other))
    assert trial_name(cfg) == "triplet-batch_semihard-seed0"
    assert trial_name(other) == "triplet-batch_semihard-seed0-p1"


def test_a_negative_partition_fails_validation_naming_it(prepared):
    with pytest.raises(ValidationError, match="partition"):
        config(prepared / "prepared", partition=-1)
    with pytest.raises(ValueError, match="partition"):
        held_out_classes([0, 1, 2], [2], -1)


def test_a_dataset_without_a_val_split_has_only_partition_0(prepared):
    path = prepared / "no_val"
    assert Trial(config(path, val_split=None)).train_set.splits == ("train",)
    with pytest.raises(ValueError, match=rf"{path}.*no 'val' split.*partition 3"):
        Trial(config(path, partition=3))
    with pytest.raises(ValueError, match="eval.val_split must be 'val' or null"):
        Trial(config(prepared / "prepared", partition=1, val_split="eval"))


# -- class draws over the whole population (issue 25) -----------------------------------------------
def test_a_class_draw_deals_disjoint_train_val_and_eval_classes_the_same_every_time():
    from dml_core.data.subset import drawn_classes

    train, val, ev = list(range(0, 20)), list(range(20, 25)), list(range(25, 37))
    assert [p.tolist() for p in drawn_classes(train, val, ev, 0)] == [train, val, ev]
    seen = set()
    for draw in (1, 2, 3):
        t, v, e = drawn_classes(train, val, ev, draw)
        assert (len(t), len(v), len(e)) == (20, 5, 12)
        assert not (set(t) & set(v) or set(t) & set(e) or set(v) & set(e))
        assert set(t) | set(v) | set(e) == set(range(37))
        again = drawn_classes(list(reversed(train)), val, ev, draw)  # the order given does not matter
        assert all((a == b).all() for a, b in zip((t, v, e), again))
        seen.add(tuple(e.tolist()))
    assert len(seen) == 3 and tuple(ev) not in seen  # each draw evaluates on other classes
    with pytest.raises(ValueError, match="overlap"):
        drawn_classes([1, 2], [2], [3], 1)


def test_a_trial_of_a_class_draw_trains_validates_and_evaluates_on_its_own_classes(prepared):
    from dml_core.training.trial import open_splits

    fold = config(prepared / "prepared", partition=1)
    draw = fold.model_copy(update={"partition_scope": "all"})
    assert trial_id(fold) != trial_id(draw) and trial_id(config(prepared / "prepared", partition=1)) == trial_id(fold)
    train, val, ev = (classes(s) for s in open_splits(draw))
    assert not (train & val or train & ev or val & ev) and train | val | ev == set(range(10))
    assert (len(train), len(val), len(ev)) == (3, 2, 5)
    assert [classes(s) for s in open_splits(draw)] == [train, val, ev]  # the same every time
    draws = {tuple(sorted(classes(open_splits(draw.model_copy(update={"partition": p}))[2]))) for p in (1, 2, 3)}
    assert len(draws) > 1  # replicates evaluate on other classes
    result = run_trial(draw)
    assert set(np.unique(result.labels).tolist()) == ev and np.isfinite(result.metrics["map@r"])
    tuning = draw.model_copy(update={"eval": draw.eval.model_copy(update={"split": None})})
    assert open_splits(tuning)[2] is None  # a trial without an eval split never opens the evaluation classes
