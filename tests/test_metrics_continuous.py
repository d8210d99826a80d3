"""evaluate_continuous (C7): NDCG@k of retrieved neighbours and Spearman rank correlation."""
import math

import numpy as np
import pytest
import torch

from dml_core.metrics import evaluate_continuous


# ---------- plain-loop reference ----------
def ref_continuous(x, y, ref=None, ry=None, ks=(1, 5, 10), gain="linear", scale=1.0, distance="euclidean"):
    self_mode = ref is None
    if self_mode:
        ref, ry = x, y
    g = (lambda r: r) if gain == "linear" else (lambda r: 2.0**r - 1.0)
    ndcg = {k: 0.0 for k in ks}
    rho_total = 0.0
    for i in range(len(x)):
        items = [j for j in range(len(ref)) if not (self_mode and j == i)]
        emb_d, lab_d = {}, {}
        for j in items:
            if distance == "cosine":
                dot = sum(float(a) * float(b) for a, b in zip(x[i], ref[j]))
                na = math.sqrt(sum(float(a) ** 2 for a in x[i]))
                nb = math.sqrt(sum(float(b) ** 2 for b in ref[j]))
                emb_d[j] = 1 - dot / (na * nb)
            else:
                emb_d[j] = sum((float(a) - float(b)) ** 2 for a, b in zip(x[i], ref[j]))
            lab_d[j] = math.sqrt(sum((float(a) - float(b)) ** 2 for a, b in zip(np.atleast_1d(y[i]), np.atleast_1d(ry[j]))))
        ranked = sorted(items, key=lambda j: (emb_d[j], j))
        rel = {j: 1.0 / (1.0 + lab_d[j] / scale) for j in items}
        ideal = sorted(rel.values(), reverse=True)
        for k in ks:
            dcg = sum(g(rel[ranked[p]]) / math.log2(p + 2) for p in range(k))
            idcg = sum(g(ideal[p]) / math.log2(p + 2) for p in range(k))
            ndcg[k] += dcg / idcg
        rho_total += ref_spearman([emb_d[j] for j in items], [lab_d[j] for j in items])
    out = {f"ndcg@{k}": v / len(x) for k, v in ndcg.items()}
    out["spearman"] = rho_total / len(x)
    return out


def ref_spearman(a, b):
    def ranks(v):
        return [sum(1 for w in v if w < u) + (sum(1 for w in v if w == u) + 1) / 2 for u in v]

    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((p - ma) * (q - mb) for p, q in zip(ra, rb))
    va, vb = sum((p - ma) ** 2 for p in ra), sum((q - mb) ** 2 for q in rb)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else 0.0


def angle_data(n, seed):
    """Embeddings on a 1/2-grid that follow an integer label with noise: ties in both."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 12, n).astype(float)
    x = np.stack([y, rng.integers(-3, 4, n) * 0.5, rng.integers(-3, 4, n) * 0.5], 1)
    x[:, 0] += rng.integers(-4, 5, n) * 0.5
    return x.astype(np.float32), y


@pytest.mark.parametrize("gain", ["linear", "exponential"])
def test_matches_loop_reference_without_reference_set(gain):
    x, y = angle_data(70, 0)
    got = evaluate_continuous(x, y, gain=gain, relevance_scale=2.0)
    expected = ref_continuous(x, y, gain=gain, scale=2.0)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert got["queries"] == 70
    assert 0.3 < got["spearman"] < 0.95 and 0.3 < got["ndcg@5"] < 0.999


def test_matches_loop_reference_with_reference_set_and_2d_labels():
    x, y = angle_data(90, 1)
    y2 = np.stack([np.cos(y / 2), np.sin(y / 2)], 1)  # a periodic label as (cos, sin)
    got = evaluate_continuous(x[:30], y2[:30], reference=x[30:], reference_labels=y2[30:], ks=(1, 3, 60))
    expected = ref_continuous(x[:30], y2[:30], x[30:], y2[30:], ks=(1, 3, 60))
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_cosine_and_small_blocks_match_reference():
    # +-1 vectors of norm 4: cosines are exact multiples of 1/16, so ties are exact too.
    rng = np.random.default_rng(2)
    y = rng.integers(0, 6, 50).astype(float)
    protos = rng.choice([-1.0, 1.0], (6, 16))
    x = np.where(rng.random((50, 16)) < 0.25, -protos[y.astype(int)], protos[y.astype(int)]).astype(np.float32)
    expected = ref_continuous(x, y, ks=(2, 7), distance="cosine")
    for max_entries in (4_000_000, 60):
        got = evaluate_continuous(x, y, ks=(2, 7), distance="cosine", max_entries=max_entries)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-12), key


def test_kept_label_ranks_score_every_embedding_like_the_loop_reference(monkeypatch):
    # The label-distance ranks of the latest labels are kept for the next call with equal
    # labels (each seed's embedding of the same items): every call must still equal the loop.
    import dml_core.metrics.continuous as continuous

    x, y = angle_data(60, 3)
    rng = np.random.default_rng(4)
    other = (x + rng.integers(-2, 3, x.shape) * 0.5).astype(np.float32)

    def check(emb, labels, **kw):
        got = evaluate_continuous(emb, labels, ks=(1, 4), **kw)
        expected = ref_continuous(emb, labels, kw.get("reference"), kw.get("reference_labels"), ks=(1, 4))
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-12), key

    for emb in (x, other, x):  # the second and third calls read the first one's ranks
        check(emb, y)
    y[:10] += 1.0  # the same array holding other labels: ranked anew
    check(other, y)
    check(x[:20], y[:20], reference=x[20:], reference_labels=y[20:])
    monkeypatch.setattr(continuous, "LABEL_RANK_CACHE_BYTES", 0)  # too large to keep: ranked per call
    check(x, y)
    check(other, y)


def test_perfect_embedding_scores_one():
    y = np.arange(40, dtype=float)
    x = np.stack([y * 3.0, np.zeros(40)], 1)
    got = evaluate_continuous(torch.tensor(x), torch.tensor(y), ks=(1, 4))
    assert got["spearman"] == pytest.approx(1.0, abs=1e-12)
    assert got["ndcg@1"] == pytest.approx(1.0) and got["ndcg@4"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"labels": np.array([0.0, np.nan, 1.0, 2.0])}, "labels contains NaN"),
        ({"labels": np.zeros(3)}, "labels has length 3"),
        ({"ks": (4,)}, "ks has k=4"),
        ({"gain": "cubic"}, "gain must be"),
        ({"relevance_scale": 0.0}, "relevance_scale must be"),
        ({"reference": np.zeros((4, 2))}, "reference given without reference_labels"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"embeddings": np.arange(8.0).reshape(4, 2), "labels": np.arange(4.0), "ks": (1,)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        evaluate_continuous(**args)
