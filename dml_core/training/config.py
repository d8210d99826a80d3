"""The configuration of one trial, validated (pydantic) before any work starts.

Unknown keys and options are errors that name the key: a typo in params.yaml must fail in
validation, not silently train the default.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..distances import DISTANCES
from ..losses import LOSSES
from ..miners import MINERS
from ..models import BACKBONES


class Strict(BaseModel):
    """The base of every config and record: an unknown key is an error naming it."""

    model_config = ConfigDict(extra="forbid")


def accepted_options(registry, name: str) -> set[str]:
    return set(registry.options(name))


class ComponentConfig(Strict):
    """A registry name and its options, e.g. {name: triplet, options: {margin: 0.2}}."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(Strict):
    name: str = "small_cnn"
    embedding_dim: int = Field(64, ge=1)
    normalize: bool = True
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def known(self) -> "ModelConfig":
        BACKBONES.get(self.name)
        unknown = sorted(set(self.options) - accepted_options(BACKBONES, self.name))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} for model {self.name!r}")
        return self


class SamplerConfig(Strict):
    """Batches of C classes x m samples (Song et al. 2017); `continuous` for regression labels
    (Kim et al. 2019's dense triplet sampling)."""

    kind: Literal["m_per_class", "continuous"] = "m_per_class"
    batch_size: int = Field(128, ge=2)
    m_per_class: int | None = Field(None, ge=1)
    classes_per_batch: int | None = Field(None, ge=1)
    class_ratio: float | None = Field(None, gt=0, le=1)
    replace: bool = False
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def one_composition(self) -> "SamplerConfig":
        given = [k for k in ("m_per_class", "classes_per_batch", "class_ratio") if getattr(self, k) is not None]
        if self.kind == "m_per_class" and len(given) > 1:
            raise ValueError(f"give at most one of m_per_class, classes_per_batch, class_ratio (got {given})")
        if self.kind == "m_per_class" and not given:
            self.m_per_class = 4 if self.batch_size % 4 == 0 else 2
        return self


class OptimizerConfig(Strict):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    # warmup_cosine: per step, linear warm-up over `warmup` of the run's steps, then cosine
    # decay to 0 at its last step (dml_core.training.schedule); the others step per epoch.
    schedule: Literal["constant", "cosine", "step", "warmup_cosine"] = "constant"
    warmup: float = Field(0.0, ge=0, lt=1)
    step_size: int = Field(1, ge=1)
    gamma: float = Field(0.5, gt=0, le=1)


class TrainConfig(Strict):
    epochs: int = Field(2, ge=1)
    max_batches_per_epoch: int | None = Field(None, ge=1)
    device: str = "cpu"
    num_threads: int | None = Field(None, ge=1)
    augment: bool = True
    embed_batch_size: int = Field(512, ge=1)
    grad_clip: float | None = Field(None, gt=0)
    # The forward pass's arithmetic (dml_core.training.precision): `auto` is this machine's
    # default (bf16 where the hardware has it, else fp32), made concrete before the trial id
    # is computed. fp16 needs CUDA (loss scaling is only worth it there).
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "auto"
    # Channels-last memory for the network and its 4-D batches; None: on for convolutional
    # backbones (dml_core.training.layout).
    channels_last: bool | None = None

    @field_validator("precision")
    @classmethod
    def precision_fits_device(cls, precision: str, info: ValidationInfo) -> str:
        # A field validator (device is validated before it), so the error's path ends in
        # train.precision wherever the TrainConfig sits (a profile, a trial).
        device = info.data.get("device", "cpu")
        if precision == "fp16" and device.split(":", 1)[0] != "cuda":
            raise ValueError(f"fp16 needs a CUDA device (train.device is {device!r}); use bf16 or fp32 here")
        return precision


class EvalConfig(Strict):
    ks: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    distance: str | None = None  # None: the trial's distance (Euclidean ranking for D and D^2)
    split: str | None = "eval"  # None: never load the evaluation classes (a tuning trial)
    val_split: str | None = "val"
    max_items: int | None = Field(None, ge=2)  # a class-stratified subset keeps quick runs quick
    nmi: bool = True
    every_epoch: bool = True  # score the eval split after every epoch too (training curves)

    @field_validator("ks")
    @classmethod
    def positive_ks(cls, ks: list[int]) -> list[int]:
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be positive integers, got {ks}")
        return sorted(set(ks))


class TrialConfig(Strict):
    dataset: str  # a prepared dataset directory (card.json + shards)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: ComponentConfig
    miner: ComponentConfig | None = None
    distance: str | None = None  # given to the loss and the miner when they take one
    # class: class ids; continuous: the continuous label (the log-ratio loss, Kim et al. 2019);
    # binned: class ids made of the continuous label cut into label_bins equal bins, so the
    # class losses train on the same data.
    labels: Literal["class", "continuous", "binned"] = "class"
    label_bins: int = Field(12, ge=2)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    seed: int = 0
    # The class partition of the training half (Musgrave et al. 2020): 0 is the prepared
    # train / val split; p > 0 holds out as many of the pooled train + val classes as the
    # prepared val split has, by a seeded permutation (dml_core/data/subset.py). The eval
    # classes never move. A replicate is a (seed, partition) pair.
    partition: int = Field(0, ge=0)
    # What partition p > 0 re-deals: "training" folds the training classes into train / val
    # (the eval classes fixed); "all" draws train, val and eval classes from the whole class
    # population (dml_core/data/subset.py: drawn_classes), so replicates vary the eval classes too.
    partition_scope: Literal["training", "all"] = "training"

    @model_validator(mode="after")
    def components_exist(self) -> "TrialConfig":
        for kind, registry, comp in (("loss", LOSSES, self.loss), ("miner", MINERS, self.miner)):
            if comp is None:
                continue
            registry.get(comp.name)
            unknown = sorted(set(comp.options) - accepted_options(registry, comp.name))
            if unknown:
                raise ValueError(f"unknown option {unknown[0]!r} for {kind} {comp.name!r}")
        if self.distance is not None:
            DISTANCES.get(self.distance)
        if self.train.channels_last and not getattr(BACKBONES.get(self.model.name), "convolutional", False):
            raise ValueError(
                f"train.channels_last: true, but model {self.model.name!r} is not convolutional (channels-last "
                "applies to 4-D activations); leave it null or false"
            )
        return self

    def loss_options(self) -> dict[str, Any]:
        return self._with_distance(LOSSES, self.loss)

    def miner_options(self) -> dict[str, Any]:
        return self._with_distance(MINERS, self.miner) if self.miner else {}

    def _with_distance(self, registry, comp: ComponentConfig) -> dict[str, Any]:
        opts = dict(comp.options)
        if self.distance is not None and "distance" in accepted_options(registry, comp.name):
            opts.setdefault("distance", self.distance)
        return opts

    def eval_distance(self) -> str:
        if self.eval.distance:
            return self.eval.distance
        return "cosine" if self.distance == "cosine" else "euclidean"
