"""Attention-Shapley: closed forms against brute force, the Shapley axioms, Monte Carlo, explainers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from expnet.errors import ExpnetError
from expnet.explainers import explainer_names, get_explainer
from expnet.models.attention import forward_with_attentions
from expnet.models.gradients import attention_gradients
from expnet.shapley import (
    attention_matrices,
    brute_force_shapley,
    cls_game,
    cls_shapley,
    max_mutual_game,
    max_mutual_shapley,
    monte_carlo_shapley,
    mutual_game,
    mutual_shapley,
    pairwise_shapley,
)

GAMES = [(mutual_game, mutual_shapley, "mutual"), (max_mutual_game, max_mutual_shapley, "max")]
SHAPLEY_NAMES = ["attention_shapley_mutual", "attention_shapley_max", "attention_shapley_mutual_grad", "attention_shapley_max_grad"]


def random_matrices(n: int, seed: int):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, n)) * 2
    attention = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # row-stochastic, like attention
    signed = rng.normal(size=(n, n))  # negative entries too: the formulas must not rely on A >= 0
    return attention, signed


# --- closed form = brute force ---------------------------------------------------------------
@pytest.mark.parametrize("n", range(1, 11))
@pytest.mark.parametrize("game, closed, _", GAMES)
def test_closed_form_equals_brute_force(n, game, closed, _):
    for matrix in random_matrices(n, seed=n):
        exact = brute_force_shapley(game(matrix), n)
        np.testing.assert_allclose(closed(matrix), exact, atol=1e-12, rtol=0)


def test_brute_force_by_hand():
    # Two players, mutual game: v({0}) = 1, v({1}) = 3, v({0,1}) = 0.5 + 0.25.
    matrix = np.array([[1.0, 0.5], [0.25, 3.0]])
    # phi_0 = (v({0}) + v(N) - v({1})) / 2 = (1 + 0.75 - 3) / 2
    np.testing.assert_allclose(brute_force_shapley(mutual_game(matrix), 2), [-0.625, 1.375])
    np.testing.assert_allclose(mutual_shapley(matrix), [-0.625, 1.375])
    # Max game: pair worth max(0.5, 0.25) = 0.5.
    np.testing.assert_allclose(max_mutual_shapley(matrix), [(1 + 0.5 - 3) / 2, (3 + 0.5 - 1) / 2])


def test_cls_game_is_additive():
    row = np.random.default_rng(0).random(7)
    np.testing.assert_allclose(brute_force_shapley(cls_game(row), 7), row, atol=1e-12)
    np.testing.assert_allclose(cls_shapley(row), row)


# --- the axioms ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 5, 40, 200])
@pytest.mark.parametrize("game, closed, _", GAMES)
def test_efficiency(n, game, closed, _):
    for matrix in random_matrices(n, seed=100 + n):
        if n <= 40:
            total = game(matrix)(range(n))
        else:  # v(N) directly, without the O(n^2) Python loop
            pair = matrix + matrix.T if game is mutual_game else np.maximum(matrix, matrix.T)
            total = np.triu(pair, 1).sum()
        assert closed(matrix).sum() == pytest.approx(total, abs=1e-9)


@pytest.mark.parametrize("game, closed, _", GAMES)
def test_symmetry(game, closed, _):
    rng = np.random.default_rng(3)
    matrix = rng.random((6, 6))
    swap = [1, 0, 2, 3, 4, 5]
    matrix = (matrix + matrix[np.ix_(swap, swap)]) / 2  # players 0 and 1 now play the same role
    values = closed(matrix)
    assert values[0] == pytest.approx(values[1], abs=1e-12)
    assert not np.allclose(values[0], values[2:])  # and the test is not trivially satisfied


@pytest.mark.parametrize("game, closed, _", GAMES)
def test_null_player(game, closed, _):
    rng = np.random.default_rng(4)
    matrix = rng.random((6, 6))
    np.fill_diagonal(matrix, 0.0)  # no self-attention: a lone token is worth nothing
    matrix[3, :] = 0.0
    matrix[:, 3] = 0.0
    v = game(matrix)
    for size in range(6):  # player 3 really is null: it never changes a coalition's worth
        for coalition in itertools.combinations([0, 1, 2, 4, 5], size):
            assert v(set(coalition) | {3}) == pytest.approx(v(coalition))
    values = closed(matrix)
    assert values[3] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.abs(np.delete(values, 3)) > 1e-6)


def test_lone_token_term_is_charged_to_the_others():
    # A token that attends to nobody and is attended by nobody is not null when others have
    # self-attention: joining a lone token k cancels v({k}) = A_kk, so it pays A_kk / (n (n - 1)).
    matrix = np.diag([0.4, 0.6, 0.0])
    values = mutual_shapley(matrix)
    np.testing.assert_allclose(values, brute_force_shapley(mutual_game(matrix), 3), atol=1e-12)
    assert values[2] == pytest.approx(-(0.4 + 0.6) / 6)


def test_batched_closed_form_with_padding_matches_each_text():
    rng = np.random.default_rng(5)
    big = torch.as_tensor(rng.random((3, 9, 9)))
    players = torch.zeros(3, 9, dtype=torch.bool)
    players[0, 1:8] = True
    players[1, [1, 2, 5]] = True
    players[2, 1] = True
    for pairing, closed in (("mutual", mutual_shapley), ("max", max_mutual_shapley)):
        values = pairwise_shapley(big, players, pairing).numpy()
        for b in range(3):
            keep = players[b].numpy()
            np.testing.assert_allclose(values[b, keep], closed(big[b].numpy()[np.ix_(keep, keep)]), atol=1e-12)
            assert np.all(values[b, ~keep] == 0)


# --- Monte Carlo over a user's game -------------------------------------------------------
def glove_game(coalition) -> float:
    """A non-attention game: left gloves {0, 1}, right gloves {2, 3, 4}; worth = matched pairs."""
    return float(min(len({0, 1} & set(coalition)), len({2, 3, 4} & set(coalition))))


@pytest.mark.parametrize("method", ["permutations", "coalitions"])
def test_monte_carlo_converges_to_brute_force(method):
    exact = brute_force_shapley(glove_game, 5)
    estimate = monte_carlo_shapley(glove_game, 5, n_samples=4000, seed=1, method=method)
    assert np.all(np.abs(estimate.values - exact) <= 4 * estimate.std_errors + 1e-9)
    assert np.abs(estimate.values - exact).max() < 0.03
    assert estimate.n_evaluations <= 2**5  # cached: every coalition is evaluated once at most


def test_monte_carlo_on_attention_game_and_efficiency():
    matrix = random_matrices(7, seed=9)[0]
    estimate = monte_carlo_shapley(mutual_game(matrix), 7, n_samples=3000, seed=2)
    exact = mutual_shapley(matrix)
    assert np.all(np.abs(estimate.values - exact) <= 4 * estimate.std_errors + 1e-9)
    # Each sampled order telescopes to v(N), so permutation estimates are exactly efficient.
    assert estimate.values.sum() == pytest.approx(mutual_game(matrix)(range(7)), abs=1e-9)


def test_monte_carlo_is_seeded():
    a = monte_carlo_shapley(glove_game, 5, n_samples=50, seed=7, method="coalitions")
    b = monte_carlo_shapley(glove_game, 5, n_samples=50, seed=7, method="coalitions")
    c = monte_carlo_shapley(glove_game, 5, n_samples=50, seed=8, method="coalitions")
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)


def test_bad_arguments():
    with pytest.raises(ValueError, match="monte_carlo"):
        brute_force_shapley(glove_game, 25)
    with pytest.raises(ValueError, match="method"):
        monte_carlo_shapley(glove_game, 5, method="kernel")
    with pytest.raises(ValueError, match="square"):
        mutual_game(np.zeros((2, 3)))


# --- the explainers ------------------------------------------------------------------------
TEXTS = [["the", "movie", "was", "unbelievable", "fun"], ["i", "hate", "boring", "films", "!"], ["good"]]


def test_registered():
    for name in SHAPLEY_NAMES:
        assert name in explainer_names()
        assert get_explainer(name).info().default_budget.startswith("exact")


@pytest.mark.parametrize("name", SHAPLEY_NAMES)
def test_word_scores_are_summed_token_shapley_values(tiny_classifier, name):
    explainer = get_explainer(name)
    explanations = explainer.explain(tiny_classifier, TEXTS)
    batch = tiny_classifier.encode(TEXTS)
    games = attention_matrices(tiny_classifier, batch, None, explainer.weighting)
    game = mutual_game if explainer.pairing == "mutual" else max_mutual_game
    for i, explanation in enumerate(explanations):
        matrix = games.matrix(i)
        owners = batch.token_word[i][games.players[i]].numpy()
        token_values = brute_force_shapley(game(matrix), len(matrix))  # independent of the closed form
        expected = np.zeros(len(TEXTS[i]))
        np.add.at(expected, owners, token_values)
        np.testing.assert_allclose(explanation.scores, expected, atol=1e-5)
        # Efficiency at the word level: the words share exactly the worth of all tokens.
        assert explanation.scores.sum() == pytest.approx(game(matrix)(range(len(matrix))), abs=1e-5)


def test_matrices_match_the_definitions(tiny_classifier):
    batch = tiny_classifier.encode(TEXTS)
    _, attentions = forward_with_attentions(tiny_classifier, batch)
    stacked = torch.stack(attentions)  # [L, B, H, T, T]
    plain = attention_matrices(tiny_classifier, batch, weighting="plain")
    torch.testing.assert_close(plain.matrices, stacked.mean((0, 2)))
    targets = torch.tensor([1, 0, 1])
    grads = attention_gradients(tiny_classifier, batch, targets)
    weighted = attention_matrices(tiny_classifier, batch, targets, weighting="gradient")
    expected = (torch.stack(grads.attentions) * torch.stack(grads.gradients).clamp(min=0)).mean((0, 2))
    torch.testing.assert_close(weighted.matrices, expected)
    last = attention_matrices(tiny_classifier, batch, weighting="plain", layers=[-1])
    torch.testing.assert_close(last.matrices, attentions[-1].mean(1))
    assert torch.equal(plain.players, batch.word_tokens)


def test_grad_variants_follow_the_target_and_plain_ones_do_not(tiny_classifier):
    plain = get_explainer("attention_shapley_mutual")
    grad = get_explainer("attention_shapley_mutual_grad")
    predictions = [e.prediction for e in plain.explain(tiny_classifier, TEXTS[:2])]
    others = [1 - p for p in predictions]
    with pytest.raises(ExpnetError, match="scores are the same for every class"):  # plain: no class to follow
        plain.explain(tiny_classifier, TEXTS[:2], others)
    g0, g1 = (grad.explain(tiny_classifier, TEXTS[:2], t) for t in (predictions, others))
    assert not np.allclose(g0[0].scores, g1[0].scores)


def test_layers_setting_and_truncation(tiny_classifier):
    all_layers = get_explainer("attention_shapley_max").explain(tiny_classifier, TEXTS)
    first = get_explainer("attention_shapley_max", layers=[0]).explain(tiny_classifier, TEXTS)
    assert not np.allclose(all_layers[0].scores, first[0].scores)
    long_text = ["good"] * 60  # max_length 32: 30 words fit
    (explanation,) = get_explainer("attention_shapley_mutual").explain(tiny_classifier, [long_text])
    assert explanation.truncated and np.isnan(explanation.scores[-1]) and np.isfinite(explanation.scores[0])


def test_layers_must_be_a_list_of_indices(tiny_classifier):
    # "12" was read as layers 1 and 2; 1 was a TypeError from deep inside.
    for layers in ("12", 1, [0.5]):
        with pytest.raises(ExpnetError, match=r"layers must be a list of layer indices such as \[4, 5\]"):
            get_explainer("attention_shapley_mutual", layers=layers).explain(tiny_classifier, TEXTS)
    import numpy as np

    assert get_explainer("attention_shapley_mutual", layers=(np.int64(0),)).explain(tiny_classifier, TEXTS)
