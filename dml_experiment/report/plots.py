"""The report's figures (matplotlib, Agg; no pyplot state): one PNG per figure.

- ``recall_curves``: Recall@K (NDCG@K for C7) against K, mean over seeds with the 95%
  Student-t band, beside the per-seed values of the judged metric (seeds joined by a line,
  so the pairing the paired test uses is visible); fixed baselines dashed.
- ``training_curves``: train loss and the judged metric per epoch on the validation classes
  (and on the evaluation classes when evaluated every epoch), mean over seeds, per method.
- ``embedding_map``: a 2-D PCA of eval-class embeddings, coloured by class (or by angle).
- ``retrieval_grid``: queries and their top 5 neighbours as images; wrong matches outlined red.

Every function writes to a temporary name and renames, and returns the path.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .labels import label
from .summary import mean_interval



def _with_cjk_fallback() -> None:
    """Class names can be CJK characters (the glyphs set): after DejaVu Sans, fall back glyph
    by glyph (matplotlib >= 3.6) to a CJK font the glyphs set is drawn from, if installed."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [f for f in ("Noto Sans CJK JP", "Droid Sans Fallback") if f in installed]
    if cjk and matplotlib.rcParams["font.family"] == ["sans-serif"]:
        matplotlib.rcParams["font.family"] = ["DejaVu Sans", *cjk]


_with_cjk_fallback()

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
BASELINE_COLORS = ["#555555", "#999999", "#b07aa1", "#9c755f"]
def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def _finished(records: list[dict], method: str) -> list[dict]:
    return [r for r in records if r.get("method") == method and r.get("status") == "finished"]


def _is_fixed(records: list[dict], method: str) -> bool:
    rows = _finished(records, method)
    return bool(rows) and all(r.get("seed") is None for r in rows)


def color_map(methods: list[str], baselines: list[str] = ()) -> dict[str, str]:
    out = {m: COLORS[i % len(COLORS)] for i, m in enumerate(methods)}
    out.update({b: BASELINE_COLORS[i % len(BASELINE_COLORS)] for i, b in enumerate(baselines)})
    return out


def bounds(metric: str) -> tuple[float, float]:
    """The range of a metric in %, to clip interval bands to (the tables keep the raw ±)."""
    if metric == "spearman" or metric.endswith("spearman"):
        return -100.0, 100.0
    return 0.0, 100.0


def mean_with_interval(ax, x, mean, lo, hi, *, color, label, index, count, log_x=False, fixed=False, clip=None):
    """A mean line with its 95% interval: a shaded band for up to 3 series, otherwise error
    bars dodged sideways so that many methods stay readable."""
    x = np.asarray(x, dtype=np.float64)
    if clip is not None:
        lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
    has_ci = not fixed and np.isfinite(lo).any() and np.any(hi > lo)
    if has_ci and count > 3:
        off = (index - (count - 1) / 2) * (0.035 if log_x else 0.05)
        xd = x * 2.0**off if log_x else x + off
        ax.errorbar(xd, mean, yerr=[mean - lo, hi - mean], color=color, label=label, lw=1.5, ms=4, marker="o",
                    capsize=2.5, elinewidth=1.0)
        return
    ax.plot(x, mean, marker="s" if fixed else "o", ls="--" if fixed else "-", color=color, label=label, lw=1.6, ms=4)
    if has_ci and len(x) > 1:
        ax.fill_between(x, lo, hi, color=color, alpha=0.13, lw=0)
    elif has_ci:
        ax.errorbar(x, mean, yerr=[mean - lo, hi - mean], color=color, capsize=3, lw=0, elinewidth=1.0)


def readable_log_axis(ax) -> None:
    from matplotlib import ticker

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


# -- Recall@K ---------------------------------------------------------------------------------
def recall_curves(path, title: str, methods: list[str], records: list[dict], ks, *, prefix: str = "recall",
                  metric: str = "recall@1", baselines: list[str] = ()) -> Path:
    ks = [int(k) for k in ks]
    colors = color_map(methods, baselines)
    fig = Figure(figsize=(13, 4.4), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    series = [m for m in list(methods) + list(baselines) if _finished(records, m)]
    for i, m in enumerate(series):
        rows = _finished(records, m)
        fixed = _is_fixed(records, m)
        sums = [mean_interval([r["metrics"].get(f"{prefix}@{k}") for r in rows]) for k in ks]
        mean = np.array([s.mean for s in sums]) * 100
        if np.isnan(mean).all():
            continue
        n = max(s.n for s in sums)
        legend = f"{m} (fixed)" if fixed else f"{m} (n={n})"
        mean_with_interval(ax, ks, mean, np.array([s.low for s in sums]) * 100, np.array([s.high for s in sums]) * 100,
                           color=colors[m], label=legend, index=i, count=len(series), log_x=True, fixed=fixed, clip=bounds(prefix))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("K")
    ax.set_ylabel(f"{label(prefix)} (%)")
    ax.set_title(f"{label(prefix)}: mean over seeds with 95% interval")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no finished run", ha="center", va="center", transform=ax.transAxes)

    # The judged metric seed by seed: what the paired test sees.
    learned = [m for m in methods if _finished(records, m) and not _is_fixed(records, m)]
    seeds = sorted({r["seed"] for m in learned for r in _finished(records, m) if r.get("seed") is not None})
    for j, s in enumerate(seeds):
        ys = []
        for m in learned:
            v = [r["metrics"].get(metric) for r in _finished(records, m) if r.get("seed") == s]
            ys.append(v[-1] * 100 if v and v[-1] is not None else np.nan)
        ax2.plot(range(len(learned)), ys, color="#999999", lw=0.8, alpha=0.8, zorder=1)
        ax2.scatter(range(len(learned)), ys, color=[colors[m] for m in learned], s=22, zorder=2,
                    label="one seed (joined across methods)" if j == 0 else None)
    for i, m in enumerate(learned):
        s = mean_interval([r["metrics"].get(metric) for r in _finished(records, m)])
        if s.n:
            ax2.hlines(s.mean * 100, i - 0.25, i + 0.25, color="black", lw=2, zorder=3, label="mean" if i == 0 else None)
    for b in baselines:
        rows = _finished(records, b)
        if rows and rows[0]["metrics"].get(metric) is not None:
            ax2.axhline(rows[0]["metrics"][metric] * 100, color=colors[b], ls="--", lw=1.2, label=f"{b} (fixed)")
    ax2.set_xticks(range(len(learned)), learned, rotation=25 if len(learned) > 2 else 0, ha="right" if len(learned) > 2 else "center", fontsize=8)
    ax2.set_xlim(-0.6, len(learned) - 0.4)
    ax2.set_ylabel(f"{label(metric)} (%)")
    ax2.set_title(f"{label(metric)} per seed (the paired test's data)")
    ax2.grid(alpha=0.3, axis="y")
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.suptitle(title, fontsize=11)
    return save(fig, path)


# -- training curves --------------------------------------------------------------------------
def _history_series(rows: list[dict], key: str) -> tuple[np.ndarray, list]:
    by_epoch: dict[int, list[float]] = {}
    for r in rows:
        for h in r.get("history") or []:
            v = h.get(key)
            if v is None or "epoch" not in h:
                continue
            by_epoch.setdefault(int(h["epoch"]), []).append(float(v))
    epochs = np.array(sorted(by_epoch))
    return epochs, [mean_interval(by_epoch[e]) for e in epochs]


def training_curves(path, title: str, methods: list[str], records: list[dict], *, metric: str = "recall@1") -> Path:
    colors = color_map(methods)
    panels = [("train/loss", "train loss (scales differ between losses)"), (f"val/{metric}", f"{label(metric)}, validation classes (selection)")]
    has_eval = any(
        sum(1 for h in (r.get("history") or []) if f"eval/{metric}" in h) > 1 for m in methods for r in _finished(records, m)
    )
    if has_eval:
        panels.append((f"eval/{metric}", f"{label(metric)}, evaluation classes"))
    fig = Figure(figsize=(4.3 * len(panels), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (key, name) in zip(axes, panels):
        drawn, low_high, all_epochs = False, [], set()
        for i, m in enumerate(methods):
            epochs, sums = _history_series(_finished(records, m), key)
            if len(epochs) == 0:
                continue
            all_epochs |= {int(e) + 1 for e in epochs}
            loss = key == "train/loss"
            scale = 1.0 if loss else 100.0
            mean = np.array([s.mean for s in sums]) * scale
            low_high += [float(np.nanmin(mean)), float(np.nanmax(mean))]
            lo = np.array([s.low for s in sums]) * scale
            hi = np.array([s.high for s in sums]) * scale
            mean_with_interval(ax, epochs + 1, mean, lo, hi, color=colors[m], label=f"{m} (n={max(s.n for s in sums)})",
                               index=i, count=len(methods), clip=None if loss else bounds(key.split("/", 1)[1]))
            drawn = True
        if not drawn:
            ax.text(0.5, 0.5, f"no {key} in the trials' history", ha="center", va="center", transform=ax.transAxes, fontsize=9)
        elif key == "train/loss" and min(low_high) > 0 and max(low_high) / min(low_high) > 30:
            readable_log_axis(ax)  # losses of very different scales
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        if all_epochs:
            ticks = sorted(all_epochs)
            step = max(1, len(ticks) // 10)
            ax.set_xticks(ticks[::step])
            ax.set_xlim(min(ticks) - 0.5, max(ticks) + 0.5)
        if key != "train/loss":
            ax.set_ylabel("%")
        ax.grid(alpha=0.3)
    with_labels = [ax for ax in axes if ax.get_legend_handles_labels()[0]]
    if with_labels:
        with_labels[-1].legend(fontsize=7, loc="best")
    fig.suptitle(title + " (mean over seeds with 95% interval)", fontsize=11)
    return save(fig, path)


# -- embedding map ----------------------------------------------------------------------------
def pca_2d(x: np.ndarray) -> tuple[np.ndarray, float]:
    """The first two principal components of x (zero-padded for 1-D x), and the share of
    variance they explain."""
    x = np.asarray(x, dtype=np.float64)
    c = x - x.mean(0)
    # The d x d scatter's eigenvectors are the principal axes: for n >> d (6,000 x 64) this is
    # ~20x faster than the SVD of the n x d data, which each trial's figure paid for.
    var, vecs = np.linalg.eigh(c.T @ c)
    var, vecs = np.maximum(var[::-1], 0.0), vecs[:, ::-1]
    axes = vecs[:, :2] * np.where(vecs[np.abs(vecs[:, :2]).argmax(0), range(min(2, vecs.shape[1]))] < 0, -1.0, 1.0)
    xy = c @ axes
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    return xy, float(var[:2].sum() / var.sum()) if var.sum() > 0 else math.nan


def embedding_map(path, title: str, panels: list[dict], *, max_points: int = 2500) -> Path:
    """`panels`: [{title, x [n, d], labels [n] ints, names {label: name}} or with
    ``angles`` [n] (degrees) instead of labels, coloured on a cyclic map]."""
    fig = Figure(figsize=(5.6 * len(panels) + 1.2, 5.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    rng = np.random.default_rng(0)
    for ax, p in zip(axes, panels):
        x = np.asarray(p["x"])
        pool, note = np.arange(len(x)), ""
        if p.get("angles") is None:
            classes = np.unique(np.asarray(p["labels"]))
            if len(classes) > len(COLORS):
                # A thousand classes in ten colours is noise: map the first ten classes, whole.
                pool = np.flatnonzero(np.isin(np.asarray(p["labels"]), classes[: len(COLORS)]))
                note = f" of {len(COLORS)} of {len(classes)} classes"
        keep = np.sort(rng.choice(pool, size=min(max_points, len(pool)), replace=False))
        xy, share = pca_2d(x[keep])
        if p.get("angles") is not None:
            sc = ax.scatter(xy[:, 0], xy[:, 1], c=np.asarray(p["angles"])[keep] % 360, cmap="twilight", vmin=0, vmax=360, s=6, alpha=0.8)
            fig.colorbar(sc, ax=ax, label="rotation angle (degrees)")
        else:
            labels = np.asarray(p["labels"])[keep]
            names = p.get("names") or {}
            for i, c in enumerate(np.unique(labels)):
                sel = labels == c
                ax.scatter(xy[sel, 0], xy[sel, 1], s=6, alpha=0.7, color=COLORS[i % len(COLORS)], label=names.get(int(c), str(c)))
            ax.legend(fontsize=7, markerscale=2.5, loc="best", framealpha=0.8)
        ax.set_title(f"{p['title']}\nPCA, {len(keep)} eval items{note}, {share * 100:.0f}% of variance in 2-D", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=11)
    return save(fig, path)


# -- retrieval grid ---------------------------------------------------------------------------
def nearest(x: np.ndarray, queries: np.ndarray, k: int, distance: str = "euclidean") -> np.ndarray:
    """[len(queries), k] row numbers of the k nearest items of x to each query row (itself excluded)."""
    x = np.asarray(x, dtype=np.float64)
    if distance == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    q = x[queries]
    if distance in ("cosine", "dot"):
        d = -(q @ x.T)
    else:
        d = (q**2).sum(1)[:, None] + (x**2).sum(1)[None, :] - 2 * q @ x.T
    d[np.arange(len(queries)), queries] = np.inf
    return np.argsort(d, axis=1, kind="stable")[:, :k]  # ties: lower row first, as in evaluate


def pick_queries(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """n query rows, cycling through the classes (at most one more per class than another)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in classes}
    out = []
    while len(out) < n and any(pools.values()):
        for c in classes:
            if pools[c] and len(out) < n:
                out.append(pools[c].pop())
    return np.array(out, dtype=np.int64)


def circular_gap(a, b, period: float = 360.0):
    d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) % period
    return np.minimum(d, period - d)


def retrieval_grid(path, title: str, x: np.ndarray, images: "callable", labels: np.ndarray, *, names: dict | None = None,
                   angles: np.ndarray | None = None, angle_tolerance: float = 30.0, distance: str = "euclidean",
                   n_queries: int = 6, top: int = 5) -> Path:
    """Queries (first column) and their `top` nearest items. `images(rows)` returns
    [len(rows), C, H, W] floats in [0, 1] for row numbers of x. A match is wrong when its
    class differs from the query's (or, with `angles`, when its angle is more than
    `angle_tolerance` degrees from the query's): outlined red; right matches green."""
    names = names or {}
    labels = np.asarray(labels)
    queries = pick_queries(labels, n_queries)
    nn = nearest(x, queries, top, distance)
    fig = Figure(figsize=(1.45 * (top + 1) + 0.3, 1.62 * len(queries) + 0.5), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(queries), top + 1))
    wrong_total = 0
    for i, q in enumerate(queries):
        rows = np.concatenate([[q], nn[i]])
        imgs = np.asarray(images(rows))
        for j, row in enumerate(rows):
            ax = axes[i, j]
            img = imgs[j]
            img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if angles is not None:
                text = f"{angles[row]:.0f}°"
                wrong = j > 0 and circular_gap(angles[row], angles[q]) > angle_tolerance
            else:
                text = names.get(int(labels[row]), str(labels[row]))
                wrong = j > 0 and labels[row] != labels[q]
            if j == 0:
                color, width, text = "#1f3b99", 3, "query: " + text
            else:
                color, width = ("#d62728", 4) if wrong else ("#2ca02c", 1.5)
                wrong_total += int(wrong)
            for side in ax.spines.values():
                side.set_visible(False)
            h, w = img.shape[:2]
            ax.add_patch(Rectangle((-0.5, -0.5), w, h, fill=False, edgecolor=color, lw=width))
            ax.set_title(text[:18], fontsize=7, color=color if wrong or j == 0 else "black")
    rule = f"angle more than {angle_tolerance:.0f}° from the query's" if angles is not None else "another class than the query's"
    fig.suptitle(f"{title}\nred outline = wrong match ({rule}); {wrong_total} of {len(queries) * top} wrong", fontsize=9)
    return save(fig, path)
