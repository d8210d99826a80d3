"""average_precision_at_k, ndcg_at_k, spearman, kendall_tau against hand values and loop references."""
import math

import numpy as np
import pytest
import scipy.stats
import torch

from dml_core.metrics import average_precision_at_k, kendall_tau, ndcg_at_k, rankdata, spearman


# ---------- plain-loop references ----------
def ref_ap(row, k):
    hits, total = 0, 0.0
    for i in range(k):
        if row[i] > 0:
            hits += 1
            total += hits / (i + 1)
    return total / hits if hits else 0.0


def ref_ndcg(row, k, gain):
    g = (lambda r: r) if gain == "linear" else (lambda r: 2.0**r - 1.0)
    dcg = sum(g(row[i]) / math.log2(i + 2) for i in range(k))
    ideal = sorted(row, reverse=True)
    idcg = sum(g(ideal[i]) / math.log2(i + 2) for i in range(k))
    return dcg / idcg if idcg > 0 else 0.0


def ref_ranks(v):
    out = []
    for x in v:
        below = sum(1 for y in v if y < x)
        equal = sum(1 for y in v if y == x)
        out.append(below + (equal + 1) / 2)
    return out


def ref_pearson(a, b):
    n = len(a)
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else 0.0


# ---------- seed 002: AP@k ----------
def test_seed_002_worked_example():
    assert average_precision_at_k([0, 1, 1, 0, 1], 5) == pytest.approx(53 / 90, abs=1e-15)
    assert average_precision_at_k([0, 1, 1, 0, 1], 5) == pytest.approx((1 / 2 + 2 / 3 + 3 / 5) / 3)


def test_ap_no_relevant_item_is_zero_and_cut_at_k():
    out = average_precision_at_k(np.array([[0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 1]]), 3)
    np.testing.assert_allclose(out, [0.0, 1.0, 1 / 3])


def test_ap_matches_loop_reference_on_random_lists():
    rng = np.random.default_rng(1)
    rel = (rng.random((50, 20)) < 0.3).astype(np.int64)
    rel[::7, :] = 0
    for k in (1, 3, 10, 20):
        expected = [ref_ap(list(row), k) for row in rel]
        np.testing.assert_allclose(average_precision_at_k(rel, k), expected, rtol=1e-12)


def test_ap_torch_in_torch_out():
    out = average_precision_at_k(torch.tensor([[0, 1, 1, 0, 1], [1, 1, 0, 0, 0]]), 5)
    assert isinstance(out, torch.Tensor) and out.shape == (2,)
    torch.testing.assert_close(out, torch.tensor([53 / 90, 1.0], dtype=torch.float64))


# ---------- seed 004: NDCG ----------
def test_ndcg_hand_computed_both_gains():
    # rel 1,0,2,3 cut at k=3; the ideal ranking sorts the WHOLE row (the 3 sits at rank 4).
    # linear:      DCG = 1/1 + 0/log2(3) + 2/log2(4) = 2
    #              IDCG = 3/1 + 2/log2(3) + 1/log2(4) = 3.5 + 1.2618595 = 4.7618595
    # exponential: DCG = (2-1)/1 + 0 + (4-1)/2 = 2.5
    #              IDCG = (8-1)/1 + (4-1)/log2(3) + (2-1)/2 = 7.5 + 1.8927893 = 9.3927893
    row = [1, 0, 2, 3]
    assert ndcg_at_k(row, 3) == pytest.approx(2 / 4.7618595, rel=1e-7)
    assert ndcg_at_k(row, 3) == pytest.approx(0.4200043, rel=1e-6)
    assert ndcg_at_k(row, 3, gain="exponential") == pytest.approx(2.5 / 9.3927893, rel=1e-7)
    assert ndcg_at_k(row, 3, gain="exponential") == pytest.approx(0.2661617, rel=1e-6)
    assert ndcg_at_k([3, 2, 1, 0], 3) == 1.0


def test_ndcg_matches_loop_reference_graded_and_continuous():
    rng = np.random.default_rng(2)
    graded = rng.integers(0, 4, (40, 15)).astype(float)
    graded[3] = 0
    cont = rng.random((40, 15)) * 2
    for rel in (graded, cont):
        for gain in ("linear", "exponential"):
            for k in (1, 5, 15):
                expected = [ref_ndcg(list(row), k, gain) for row in rel]
                np.testing.assert_allclose(ndcg_at_k(rel, k, gain=gain), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ndcg_at_k([[1, -1, 0]], 2), "rel must be >= 0"),
        (lambda: ndcg_at_k([[1, np.nan, 0]], 2), "rel contains NaN"),
        (lambda: ndcg_at_k([[1, 0, 0]], 4), "k=4 is larger"),
        (lambda: ndcg_at_k([[1, 0, 0]], 2, gain="cubic"), "gain must be"),
        (lambda: average_precision_at_k([[1, 0, 0]], 0), "k must be a positive int"),
        (lambda: average_precision_at_k([[1, np.inf, 0]], 2), "rel contains NaN or inf"),
        (lambda: spearman([1, 2, 3], [1, 2]), "same shape"),
    ],
)
def test_bad_input_is_a_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------- rank correlation ----------
def test_rankdata_average_ties():
    np.testing.assert_array_equal(rankdata([10, 20, 10, 30, 20, 20]), [1.5, 4, 1.5, 6, 4, 4])
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, (6, 30)).astype(float)
    for row, ranks in zip(x, rankdata(x)):
        np.testing.assert_array_equal(ranks, ref_ranks(list(row)))


def test_rankdata_equals_scipy_on_long_rows_with_and_without_ties():
    # Long rows take NumPy's unstable (SIMD) sort: the average ranks must not depend on the
    # order it leaves tied values in. Exact equality, with and without ties in the block.
    rng = np.random.default_rng(5)
    distinct = rng.random((4, 5000))
    tied = np.round(rng.random((4, 5000)) * 50) / 4
    mixed = np.vstack([distinct[:2], tied[:2]])
    for x in (distinct, tied, mixed):
        np.testing.assert_array_equal(rankdata(x), scipy.stats.rankdata(x, axis=1, method="average"))


def test_spearman_matches_loops_and_scipy_with_ties():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 6, (20, 40)).astype(float)
    b = a + rng.normal(0, 2, a.shape).round()
    out = spearman(a, b)
    for i in range(a.shape[0]):
        expected = ref_pearson(ref_ranks(list(a[i])), ref_ranks(list(b[i])))
        assert out[i] == pytest.approx(expected, abs=1e-12)
        assert out[i] == pytest.approx(scipy.stats.spearmanr(a[i], b[i]).statistic, abs=1e-12)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0


def test_spearman_constant_input_scores_zero_not_nan():
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0
    out = spearman(torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]]), torch.tensor([[1.0, 2.0, 3.0]] * 2))
    torch.testing.assert_close(out, torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_kendall_matches_scipy_tau_b():
    rng = np.random.default_rng(5)
    for _ in range(5):
        a = rng.integers(0, 8, 60).astype(float)
        b = a + rng.integers(-3, 4, 60)
        assert kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic, abs=1e-12)
    # A block smaller than one row of pairs must give the same answer.
    assert kendall_tau(a, b, max_block=7) == pytest.approx(scipy.stats.kendalltau(a, b).statistic, abs=1e-12)
    assert kendall_tau([1, 1, 1], [1, 2, 3]) == 0.0
