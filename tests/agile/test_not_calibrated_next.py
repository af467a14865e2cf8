"""A label that is not calibrated says, in its one line, which reviews are missing and the command that offers them
(issue 77, item 1: `rooster: threshold 0.5, not calibrated (19 yes, 1 no reviewed; 5 of each calibrate it)` and
nothing said how to get the `no` answers); the Review page says the same without the command line."""

import numpy as np

from envsound.agile.calibrate import calibrate
from envsound.agile.review import _expected


def identity(x, truth):
    return lambda held: held[:, 0]


def test_not_calibrated_names_the_reviews_missing_and_the_next_command():
    scores = np.r_[np.linspace(0.6, 0.99, 19), 0.1]
    truth = np.r_[np.ones(19, bool), False]
    files = np.array([f"f{i % 4}" for i in range(20)])
    few_no = calibrate("rooster", scores[:, None], truth, files, identity)
    line = few_no.line()
    assert not few_no.calibrated and "\n" not in line
    assert line.startswith("rooster: threshold 0.5, not calibrated (19 yes, 1 no reviewed; 5 of each calibrate it)")
    assert "next: review 4 more no from envsound learn DB --label rooster --out DIR --suggest 10" in line
    assert "Review page (envsound serve DB)" in line
    assert _expected(few_no) == "not calibrated (19 yes, 1 no reviewed; 5 of each calibrate it); review 4 more no " \
                                "to calibrate it"
    both = calibrate("crying baby", scores[:1, None], truth[:1], files[:1], identity)
    assert "review 4 more yes and 5 more no from envsound learn DB --label 'crying baby' --out DIR" in both.line()


def test_reviews_all_in_one_file_ask_for_windows_of_another_file():
    scores = np.linspace(0.05, 0.95, 12)
    truth = scores > 0.5
    one_file = calibrate("rooster", scores[:, None], truth, np.array(["a.wav"] * 12), identity)
    assert not one_file.calibrated and "all in one file" in one_file.line()
    assert "next: review windows of another file from envsound learn DB --label rooster" in one_file.line()
    assert one_file.wanted() == "windows of another file" and one_file.why().startswith("6 yes, 6 no reviewed")
    calibrated = calibrate("rooster", scores[:, None], truth, np.array([f"f{i % 4}" for i in range(12)]), identity)
    assert calibrated.calibrated and (calibrated.why(), calibrated.wanted()) == ("", "")
    assert "next:" not in calibrated.line()
