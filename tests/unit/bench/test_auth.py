"""The auth benchmark's pure helpers: the load client's token file, the ratio of two servers."""

from __future__ import annotations

import pytest

from bench.auth import bearer_lines, paired_ratio


def test_bearer_lines_gives_every_token_a_header_line_of_its_own():
    assert bearer_lines(["a.b.c", "d.e.f"]) == ("Authorization: Bearer a.b.c\n"
                                                "Authorization: Bearer d.e.f\n")


def test_paired_ratio_is_the_median_of_the_rounds_own_ratios():
    # Round ratios 1.5, 0.83 and 3.0; the ratio of the two medians would be 150 / 120 = 1.25.
    assert paired_ratio([150, 100, 900], [100, 120, 300]) == pytest.approx(1.5)


def test_paired_ratio_refuses_rounds_that_do_not_pair():
    with pytest.raises(ValueError, match="per round"):
        paired_ratio([1.0, 2.0], [1.0])
