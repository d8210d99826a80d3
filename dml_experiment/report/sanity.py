"""The sanity gate: a claim is judged only where its methods beat raw pixels and the untrained network.

Two references are scored for each comparison, on its dataset, its evaluation items and with
its evaluation code (``Trial.score``: class retrieval metrics, or the continuous-label ones
for C7):

- ``raw_pixels``: the pixels the models see, flattened, Euclidean distance (one value);
- ``untrained``: the comparison's architecture at the random initialisation of each seed,
  which is exactly the network every trial of that seed starts from (one value per seed).

A learned method that does not beat both has not learned a metric worth comparing, so a
claim between two such methods says nothing about the losses: Musgrave, Belongie and Lim
("A Metric Learning Reality Check", ECCV 2020, sec. 3) show how much of a reported gap the
setup alone can make. Such a claim's verdict is "not testable here", with the numbers. A
claim against a fixed raw-pixel baseline (C9) is gated on the untrained network only: the
raw-pixel comparison is then the claim itself.

The gate runs on the raw numbers, between the two passes of ``verdict.judge_family``: a
claim it stops is left out of the sweep's Holm family, so it neither counts towards the
correction of the others nor gets a verdict of its own.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..record import TrialRecord
from .verdict import NOT_TESTABLE, ClaimVerdict

RAW, UNTRAINED = "raw_pixels", "untrained"
REFERENCES = {RAW: "raw pixels (Euclidean)", UNTRAINED: "untrained network (random init)"}


def reference_config(config):
    """The trial config the references are scored with: Euclidean ranking, no training."""
    return config.model_copy(update={"eval": config.eval.model_copy(update={"distance": "euclidean"})}, deep=True)


def raw_from_baselines(config, baselines: list[dict] | None) -> dict | None:
    """The raw-pixel reference's metrics when C9's ``raw_euclidean`` baseline already holds
    them, else None. They are the same numbers: the same pixels (float32, flattened) of the
    same eval rows, Euclidean, through the same ``evaluate`` with NMI seed 0. So only for
    class labels, the same dataset directory, split, eval.max_items, ks and nmi."""
    ev = config.eval
    if config.labels != "class":
        return None
    for r in baselines or []:
        cfg = r.get("config") or {}
        want = {"ks": list(ev.ks), "max_items": ev.max_items, "split": ev.split, "nmi": ev.nmi}
        if (r.get("method") == "raw_euclidean" and r.get("status") == "finished" and cfg.get("distance") == "euclidean"
                and cfg.get("eval") == want and Path(str(cfg.get("dataset"))).resolve() == Path(config.dataset).resolve()):
            return dict(r["metrics"])
    return None


def reference_records(config, seeds: list[int], raw: dict | None = None) -> list[dict]:
    """results.json-shaped records of the two references for a comparison's first method.

    ``config`` is that method's TrialConfig (dataset path resolved). The untrained network of
    seed s is the one a trial of seed s starts from (``untrained_network``). Only the network
    is built (no loss, miner, optimizer or loader); the eval items are read once and scored by
    ``score_model``, as a trial scores them. ``raw``: the raw-pixel metrics when already
    computed (``raw_from_baselines``), used as they are.
    """
    import torch

    from dml_core.training import open_splits, score_model, scored_rows
    from dml_core.training.trial import continuous_label

    config = reference_config(config)
    train_set, _, eval_set = open_splits(config)
    meaning = None
    if config.labels != "class":  # mapped by the training split's card, as a trial maps it
        meaning = continuous_label(train_set, f"labels: {config.labels}, but {config.dataset!r} has no continuous labels")
    rows = scored_rows(eval_set, config)
    out = []
    for seed in seeds:
        model = untrained_network(config, seed, train_set.image_shape)
        metrics, _ = score_model(model, eval_set, config, rows=rows, label_meaning=meaning)
        out.append(_record(UNTRAINED, seed, metrics, config))
    if seeds:
        if raw is None:  # the pixels as the models see them
            raw, _ = score_model(torch.nn.Flatten(), eval_set, config, rows=rows, label_meaning=meaning)
        out.append(_record(RAW, None, raw, config))
    return out


def untrained_network(config, seed: int, image_shape):
    """The network a trial of `seed` starts from: torch.manual_seed(seed), then the embedder
    is the first draw from torch's generator, as in ``Trial``."""
    import torch

    from dml_core.training import build_model

    torch.manual_seed(seed)
    return build_model(config, image_shape)


def _record(method: str, seed, metrics: dict, config) -> dict:
    return TrialRecord.fixed(
        method, metrics, seed=seed,
        config={"dataset": config.dataset, "reference": REFERENCES[method], "labels": config.labels,
                "eval": config.eval.model_dump(mode="json")},
    ).row()


def reference_values(records: list[dict], metric: str) -> dict[str, float]:
    """{reference: mean of `metric`} over its finished records (NaN-free)."""
    out = {}
    for name in REFERENCES:
        vals = [float(r["metrics"][metric]) for r in records
                if r.get("method") == name and r.get("status") == "finished" and (r.get("metrics") or {}).get(metric) is not None]
        vals = [v for v in vals if math.isfinite(v)]
        if vals:
            out[name] = float(np.mean(vals))
    return out


def gate(verdict: ClaimVerdict, references: dict[str, float], fixed: set[str] = frozenset()) -> ClaimVerdict:
    """The verdict, or "not testable here" when a learned arm does not beat every reference.

    ``fixed`` names the deterministic baselines (C9's raw_*): an arm that is one is not gated,
    and a claim against one is gated on the untrained network only.
    """
    if not references or verdict.reason.startswith("no finished run"):
        return verdict
    against_fixed = verdict.a in fixed or verdict.b in fixed
    failing = []
    for arm, mean in ((verdict.a, verdict.mean_a), (verdict.b, verdict.mean_b)):
        if arm in fixed:
            continue
        for ref, value in references.items():
            if against_fixed and ref == RAW:
                continue
            if not (mean > value):
                failing.append(f"{arm} {mean * 100:.1f} does not beat the {REFERENCES[ref]} {value * 100:.1f}")
    if not failing:
        return verdict
    reason = f"sanity gate on {verdict.metric} (×100): " + "; ".join(failing)
    return replace(verdict, verdict=NOT_TESTABLE, reason=reason)
