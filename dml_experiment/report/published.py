"""C5's published numbers (Song, Jegelka, Rathod, Murphy, "Deep Metric Learning via Facility
Location", CVPR 2017) and whether our ranking of the four losses agrees with theirs.

Their setting: 64-dimensional embeddings on an ImageNet-pretrained backbone, the first half
of the classes for training and the second half (unseen) for evaluation; NMI and
Recall@1/2/4/8 in %. These are THEIR numbers, copied as quoted in issue 10, never ours: the
report prints them under a "published, not ours" heading and only compares rankings, since
our data (Fashion-MNIST, a small CNN, a few epochs) is not theirs.
"""
from __future__ import annotations

import math

from scipy import stats

from .labels import label

SOURCE = (
    "Song, Jegelka, Rathod, Murphy. Deep Metric Learning via Facility Location. CVPR 2017 "
    "(64-d embedding, first half of the classes for training, second half for evaluation)"
)
LOSSES = ("triplet semi-hard", "lifted structured", "N-pair", "facility location")
METRICS = ("nmi", "recall@1", "recall@2", "recall@4", "recall@8")

_ROWS = {
    "CUB-200-2011": {
        "triplet semi-hard": (55.38, 42.59, 55.03, 66.44, 77.23),
        "lifted structured": (56.50, 43.57, 56.55, 68.59, 79.63),
        "N-pair": (57.24, 45.37, 58.41, 69.51, 79.49),
        "facility location": (59.23, 48.18, 61.44, 71.83, 81.92),
    },
    "Cars196": {
        "triplet semi-hard": (53.35, 51.54, 63.78, 73.52, 82.41),
        "lifted structured": (56.88, 52.98, 65.70, 76.01, 84.27),
        "N-pair": (57.79, 53.90, 66.76, 77.75, 86.35),
        "facility location": (59.04, 58.11, 70.64, 80.27, 87.81),
    },
}
# The prepared source (a dataset card's `source`) each published table was measured on.
PUBLISHED_SOURCES = {"cub200": "CUB-200-2011", "cars196": "Cars196"}
# {dataset: {loss: {metric: value in %}}}
PUBLISHED = {ds: {loss: dict(zip(METRICS, vals)) for loss, vals in rows.items()} for ds, rows in _ROWS.items()}


def published_loss(method: str) -> str | None:
    """The published loss a method name of ours stands for (by its name), or None."""
    m = method.lower()
    if "facility" in m:
        return "facility location"
    if "npair" in m or "n_pair" in m or "n-pair" in m:
        return "N-pair"
    if "lifted" in m:
        return "lifted structured"
    if "triplet" in m:
        return "triplet semi-hard"
    return None


def published_table(datasets=None) -> str:
    """Markdown: the published numbers, clearly labelled as not ours."""
    datasets = list(datasets or PUBLISHED)
    lines = [
        f"**Published, not ours** — {SOURCE}. Values in %, copied from the paper; not reproduced here.",
        "",
        "| dataset | loss | " + " | ".join(label(m) for m in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for ds in datasets:
        for loss in LOSSES:
            row = PUBLISHED[ds][loss]
            lines.append(f"| {ds} | {loss} | " + " | ".join(f"{row[m]:.2f}" for m in METRICS) + " |")
    return "\n".join(lines)


def ranking(values: dict[str, float]) -> list[str]:
    """Names from best to worst (higher is better); NaN last."""
    return sorted(values, key=lambda k: (math.isnan(values[k]), -values[k] if not math.isnan(values[k]) else 0.0))


def ranking_agreement(ours: dict[str, float], metric: str, dataset: str = "CUB-200-2011") -> dict:
    """Does our ranking of the four losses on `metric` agree with the published one?

    `ours`: {method name: our value (e.g. the mean over seeds)}; each method is mapped to its
    published loss by name (``published_loss``). Returns {metric, dataset, ours (best first,
    as published loss names), published (best first), tau (Kendall's tau-b between our values
    and the published ones over the shared losses), agrees (the same strict order), n, text}.
    """
    if dataset not in PUBLISHED:
        raise ValueError(f"unknown published dataset {dataset!r}; known: {', '.join(PUBLISHED)}")
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not in the published table ({', '.join(METRICS)})")
    mapped = {}
    for method, value in ours.items():
        loss = published_loss(method)
        if loss is not None and value is not None and not math.isnan(value):
            mapped[loss] = float(value)
    losses = [loss for loss in LOSSES if loss in mapped]
    pub = {loss: PUBLISHED[dataset][loss][metric] for loss in losses}
    our_order, pub_order = ranking({k: mapped[k] for k in losses}), ranking(pub)
    tau = math.nan
    if len(losses) >= 2:
        res = stats.kendalltau([mapped[k] for k in losses], [pub[k] for k in losses])
        tau = float(res.statistic)
    agrees = len(losses) >= 2 and our_order == pub_order and len(set(mapped[k] for k in losses)) == len(losses)
    name = label(metric)
    if len(losses) < 2:
        text = f"{name}: fewer than two of the four losses have a result; no ranking to compare."
    else:
        word = "agrees with" if agrees else "differs from"
        text = (
            f"{name}: our ranking ({' > '.join(our_order)}) {word} the published {dataset} ranking "
            f"({' > '.join(pub_order)}); Kendall tau = {tau:.2f}."
        )
        if len(losses) < len(LOSSES):
            text += f" Only {len(losses)} of the 4 losses have a result."
    return {"metric": metric, "dataset": dataset, "ours": our_order, "published": pub_order,
            "tau": tau, "agrees": bool(agrees), "n": len(losses), "text": text}
