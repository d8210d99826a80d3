"""The trial as a plain function: determinism, resume, failure, distributed global batch."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dml_core import build_loss, build_miner
from dml_core.training import TrialConfig, TrialError, run_trial
from dml_core.training.distributed import global_batch, loss_scale
from dml_core.training.trial import Trial


def test_trial_is_deterministic_for_a_seed(tiny_dataset, tiny_trial):
    a, b = run_trial(tiny_trial(tiny_dataset)), run_trial(tiny_trial(tiny_dataset))
    assert a.history == b.history
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    assert set(a.metrics) >= {"recall@1", "recall@2", "map@r", "r_precision", "nmi", "precision@1"}
    assert len(a.history) == 3 and all("val/recall@1" in row for row in a.history)
    assert "eval/recall@1" in a.history[-1] and "eval/recall@1" not in a.history[0]
    assert a.embeddings.shape == (len(a.labels), 8)
    c = run_trial(tiny_trial(tiny_dataset, seed=4))
    assert c.history != a.history


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tiny_dataset, tiny_trial):
    full = run_trial(tiny_trial(tiny_dataset, miner=dict(name="random")))
    saved = {}
    first = Trial(TrialConfig.model_validate(tiny_trial(tiny_dataset, miner=dict(name="random"))))
    first.config.train.epochs = 3

    def keep(row, trial, epoch):
        if epoch == 0:
            saved["state"] = trial.state(epoch)

    first.run(on_epoch=keep)
    resumed = run_trial(tiny_trial(tiny_dataset, miner=dict(name="random")), resume=saved["state"])
    assert resumed.history == full.history
    np.testing.assert_array_equal(resumed.embeddings, full.embeddings)


def test_divergence_is_a_trial_error(tiny_dataset, tiny_trial):
    with pytest.raises(TrialError, match="NaN or inf"):
        run_trial(tiny_trial(tiny_dataset, optimizer=dict(name="sgd", lr=1e30, momentum=0.0), loss=dict(name="contrastive", options={})))


def test_bad_config_names_the_key(tiny_dataset, tiny_trial):
    with pytest.raises(ValueError, match="unknown option 'margn' for loss 'triplet'"):
        TrialConfig.model_validate(tiny_trial(tiny_dataset, loss=dict(name="triplet", options=dict(margn=1))))
    with pytest.raises(ValueError, match="unknown miner name 'semi'"):
        TrialConfig.model_validate(tiny_trial(tiny_dataset, miner=dict(name="semi")))
    with pytest.raises(ValueError, match="epochs"):
        TrialConfig.model_validate(tiny_trial(tiny_dataset, train=dict(epochs=0)))
    with pytest.raises(ValueError, match="optimiser|Extra inputs"):
        TrialConfig.model_validate({**tiny_trial(tiny_dataset), "optimiser": {}})
    with pytest.raises(ValueError, match="not a prepared dataset"):
        run_trial(tiny_trial("/nonexistent/dir"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, emb, labels, loss_name, miner_name, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.eye(emb.shape[1], dtype=torch.float64))
    local = emb.chunk(world)[rank] @ weight
    g_emb, g_lab = global_batch(local, labels.chunk(world)[rank])
    miner = build_miner(miner_name) if miner_name else None
    loss = build_loss(loss_name)(g_emb, g_lab, miner(g_emb, g_lab) if miner else None)
    (loss * loss_scale()).backward()
    dist.all_reduce(weight.grad)  # DDP averages: sum here, divide by world below
    out[rank] = (loss.item(), (weight.grad / world).numpy().copy())
    dist.destroy_process_group()


@pytest.mark.parametrize("loss_name,miner_name", [("triplet", "batch_semihard"), ("contrastive", None), ("triplet", None)])
def test_two_gloo_workers_equal_one_process_on_the_global_batch(loss_name, miner_name):
    rng = np.random.default_rng(0)
    emb = torch.tensor(rng.normal(size=(16, 5)))
    labels = torch.tensor(rng.integers(0, 3, 16))
    weight = torch.nn.Parameter(torch.eye(5, dtype=torch.float64))
    e = emb @ weight
    miner = build_miner(miner_name) if miner_name else None
    ref = build_loss(loss_name)(e, labels, miner(e, labels) if miner else None)
    ref.backward()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(2, free_port(), emb, labels, loss_name, miner_name, out), nprocs=2, join=True)
        results = dict(out)
    for rank in (0, 1):
        loss, grad = results[rank]
        assert loss == pytest.approx(ref.item(), abs=1e-5)
        np.testing.assert_allclose(grad, weight.grad.numpy(), atol=1e-5)


def test_warmup_cosine_steps_per_optimizer_step_and_resumes_exactly(tiny_dataset, tiny_trial):
    over = dict(optimizer=dict(lr=0.01, schedule="warmup_cosine", warmup=0.2), miner=dict(name="random"))
    full = run_trial(tiny_trial(tiny_dataset, **over))
    lrs = [row["train/lr"] for row in full.history]
    # 3 epochs x 2 steps, 2 of warm-up: after epoch e the factor of step s = 2(e + 1) is
    # 0.5 (1 + cos(pi (s - 2) / 4)), reaching 0 after the last step.
    assert lrs[:2] == pytest.approx([0.01 * 0.5 * (1 + np.cos(np.pi * (s - 2) / 4)) for s in (2, 4)])
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    states = {}
    run_trial(tiny_trial(tiny_dataset, **over), on_epoch=lambda row, t, e: states.setdefault(e, t.state(e)))
    resumed = run_trial(tiny_trial(tiny_dataset, **over), resume=states[0])
    assert resumed.history == full.history


def test_a_cap_above_one_pass_of_the_sampler_is_named_in_a_warning(tiny_trial, tiny_dataset, caplog):
    from dml_core.training import TrialConfig
    from dml_core.training.trial import Trial

    trial = Trial(TrialConfig.model_validate(tiny_trial(tiny_dataset, train={"epochs": 1, "max_batches_per_epoch": 10_000})))
    assert trial.steps_per_epoch == len(trial.sampler) < 10_000
    assert "train.max_batches_per_epoch=10000 exceeds" in caplog.text
