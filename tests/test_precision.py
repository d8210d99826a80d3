"""Mixed precision and channels-last in a trial: validation, the machine's default, identity,
float32 embeddings at the miner and the loss, training and evaluation in bf16."""
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from dml_core.training import TrialConfig, run_trial
from dml_core.training import precision as precision_mod
from dml_core.training.embed import embed
from dml_core.training.identity import trial_id
from dml_core.training.layout import convolutional, use_channels_last
from dml_core.training.precision import autocast, cpu_bf16_flags, default_precision, resolve_precision
from dml_core.training.trial import Trial

CUDA = torch.cuda.is_available()
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def config(tiny_trial):
    """config(dataset, **train) -> the tiny trial, two epochs long, with these train settings."""
    return lambda dataset, **train: TrialConfig.model_validate(tiny_trial(dataset, train=dict(epochs=2, **train)))


# -- validation ------------------------------------------------------------------------------------
def test_fp16_on_a_cpu_is_refused_naming_the_key(config):
    with pytest.raises(ValueError, match=r"train\.precision[\s\S]*fp16 needs a CUDA device"):
        config("d", precision="fp16")
    config("d", precision="fp16", device="cuda")  # validation needs no GPU: the device is named
    config("d", precision="bf16")


def test_bad_precision_and_channels_last_fail_validation_naming_the_key():
    from dml_experiment.profile import load_profile

    for override, key in (("train.precision=fp16", "train.precision"), ("train.precision=fp8", "train.precision"),
                          ("train.channels_last=maybe", "train.channels_last")):
        with pytest.raises(ValueError, match=rf"profiles\.quick\.{key}: "):
            load_profile(PARAMS, "quick", [override])
    with pytest.raises(ValueError, match="train.channels_last: true, but model 'mlp' is not convolutional"):
        TrialConfig.model_validate(dict(dataset="d", loss=dict(name="triplet"), model=dict(name="mlp"), train=dict(channels_last=True)))


# -- the machine's default ---------------------------------------------------------------------------
def test_cpu_bf16_flags_come_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\nflags\t: fpu avx512_bf16\n")
    assert cpu_bf16_flags(str(info)) == ("avx512_bf16",)
    info.write_text("flags\t\t: fpu sse avx2 amx_bf16 amx_tile\n")
    assert cpu_bf16_flags(str(info)) == ("amx_bf16",)
    info.write_text("flags\t\t: fpu sse avx2\n")
    assert cpu_bf16_flags(str(info)) == ()
    assert cpu_bf16_flags(str(tmp_path / "absent")) == ()


@pytest.mark.parametrize("flags, want", [(("amx_bf16",), "bf16"), (("avx512_bf16",), "bf16"), ((), "fp32")])
def test_auto_is_bf16_on_a_cpu_with_bf16_arithmetic_else_fp32(monkeypatch, flags, want, config):
    monkeypatch.setattr(precision_mod, "cpu_bf16_flags", lambda: flags)
    default_precision.cache_clear()
    try:
        assert default_precision("cpu") == want
        cfg = config("d")
        assert cfg.train.precision == "auto" and resolve_precision(cfg).train.precision == want
    finally:
        default_precision.cache_clear()


def test_a_concrete_precision_is_left_as_it_is(config):
    cfg = config("d", precision="fp32")
    assert resolve_precision(cfg) is cfg
    assert default_precision("cuda") in ("bf16", "fp32")  # never fp16, GPU or not


# -- identity ------------------------------------------------------------------------------------------
def test_the_trial_id_changes_with_the_precision(config):
    ids = {p: trial_id(config("d", precision=p)) for p in ("fp32", "bf16")}
    ids["fp16"] = trial_id(config("d", precision="fp16", device="cuda"))
    assert len(set(ids.values())) == 3
    # `auto` is hashed as what it means here, the same as the resolved config.
    assert trial_id(config("d")) == ids[default_precision("cpu")]
    # A null channels_last is the backbone's default: the same trial as saying it.
    assert trial_id(config("d", precision="bf16", channels_last=True)) == ids["bf16"]
    assert trial_id(config("d", precision="bf16", channels_last=False)) != ids["bf16"]


def test_fp32_without_channels_last_keeps_the_id_trials_had_before_precision_existed(config):
    cfg = config("d", precision="fp32", channels_last=False)
    before = cfg.model_dump(mode="json")
    before.pop("partition"), before.pop("partition_scope")
    del before["train"]["precision"], before["train"]["channels_last"], before["optimizer"]["warmup"]
    assert trial_id(cfg) == hashlib.sha1(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]


def test_the_profile_expands_concrete_precisions_and_logs_the_choice_once(caplog, monkeypatch):
    from dml_experiment import profile as profile_mod

    monkeypatch.setattr(profile_mod, "_logged_precisions", set())
    with caplog.at_level(logging.INFO, logger="dml_experiment.profile"):
        _, prof = profile_mod.load_profile(PARAMS, "quick")
        trials = prof.trials()
    assert {t.train.precision for _, t in trials} == {default_precision("cpu")}
    assert sum("train.precision auto ->" in r.message for r in caplog.records) == 1
    _, forced = profile_mod.load_profile(PARAMS, "quick", ["train.precision=fp32"])
    assert {t.train.precision for t in forced.method_trials("triplet_batch_semihard")} == {"fp32"}


def test_the_precision_is_an_mlflow_param_of_the_trial(config):
    tracking = pytest.importorskip("flows.tracking")
    params = tracking.params_of(resolve_precision(config("d", precision="bf16")).model_dump(mode="json"))
    assert params["train.precision"] == "bf16" and params["train.channels_last"] == "null"


# -- channels-last ---------------------------------------------------------------------------------------
def test_channels_last_is_on_for_convolutional_backbones_only(config):
    assert convolutional("small_cnn") and convolutional("resnet") and not convolutional("mlp")
    assert use_channels_last(config("d")) and not use_channels_last(config("d", channels_last=False))
    mlp = TrialConfig.model_validate(dict(dataset="d", loss=dict(name="triplet"), model=dict(name="mlp")))
    assert not use_channels_last(mlp)


# -- a bf16 trial ------------------------------------------------------------------------------------------
class Spy(torch.nn.Module):
    """Wraps a loss or a miner and records the dtype of the embeddings it is given."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.dtypes = inner, []

    def forward(self, emb, labels, *rest):
        self.dtypes.append(emb.dtype)
        return self.inner(emb, labels, *rest)


def test_the_miner_and_the_loss_see_float32_while_the_network_runs_in_bf16(tiny_dataset, config):
    trial = Trial(config(tiny_dataset, precision="bf16"))
    trial.loss, trial.miner = Spy(trial.loss), Spy(trial.miner)
    seen = {}
    trial.model.head.register_forward_hook(lambda m, i, out: seen.setdefault("head", out.dtype) and None)
    first_conv = trial.model.backbone.features[0][0]

    def layout(module, inputs):
        seen.setdefault("input_nhwc", inputs[0].is_contiguous(memory_format=torch.channels_last))

    first_conv.register_forward_pre_hook(layout)
    row = trial.train_epoch(0)
    assert seen == {"head": torch.bfloat16, "input_nhwc": True}
    assert trial.loss.dtypes == trial.miner.dtypes == [torch.float32] * row["train/steps"]
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_bf16_trial_trains_and_evaluates(tiny_dataset, config):
    result = run_trial(config(tiny_dataset, precision="bf16"))
    assert result.config.train.precision == "bf16"
    assert result.embeddings.dtype == np.float32 and np.isfinite(result.embeddings).all()
    assert np.isfinite(result.history[-1]["train/loss"]) and 0 <= result.metrics["map@r"] <= 1
    np.testing.assert_allclose(np.linalg.norm(result.embeddings, axis=1), 1.0, atol=1e-5)  # normalised in float32


def test_embedding_in_bf16_returns_float32_close_to_fp32(tiny_dataset, config):
    trial = Trial(config(tiny_dataset, precision="fp32", channels_last=False))
    rows = np.arange(40)
    ref = embed(trial.model, trial.train_set, rows, batch_size=16)
    for precision, nhwc in (("bf16", False), ("bf16", True), ("fp32", True)):
        model = trial.model.to(memory_format=torch.channels_last) if nhwc else trial.model
        got = embed(model, trial.train_set, rows, batch_size=16, precision=precision, channels_last=nhwc)
        assert got.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=0.05 if precision == "bf16" else 1e-5)


def test_fp32_autocast_is_no_context_at_all():
    x = torch.randn(3, 4)
    with autocast("cpu", "fp32"):
        assert (x @ x.T).dtype == torch.float32
    with autocast("cpu", "bf16"):
        assert (x @ x.T).dtype == torch.bfloat16


@pytest.mark.skipif(not CUDA, reason="fp16 with a GradScaler needs CUDA")
def test_an_fp16_trial_trains_on_cuda_with_a_loss_scaler(tiny_dataset, config):
    trial = Trial(config(tiny_dataset, precision="fp16", device="cuda", grad_clip=1.0))
    assert trial.scaler.is_enabled()
    trial.loss = Spy(trial.loss)
    row = trial.train_epoch(0)
    assert np.isfinite(row["train/loss"]) and trial.loss.dtypes == [torch.float32] * row["train/steps"]
    assert trial.state(0)["scaler"]["scale"] > 0  # the loss scale travels in the checkpoint
    metrics, emb = trial.score(trial.eval_set)
    assert emb.dtype == np.float32 and np.isfinite(emb).all() and 0 <= metrics["map@r"] <= 1


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_a_bf16_trial_trains_and_evaluates_on_cuda(tiny_dataset, config):
    result = run_trial(config(tiny_dataset, precision="bf16", device="cuda"))
    assert result.embeddings.dtype == np.float32 and np.isfinite(result.embeddings).all()
