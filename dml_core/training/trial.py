"""One trial: config -> (model, per-epoch metrics, final embeddings of the eval split).

A plain function, callable in a test, in a Ray Tune trial or in each Ray Train worker. It
knows nothing of Ray: the caller may pass `on_epoch` (to report and checkpoint) and `resume`
(a state from such a checkpoint). With torch.distributed initialised, the batch sampler is
sharded by rank, mining sees the global batch, and the model is wrapped in DDP.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..data import BatchLoader, ContinuousLabel, PreparedDataset
from ..data.subset import drawn_splits, partition_splits
from ..losses import LOSSES, build_loss
from ..metrics import evaluate, evaluate_continuous
from ..miners import MINERS, build_miner
from ..models import build_embedder, input_options
from ..samplers import MPerClassSampler
from .config import TrialConfig
from .distributed import average_across_workers, global_batch, loss_scale, world
from .embed import embed, stratified_subset
from .layout import batch_to, use_channels_last
from .precision import autocast, grad_scaler, resolve_precision
from .allocator import keep_freed_memory
from .schedule import PER_STEP, build_optimizer, build_scheduler

log = logging.getLogger(__name__)


class TrialError(RuntimeError):
    """A trial that cannot go on (a NaN loss, an impossible batch): recorded, not retried."""


@dataclass
class TrialResult:
    config: TrialConfig
    model: torch.nn.Module
    history: list[dict[str, float]]
    metrics: dict[str, float]
    embeddings: np.ndarray
    labels: np.ndarray
    continuous_labels: np.ndarray | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def generators_of(*objs) -> dict[str, torch.Generator]:
    """The seeded generators that sampling miners and losses hold: part of the RNG state."""
    return {f"{i}": o.generator for i, o in enumerate(objs) if isinstance(getattr(o, "generator", None), torch.Generator)}


def derived_seed(seed: int, role: str) -> int:
    """A stable 63-bit seed for one component of a trial (role "loss", "miner"): the first
    8 bytes of sha256("seed:role"). Not Python's hash(), which varies between processes."""
    return int.from_bytes(hashlib.sha256(f"{int(seed)}:{role}".encode()).digest()[:8], "big") >> 1


def seeded_options(registry, name: str, opts: dict, seed: int, role: str) -> dict:
    """opts plus seed=derived_seed(seed, role) when the component takes a `seed` option and
    params.yaml does not give one. The config is left as it is, so the trial id does not move."""
    if "seed" in registry.options(name) and "seed" not in opts:
        return {**opts, "seed": derived_seed(seed, role)}
    return opts


def continuous_label(dataset, need: str) -> ContinuousLabel:
    """What the dataset's continuous label means, as its card says (an angle becomes unit
    vectors and bins equal arcs; a linear label passes through and bins by its range);
    TrialError `need` for a dataset without one."""
    meaning = dataset.continuous_meaning
    if meaning is None:
        raise TrialError(need)
    return meaning


def build_sampler(config: TrialConfig, dataset: PreparedDataset, rank: int, size: int):
    s = config.sampler
    if s.kind == "continuous":
        from ..samplers.continuous import ContinuousLabelSampler

        meaning = continuous_label(
            dataset, f"sampler.kind: continuous, but dataset {config.dataset!r} has no continuous labels"
        )
        return ContinuousLabelSampler(
            meaning.targets(dataset.continuous_labels).numpy(), batch_size=s.batch_size, seed=config.seed,
            num_replicas=size, rank=rank, **s.options,
        )
    labels = dataset.labels
    if config.labels == "binned":
        meaning = continuous_label(dataset, "labels: binned needs a dataset with continuous labels")
        labels = meaning.classes(dataset.continuous_labels, config.label_bins)
    return MPerClassSampler(
        labels, s.batch_size, m_per_class=s.m_per_class, classes_per_batch=s.classes_per_batch,
        class_ratio=s.class_ratio, seed=config.seed, num_replicas=size, rank=rank, replace=s.replace,
    )


def open_splits(cfg: TrialConfig):
    """(train, val or None, eval or None) of the trial's dataset and class partition. An
    eval.split of None (a tuning trial) never opens the evaluation classes."""
    path = Path(cfg.dataset)
    if not (path / "card.json").is_file():
        raise ValueError(f"dataset {str(path)!r} is not a prepared dataset (no card.json); run `dml prepare`")
    if cfg.partition == 0:  # the prepared split, as it always was
        return (PreparedDataset(path, "train"), PreparedDataset(path, cfg.eval.val_split) if cfg.eval.val_split else None,
                PreparedDataset(path, cfg.eval.split) if cfg.eval.split else None)
    if cfg.eval.val_split not in (None, "val"):
        raise ValueError(f"partition {cfg.partition} re-deals the 'train' and 'val' classes; eval.val_split must be "
                         f"'val' or null, got {cfg.eval.val_split!r}")
    want_val = cfg.eval.val_split is not None
    if cfg.partition_scope == "all":  # train, val and eval classes drawn from the whole population
        if cfg.eval.split not in (None, "eval"):
            raise ValueError(f"partition_scope 'all' re-deals the 'eval' classes; eval.split must be 'eval' or null, "
                             f"got {cfg.eval.split!r}")
        train, val, evaluation = drawn_splits(path, cfg.partition, val=want_val)
        return train, val, evaluation if cfg.eval.split else None
    # another class-disjoint train / val fold of the training classes (data/subset.py)
    train, val = partition_splits(path, cfg.partition, val=want_val)
    return train, val, PreparedDataset(path, cfg.eval.split) if cfg.eval.split else None


def build_model(cfg: TrialConfig, image_shape) -> torch.nn.Module:
    """The trial's embedder on its device, channels-last where the trial runs so. Its weights
    are drawn from torch's global generator: right after torch.manual_seed(cfg.seed) this is
    the network a trial of that seed starts from."""
    opts = input_options(cfg.model.name, cfg.model.options, image_shape)
    model = build_embedder(cfg.model.name, cfg.model.embedding_dim, cfg.model.normalize, **opts).to(cfg.train.device)
    if use_channels_last(cfg):
        model = model.to(memory_format=torch.channels_last)
    return model


def scored_rows(dataset, cfg: TrialConfig) -> np.ndarray:
    """The rows of `dataset` a trial is scored on: at most eval.max_items, the same share of
    every class. Seed 0, not the trial seed: every trial of a sweep is scored on the same items."""
    return stratified_subset(dataset.labels, cfg.eval.max_items, seed=0)


def score_model(model: torch.nn.Module, dataset, cfg: TrialConfig, *, rows: np.ndarray | None = None,
                label_meaning: ContinuousLabel | None = None) -> tuple[dict[str, float], np.ndarray]:
    """(metrics, float32 embeddings) of `model` on `rows` of `dataset` (default: `scored_rows`),
    embedded and scored as a trial of `cfg` does: its device, precision and layout, its
    distance and ks; class labels by `evaluate` (NMI seed 0), a continuous-label set by its
    continuous label through `label_meaning` (the training split's) with `evaluate_continuous`."""
    cfg = resolve_precision(cfg)
    rows = scored_rows(dataset, cfg) if rows is None else rows
    emb = embed(
        model, dataset, rows, batch_size=cfg.train.embed_batch_size, device=cfg.train.device,
        precision=cfg.train.precision, channels_last=use_channels_last(cfg),
    )
    if cfg.labels in ("continuous", "binned"):
        if label_meaning is None:
            raise ValueError(f"labels: {cfg.labels} are scored by their continuous label: label_meaning is required")
        # A continuous-label set is scored by its continuous label, whatever the method trained on.
        y = label_meaning.targets(dataset.continuous_labels[rows]).numpy()
        ks = [k for k in cfg.eval.ks if k < len(rows)]
        metrics = evaluate_continuous(emb, y, ks=ks, distance=cfg.eval_distance())
    else:
        metrics = evaluate(emb, dataset.labels[rows], ks=cfg.eval.ks, distance=cfg.eval_distance(), nmi=cfg.eval.nmi, seed=0)
    return metrics, emb


class Trial:
    """The state of one trial. `run()` trains from `start_epoch` to the end."""

    def __init__(self, config: TrialConfig, *, resume: dict | None = None):
        # A config that reached here with precision `auto` (a test, a direct call) gets this
        # machine's default, as the experiment's expansion would have given it.
        self.config = cfg = resolve_precision(config)
        self.rank, self.world_size = world()
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        keep_freed_memory()
        self.device = torch.device(cfg.train.device)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)

        self.train_set, self.val_set, self.eval_set = open_splits(cfg)
        self.model = build_model(cfg, self.train_set.image_shape)
        self.precision, self.channels_last = cfg.train.precision, use_channels_last(cfg)
        self.scaler = grad_scaler(self.device, self.precision)
        # Sampling losses and miners draw from a generator seeded from the trial seed.
        loss_opts = seeded_options(LOSSES, cfg.loss.name, cfg.loss_options(), cfg.seed, "loss")
        self.loss = build_loss(cfg.loss.name, **loss_opts).to(self.device)
        self.miner = None
        if cfg.miner:
            miner_opts = seeded_options(MINERS, cfg.miner.name, cfg.miner_options(), cfg.seed, "miner")
            self.miner = build_miner(cfg.miner.name, **miner_opts)
        self.net = self.model
        if self.world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)
        self.optimizer = build_optimizer(self.net.parameters(), cfg.optimizer)
        self.sampler = build_sampler(cfg, self.train_set, self.rank, self.world_size)
        if (cfg.train.max_batches_per_epoch or 0) > len(self.sampler):
            log.warning("train.max_batches_per_epoch=%d exceeds the %d batches of one pass of the sampler: "
                        "an epoch trains %d steps", cfg.train.max_batches_per_epoch, len(self.sampler), len(self.sampler))
        self.scheduler = build_scheduler(self.optimizer, cfg.optimizer, cfg.train.epochs, self.steps_per_epoch)
        self.loader = BatchLoader(self.train_set, self.sampler, augment="default" if cfg.train.augment else None, seed=cfg.seed)
        self.start_epoch, self.history = 0, []
        if resume is not None:
            self.load_state(resume)

    # -- checkpoint state ------------------------------------------------------------------
    def state(self, epoch: int) -> dict:
        """Everything needed to continue after `epoch` exactly as if never stopped. A deep
        copy: state_dict() returns live tensors that the next step would overwrite."""
        return copy.deepcopy({
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "generators": {k: g.get_state() for k, g in generators_of(self.miner, self.loss).items()},
            "scaler": self.scaler.state_dict(),  # fp16's loss scale; {} when disabled
            "history": list(self.history),
        })

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        for k, g in generators_of(self.miner, self.loss).items():
            g.set_state(state["generators"][k])
        if state.get("scaler"):  # absent from checkpoints written before precision existed
            self.scaler.load_state_dict(state["scaler"])
        self.history = list(state["history"])
        self.start_epoch = int(state["epoch"]) + 1

    # -- training ------------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        """The optimizer steps of one epoch: the sampler's batches, capped by max_batches_per_epoch."""
        cap = self.config.train.max_batches_per_epoch
        return min(len(self.sampler), cap) if cap else len(self.sampler)

    @cached_property
    def label_meaning(self) -> ContinuousLabel:
        """The continuous label's meaning, read once from the training set's card: every
        split is mapped alike (a linear label's bins are its training rows' range)."""
        need = f"labels: {self.config.labels}, but dataset {self.config.dataset!r} has no continuous labels"
        return continuous_label(self.train_set, need)

    def targets(self, batch) -> torch.Tensor:
        if self.config.labels == "binned":
            return torch.from_numpy(self.label_meaning.classes(batch.continuous_labels, self.config.label_bins)).to(self.device)
        if self.config.labels == "continuous":
            return self.label_meaning.targets(batch.continuous_labels).to(self.device)
        return batch.labels.to(self.device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The network's embeddings of a batch under the trial's precision and layout, cast to
        float32: the miner and the loss keep their float32 contracts whatever the network ran in."""
        with autocast(self.device, self.precision):
            emb = self.net(batch_to(images, self.device, self.channels_last))
        return emb.float()

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        self.loader.set_epoch(epoch)
        self.net.train()
        losses, mined, steps = [], [], 0
        for step, batch in enumerate(self.loader):
            if cfg.train.max_batches_per_epoch and step >= cfg.train.max_batches_per_epoch:
                break
            emb = self.forward(batch.images)
            if not bool(torch.isfinite(emb).all()):
                raise TrialError(f"the embeddings became NaN or inf at epoch {epoch}, step {step} (diverged: lower optimizer.lr?)")
            emb, labels = global_batch(emb, self.targets(batch))
            indices = self.miner(emb, labels) if self.miner is not None else None
            loss = self.loss(emb, labels, indices)
            if not bool(torch.isfinite(loss)):
                raise TrialError(f"the loss became {loss.item()} at epoch {epoch}, step {step}")
            self.optimizer.zero_grad(set_to_none=True)
            # The scaler is fp16's loss scaling; for fp32 and bf16 it is the plain backward and step.
            self.scaler.scale(loss * loss_scale()).backward()
            if cfg.train.grad_clip:
                self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.train.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if cfg.optimizer.schedule in PER_STEP:
                self.scheduler.step()
            losses.append(loss.item())
            if indices is not None:
                mined.append(len(indices[0]))
            steps += 1
        if steps == 0:
            raise TrialError(f"epoch {epoch} had no batch: the sampler yields none for batch_size={cfg.sampler.batch_size}")
        if cfg.optimizer.schedule not in PER_STEP:
            self.scheduler.step()
        out = {"epoch": epoch, "train/lr": self.optimizer.param_groups[0]["lr"], "train/loss": average_across_workers(float(np.mean(losses))), "train/steps": steps}
        if mined:
            out["train/mined_per_batch"] = float(np.mean(mined))
        return out

    # -- evaluation ------------------------------------------------------------------------------
    def split_rows(self, dataset: PreparedDataset) -> np.ndarray:
        return scored_rows(dataset, self.config)

    def score(self, dataset: PreparedDataset, rows: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
        meaning = self.label_meaning if self.config.labels in ("continuous", "binned") else None
        return score_model(self.model, dataset, self.config, rows=rows, label_meaning=meaning)

    def run(self, on_epoch: Callable[[dict, "Trial", int], None] | None = None) -> TrialResult:
        """Train the remaining epochs. `on_epoch(row, trial, epoch)` runs on every rank after
        each epoch; after the last one `trial.final` holds (metrics, eval embeddings)."""
        cfg = self.config
        started = time.perf_counter()
        last = cfg.train.epochs - 1
        self.final: tuple[dict, np.ndarray] | None = None
        for epoch in range(self.start_epoch, cfg.train.epochs):
            row = self.train_epoch(epoch)
            if self.rank == 0:
                if self.val_set is not None:
                    val, _ = self.score(self.val_set)
                    row.update({f"val/{k}": v for k, v in val.items()})
                if self.eval_set is not None and (cfg.eval.every_epoch or epoch == last):
                    ev, emb = self.score(self.eval_set)
                    row.update({f"eval/{k}": v for k, v in ev.items()})
                    if epoch == last:
                        self.final = (ev, emb)
            self.history.append(row)
            if on_epoch is not None:
                on_epoch(row, self, epoch)
        if self.rank == 0 and self.final is None and self.eval_set is not None:  # resumed after the last epoch
            self.final = self.score(self.eval_set)
        metrics, emb = self.final if self.final is not None else ({}, np.zeros((0, 0), np.float32))
        ev = self.eval_set
        rows = self.split_rows(ev) if ev is not None else np.zeros(0, np.int64)
        return TrialResult(
            config=cfg,
            model=self.model,
            history=self.history,
            metrics=metrics,
            embeddings=emb,
            labels=ev.labels[rows] if ev is not None else np.zeros(0, np.int64),
            continuous_labels=None if ev is None or ev.continuous_labels is None else ev.continuous_labels[rows],
            seconds=time.perf_counter() - started,
        )


def run_trial(config: TrialConfig | dict, *, on_epoch=None, resume: dict | None = None) -> TrialResult:
    """Validate the config, train, evaluate. The one entry point for tests, Tune and Train."""
    if not isinstance(config, TrialConfig):
        config = TrialConfig.model_validate(config)
    return Trial(config, resume=resume).run(on_epoch)
