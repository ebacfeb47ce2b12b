"""Answer extraction on hand-written chains, and the same answer read through a record's metrics."""

from __future__ import annotations

import pytest

from emergentlab import metrics
from emergentlab.tasks.answers import LAST_NUMBER, answer_regex, extract

CHAINS = [
    # (chain, marker rule's answer, last-number rule's answer)
    ("7+5+0=12;8+6+1=15 answer 1512", "1512", "1512"),
    ("We add 12 and 30, which is 42. So the answer is 42.", None, "42"),  # "answer is" is not "answer" + number
    ("answer: 17\nthen more text 3", "17", "3"),
    ("answer 5 ... no wait, answer = -8", "-8", "-8"),  # the last marker wins; the sign belongs to the number
    ("no digits here", None, None),
    ("first 12 then 579", None, "579"),
    # what tiny models trained on traces wrote (tests/test_cot.py): a wrong trace still states an answer, a trace
    # cut off by the generation budget states none
    ("1+2+0=11;2+2+1=1;8+2+1=11 answer 1111", "1111", "1111"),
    ("1=1=1=1+0=1=1=1=1+0=1=1=1+0=1=1+0;1+0=1+0=", None, "0"),
    ("6+2+0=8;2+5+0=7;7+1+0=8 answer 878\n", "878", "878"),
    ("5+2+0=7;3+7+0=10 answer", None, "10"),
]


@pytest.mark.parametrize(("chain", "by_marker", "by_last"), CHAINS)
def test_rules_on_hand_written_chains(chain: str, by_marker: str | None, by_last: str | None) -> None:
    assert extract(chain, answer_regex("answer")) == by_marker
    assert extract(chain, LAST_NUMBER) == by_last


def test_blank_marker_is_refused() -> None:
    with pytest.raises(ValueError, match="non-blank"):
        answer_regex("  ")


def test_exact_match_reads_the_extracted_answer() -> None:
    row = {"generation": "3+6+0=9;2+5+0=7;1+4+0=5 answer 579", "target": "579", "generated": True,
           "output_regex": answer_regex("answer"), "stop_string": None, "targets": ()}
    assert metrics.exact_match(row) == 1.0
    assert metrics.exact_match({**row, "generation": "3+6+0=9;2+5+0=7;1+4+0=5 579"}) == 0.0  # no marker, no answer
