"""Highlight colours: each text's top words stand out, whatever the explainer's scale."""

import numpy as np

from expnet.report.html import display_strength


def test_unsigned_scores_are_coloured_from_the_median_up():
    # ExpNet-like probabilities: every word near 0.5, one clearly above.
    strength = display_strength(np.array([0.45, 0.50, 0.48, 0.60, 0.52, np.nan]))
    assert strength[3] == 1.0  # the top word: full colour
    assert (strength[[0, 2]] == 0).all() and strength[1] == 0  # at or below the median: clear
    assert 0 < strength[4] < 0.5 and np.isnan(strength[5])


def test_signed_scores_keep_their_zero_and_sign():
    strength = display_strength(np.array([-2.0, 0.0, 1.0]))
    assert strength.tolist() == [-1.0, 0.0, 0.5]


def test_constant_scores_paint_nothing():
    assert display_strength(np.array([0.3, 0.3, 0.3])).tolist() == [0.0, 0.0, 0.0]


def test_an_unscored_words_tooltip_says_why():
    from expnet.explainers.base import Explanation
    from expnet.report.html import highlight

    # Word 1 has no subword token (zero-width), word 2 lies beyond the cut, word 3 is scored NaN.
    explanation = Explanation(
        ["good", "\u200b", "film", "x"], np.array([0.5, np.nan, np.nan, np.nan]), np.array([True, False, False, True]),
        0, 0, np.array([0.6, 0.4]), "random", cut=np.array([False, False, True, False]),
    )
    titles = [part.split('"')[0] for part in highlight(explanation).split('title="')[1:]]
    assert titles == ["0.5", "not scored (no subword tokens)", "not scored (truncated)", "no score"]


def test_a_difference_that_rounds_to_zero_has_no_minus_sign():
    from expnet.report.format import difference, number

    assert number(-0.0004) == "0.000" and number(-0.0123) == "-0.012"
    assert difference(-0.0004) == "+0.000" and difference(-0.0123) == "-0.012" and difference(0.02) == "+0.020"
    assert difference(None) == "-"


def test_an_interval_that_excludes_zero_never_reads_as_holding_it():
    # [0.000, 0.006] once stood for a win whose low bound was 0.0004.
    from expnet.report.format import interval

    assert interval(0.0004, 0.0061) == "[+0.0004, +0.006]"
    assert interval(-0.000042, 0.0123) == "[-4.2e-05, +0.012]"
    assert interval(0.0, 0.2) == "[+0.000, +0.200]" and interval(-0.0312, -0.0101) == "[-0.031, -0.010]"
    assert interval(None, 0.1) == "[n/a]" and interval(float("nan"), 0.1) == "[n/a]"


def test_an_evaluation_page_names_each_explanation_as_its_table_row_does():
    # Two ExpNet folders both explain as "expnet"; the page once labelled both blocks so.
    from expnet.data.records import RationaleExample
    from expnet.evaluation import EvaluationResult, ExplainerRun
    from expnet.explainers.base import Explanation
    from expnet.report.pages import evaluation_page

    explanation = Explanation(["good", "film"], np.array([0.7, 0.2]), np.ones(2, bool), 0, 0, np.array([0.6, 0.4]), "expnet", ("neg", "pos"))
    runs = {name: ExplainerRun(name, [explanation], 1.0) for name in ("expnet", "runs/my-expnet")}
    result = EvaluationResult(1, 1, 1.0, 10.0, 0.5, scores={}, runs=runs)
    example = RationaleExample("x", "t", ["good", "film"], 0, ("neg", "pos"), rationales=[[1, 0]])
    page = evaluation_page(result, [example], "majority", "t", 1)
    assert page.count('<div class="meta">expnet &middot;') == 1 and page.count('<div class="meta">runs/my-expnet &middot;') == 1


def test_a_tooltip_keeps_the_digits_of_a_gradient_sized_score():
    from expnet.explainers.base import Explanation
    from expnet.report.html import highlight

    explanation = Explanation(["tiny", "score"], np.array([1.234e-5, 2.0e-6]), np.array([True, True]), 0, 0, np.array([0.6, 0.4]), "saliency")
    titles = [part.split('"')[0] for part in highlight(explanation).split('title="')[1:]]
    assert titles == ["1.23e-05", "2e-06"]
