"""evaluate() retrieval metrics against a brute-force loop reference, and against PML.

The data lie on a grid of small multiples of 1/2 (or are +-1 vectors for cosine), so every
distance is exact in float32 and float64 alike: ties and exact duplicates are frequent and
the reference can rank by (distance, index) without rounding doubts.
"""
import math

import numpy as np
import pytest
import torch

from dml_core.metrics import KnnSearcher, evaluate, nearest_neighbors

KEYS = ("precision@1", "r_precision", "map@r")


# ---------- plain-loop reference ----------
def ref_distance(a, b, distance):
    if distance in ("euclidean", "squared_euclidean"):
        s = 0.0
        for x, y in zip(a, b):
            s += (float(x) - float(y)) ** 2
        return math.sqrt(s) if distance == "euclidean" else s
    dot = sum(float(x) * float(y) for x, y in zip(a, b))
    if distance == "dot":
        return -dot
    na = math.sqrt(sum(float(x) ** 2 for x in a))
    nb = math.sqrt(sum(float(y) ** 2 for y in b))
    return 1.0 - dot / (na * nb)


def ref_ranking(q, ref, distance, exclude=None):
    """Reference indices by (distance, index), `exclude` (the query's own index) removed."""
    pairs = [(ref_distance(q, ref[j], distance), j) for j in range(len(ref)) if j != exclude]
    pairs.sort()
    return [j for _, j in pairs]


def ref_evaluate(q, ql, ref=None, rl=None, ks=(1, 2, 4, 8), distance="euclidean"):
    self_mode = ref is None
    if self_mode:
        ref, rl = q, ql
    sums, scored, without = {}, 0, 0
    for i in range(len(q)):
        r = sum(1 for j in range(len(ref)) if rl[j] == ql[i] and not (self_mode and j == i))
        if r == 0:
            without += 1
            continue
        scored += 1
        rel = [rl[j] == ql[i] for j in ref_ranking(q[i], ref, distance, i if self_mode else None)]
        vals = {}
        for k in ks:
            vals[f"recall@{k}"] = 1.0 if any(rel[:k]) else 0.0
            vals[f"strict_recall@{k}"] = sum(rel[:k]) / r
            hits, total = 0, 0.0
            for pos in range(k):
                if rel[pos]:
                    hits += 1
                    total += hits / (pos + 1)
            vals[f"map@{k}"] = total / hits if hits else 0.0
        vals["precision@1"] = 1.0 if rel[0] else 0.0
        vals["r_precision"] = sum(rel[:r]) / r
        hits, total = 0, 0.0
        for pos in range(r):
            if rel[pos]:
                hits += 1
                total += hits / (pos + 1)
        vals["map@r"] = total / r
        for key, v in vals.items():
            sums[key] = sums.get(key, 0.0) + v
    out = {key: v / scored for key, v in sums.items()}
    out["queries"], out["queries_without_match"] = scored, without
    return out


def assert_matches(got, expected):
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


# ---------- data ----------
def grid_data(n, classes, dim=4, seed=0, singletons=2):
    """Clustered points on a 1/2-grid: many ties, some exact duplicates, some singleton classes."""
    rng = np.random.default_rng(seed)
    centers = rng.integers(-3, 4, (classes, dim)) * 1.0
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.integers(-4, 5, (n, dim)) * 0.5
    x[5:9] = x[4]  # exact duplicates of one item
    y[5:7] = y[4]
    if singletons:
        y[-singletons:] = 1000 + np.arange(singletons)  # classes of one item
    return x.astype(np.float32), y


def sign_data(n, classes, dim=16, seed=0):
    """+-1 vectors (norm 4, so normalisation is exact): exact cosine ties."""
    rng = np.random.default_rng(seed)
    protos = rng.choice([-1.0, 1.0], (classes, dim))
    y = rng.integers(0, classes, n)
    flips = rng.random((n, dim)) < 0.2
    x = np.where(flips, -protos[y], protos[y])
    x[3:6] = x[2]
    return x.astype(np.float32), y


def test_grid_data_really_has_ties():
    x, _ = grid_data(160, 6)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    off = d[~np.eye(len(x), dtype=bool)]
    assert np.unique(off).size < off.size / 20  # far fewer distinct distances than pairs


# ---------- against the loop reference ----------
@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "dot"])
def test_self_retrieval_matches_reference_with_ties(distance):
    x, y = grid_data(160, 6, seed=1)
    got = evaluate(x, y, distance=distance, nmi=False)
    assert_matches(got, ref_evaluate(x, y, distance=distance))
    assert got["queries_without_match"] == 2


def test_reference_set_matches_reference_with_ties():
    x, y = grid_data(260, 7, seed=2)
    q, ql, ref, rl = x[:100], y[:100].copy(), x[100:], y[100:]
    ql[:3] = 555  # classes absent from the reference
    got = evaluate(q, ql, reference=ref, reference_labels=rl, ks=(1, 3, 10), nmi=False)
    expected = ref_evaluate(q, ql, ref, rl, ks=(1, 3, 10))
    assert_matches(got, expected)
    assert got["queries_without_match"] == expected["queries_without_match"] >= 3


@pytest.mark.parametrize("reference", [False, True])
def test_cosine_matches_reference_with_ties(reference):
    x, y = sign_data(180, 5, seed=3)
    if reference:
        got = evaluate(x[:60], y[:60], reference=x[60:], reference_labels=y[60:], distance="cosine", nmi=False)
        expected = ref_evaluate(x[:60], y[:60], x[60:], y[60:], distance="cosine")
    else:
        got = evaluate(x, y, distance="cosine", nmi=False)
        expected = ref_evaluate(x, y, distance="cosine")
    assert_matches(got, expected)


def test_small_chunks_and_heavy_ties_give_the_same_answer():
    # Only 2^3 distinct points: every tie group is far larger than the search margin, so the
    # exact fallback runs; tiny chunks exercise the chunk loop.
    rng = np.random.default_rng(4)
    x = rng.integers(0, 2, (150, 3)).astype(np.float32)
    y = rng.integers(0, 4, 150)
    expected = ref_evaluate(x, y, ks=(1, 5, 20))
    for max_entries in (4_000_000, 500, 1):
        assert_matches(evaluate(x, y, ks=(1, 5, 20), nmi=False, max_entries=max_entries), expected)


def test_query_chunks_bound_the_entries_held_at_once():
    from dml_core.metrics.knn import query_chunks

    sizes = np.sort(np.random.default_rng(0).integers(1, 400, 5000))
    chunks = list(query_chunks(sizes, 8, max_entries=20_000, max_rows=1000))
    assert chunks[0][0] == 0 and chunks[-1][1] == 5000
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))  # contiguous, in order
    for s, e, k in chunks:
        assert k >= max(sizes[s:e].max(), 8)  # deep enough for every query's R
        assert (e - s) * k <= 20_000 and e - s <= 1000
    # A single query deeper than the budget still gets its own chunk.
    assert list(query_chunks(np.array([50_000]), 8, max_entries=1000)) == [(0, 1, 50_000)]


def test_random_continuous_data_matches_reference():
    rng = np.random.default_rng(5)
    centers = rng.normal(0, 2, (8, 12))
    y = rng.integers(0, 8, 200)
    x = (centers[y] + rng.normal(0, 1.5, (200, 12))).astype(np.float32)
    assert_matches(evaluate(x, y, nmi=False), ref_evaluate(x, y))
    assert_matches(
        evaluate(x[:80], y[:80], reference=x[80:], reference_labels=y[80:], nmi=False),
        ref_evaluate(x[:80], y[:80], x[80:], y[80:]),
    )


def test_metrics_are_not_trivially_perfect_on_the_test_data():
    # Guards the tests above against data on which every metric is 1 (then a wrong ranking
    # could pass unnoticed).
    x, y = grid_data(160, 6, seed=1)
    got = evaluate(x, y, nmi=False)
    for key in ("recall@1", "map@r", "r_precision", "strict_recall@8", "map@8"):
        assert 0.1 < got[key] < 0.95, key


# ---------- the tie rule and self-exclusion, by hand ----------
def test_tie_rule_by_reference_index_and_self_by_index():
    # Query 0 at the origin; items 1..4 all at distance 1; item 5 is an exact duplicate of 0.
    x = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [0, 0]], np.float32)
    d, i = nearest_neighbors(x, k=5)
    assert i[0].tolist() == [5, 1, 2, 3, 4]  # the duplicate is an ordinary item, at distance 0
    assert i[5].tolist() == [0, 1, 2, 3, 4]
    assert d[0].tolist() == [0, 1, 1, 1, 1]
    # Labels: the duplicate is of another class; the first tied item decides recall@2.
    y = np.array([0, 0, 1, 1, 1, 2])
    got = evaluate(x, y, ks=(1, 2), nmi=False)
    assert_matches(got, ref_evaluate(x, y, ks=(1, 2)))


def test_more_duplicates_than_k_lowest_indices_win_and_self_is_skipped():
    x = np.zeros((30, 3), np.float32)
    x[29] = 1.0  # one different point, last
    _, i = nearest_neighbors(x, k=5)
    assert i[25].tolist() == [0, 1, 2, 3, 4]  # self (25) is beyond its own top 5
    assert i[2].tolist() == [0, 1, 3, 4, 5]
    assert i[29].tolist() == [0, 1, 2, 3, 4]


class HighestIndexFirst:
    """A stand-in FAISS index that breaks ties the other way (highest index first)."""

    def __init__(self, ref):
        self.ref = ref.astype(np.float64)

    def search(self, q, k):
        d = ((q[:, None, :].astype(np.float64) - self.ref[None]) ** 2).sum(-1)
        ids = np.lexsort((-np.arange(len(self.ref))[None].repeat(len(q), 0), d), axis=1)[:, :k]
        return np.take_along_axis(d, ids, 1).astype(np.float32), ids.astype(np.int64)


@pytest.mark.parametrize("levels", [2, 5])
def test_result_does_not_depend_on_faiss_tie_order(levels):
    # levels=2: 8 distinct points, tie groups beyond the search margin (exact fallback);
    # levels=5: tie groups inside the window (re-sorting alone must fix the order).
    rng = np.random.default_rng(6)
    x = rng.integers(0, levels, (120, 3)).astype(np.float32)
    s = KnnSearcher(x, "euclidean")
    s.index = HighestIndexFirst(x)
    _, ids = s.search(x, 30, np.arange(len(x)))
    for row in range(len(x)):
        assert ids[row].tolist() == ref_ranking(x[row], x, "euclidean", row)[:30]
    if levels == 2:
        assert s.exact_rows > 0
    else:
        assert s.exact_rows < len(x) // 10  # most rows were fixed by re-sorting the window


def test_knn_matches_reference_ranking():
    x, _ = grid_data(90, 5, seed=7)
    _, ids = nearest_neighbors(x[:30], x[30:], 12)
    for row in range(30):
        assert ids[row].tolist() == ref_ranking(x[row], x[30:], "euclidean")[:12]


# ---------- singleton classes and classes missing from the reference ----------
def test_singleton_classes_are_counted_and_left_out_of_every_metric():
    x, y = grid_data(160, 6, seed=8, singletons=3)
    got = evaluate(x, y, nmi=True)
    assert got["queries_without_match"] == 3 and got["queries"] == 157
    # r_precision / map@r of the others are unchanged by the singletons' presence as queries;
    # the singletons still count as (wrong-class) reference items for the others.
    expected = ref_evaluate(x, y)
    assert_matches(got, expected)
    assert all(np.isfinite(v) for v in got.values())


def test_no_query_with_a_match_is_an_error():
    x = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match="singleton"):
        evaluate(x, np.arange(4), ks=(1,))
    with pytest.raises(ValueError, match="share no class"):
        evaluate(x, np.zeros(4, int), reference=x, reference_labels=np.ones(4, int), ks=(1,))


# ---------- bad input ----------
def bad_inputs():
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    y = np.arange(20) % 4
    nan = x.copy()
    nan[3, 1] = np.nan
    inf = x.copy()
    inf[0, 0] = np.inf
    zero = x.copy()
    zero[2] = 0
    return [
        (lambda: evaluate(nan, y), "embeddings contains NaN or inf"),
        (lambda: evaluate(x, y, reference=inf, reference_labels=y), "reference contains NaN or inf"),
        (lambda: evaluate(x, y[:-1]), "labels has length 19 but embeddings has 20"),
        (lambda: evaluate(x, y, reference=x, reference_labels=y[:5]), "reference_labels has length 5"),
        (lambda: evaluate(x, y, reference=x), "reference given without reference_labels"),
        (lambda: evaluate(x, y, reference_labels=y), "reference_labels given without reference"),
        (lambda: evaluate(x, y, reference=x[:, :3], reference_labels=y), "reference has dim 3"),
        (lambda: evaluate(x, y, ks=(1, 20)), "ks has k=20, larger than the number of other embeddings"),
        (lambda: evaluate(x[:5], y[:5], reference=x, reference_labels=y, ks=(21,)), "ks has k=21"),
        (lambda: evaluate(x, y, ks=(0,)), "ks must be >= 1"),
        (lambda: evaluate(x, y, ks=()), "ks must not be empty"),
        (lambda: evaluate(x, y.astype(float)), "labels must hold integer class ids"),
        (lambda: evaluate(x[0], y), "embeddings must have shape"),
        (lambda: evaluate(x, y, distance="manhattan"), "distance must be one of"),
        (lambda: evaluate(zero, y, distance="cosine"), "all-zero row"),
        (lambda: evaluate(x.astype(np.float64) * 1e300, y), "too large for float32"),
    ]


@pytest.mark.parametrize("case", range(len(bad_inputs())))
def test_bad_input_raises_value_error_naming_the_argument(case):
    call, match = bad_inputs()[case]
    with pytest.raises(ValueError, match=match):
        call()


def test_distance_object_is_accepted_by_its_registry_name():
    class Cosine:  # what dml_core.distances registers: a class attribute `registry_name`
        registry_name = "cosine"

    x, y = sign_data(60, 3, seed=14)
    assert evaluate(x, y, distance=Cosine(), nmi=False) == evaluate(x, y, distance="cosine", nmi=False)


def test_largest_allowed_k_works():
    x, y = grid_data(40, 3, seed=9, singletons=0)
    got = evaluate(x, y, ks=(39,), nmi=False)
    assert_matches(got, ref_evaluate(x, y, ks=(39,)))
    assert got["recall@39"] == 1.0 and got["strict_recall@39"] == 1.0


def test_torch_and_numpy_inputs_agree_and_keys_are_complete():
    x, y = grid_data(120, 5, seed=10)
    a = evaluate(x, y)
    b = evaluate(torch.from_numpy(x).double().requires_grad_(), torch.from_numpy(y))
    assert a == b
    expected_keys = {"queries", "queries_without_match", "precision@1", "r_precision", "map@r", "nmi"}
    for k in (1, 2, 4, 8):
        expected_keys |= {f"recall@{k}", f"strict_recall@{k}", f"map@{k}"}
    assert set(a) == expected_keys
    assert all(isinstance(v, (int, float)) for v in a.values())


# ---------- pytorch-metric-learning ----------
def pml(q, ql, ref=None, rl=None):
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
    )
    t = torch.from_numpy
    if ref is None:
        out = calc.get_accuracy(t(q), t(ql))
    else:
        out = calc.get_accuracy(t(q), t(ql), t(ref), t(rl), ref_includes_query=False)
    return {"precision@1": out["precision_at_1"], "r_precision": out["r_precision"], "map@r": out["mean_average_precision_at_r"]}


def continuous_clustered(n, classes, seed, dim=16):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.5, (classes, dim))
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.normal(0, 1, (n, dim))).astype(np.float32)
    y[-3:] = 900 + np.arange(3)  # singletons: PML leaves them out too
    return x, y


def test_equals_pytorch_metric_learning_without_reference():
    x, y = continuous_clustered(600, 12, seed=11)
    got, theirs = evaluate(x, y, nmi=False), pml(x, y)
    for key in KEYS:
        assert got[key] == pytest.approx(theirs[key], abs=1e-12), key
    assert 0.2 < got["map@r"] < 0.9


def test_equals_pytorch_metric_learning_with_reference():
    x, y = continuous_clustered(700, 10, seed=12)
    q, ql, ref, rl = x[:250], y[:250], x[250:], y[250:]
    got, theirs = evaluate(q, ql, reference=ref, reference_labels=rl, nmi=False), pml(q, ql, ref, rl)
    for key in KEYS:
        assert got[key] == pytest.approx(theirs[key], abs=1e-12), key


# ---------- approximate index ----------
def test_hnsw_index_is_close_to_exact_on_easy_data():
    x, y = continuous_clustered(800, 8, seed=13)
    exact = evaluate(x, y, nmi=False)
    approx = evaluate(x, y, nmi=False, index="hnsw")
    for key in ("recall@1", "precision@1", "map@r"):
        assert approx[key] == pytest.approx(exact[key], abs=0.02), key
