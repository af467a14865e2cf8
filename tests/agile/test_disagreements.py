"""Mistakes caught (issue 77): a wrong answer among the reviews is learned silently unless learn says so. With two of
fourteen answers flipped on the shared store (a siren window answered no, an alarm beep answered yes), learn counts
the reviewed windows the head disagrees with out of fold, names the command that lists them, and
``--disagreements K`` lists both flipped answers among the first three (the other: the second alarm beep, which the
flipped one taught the head to call a siren)."""

from __future__ import annotations

import json

import numpy as np

import small_store
from envsound.agile.learn import learn_verdicts
from envsound.inference.embeddings import EmbeddingsStore

TARGET = small_store.TARGET
archive, db, windows = small_store.archive, small_store.db, small_store.windows  # the shared store's fixtures


def flipped_reviews(windows, *, yes: int = 8, no: int = 8, flip: bool = True):
    """``yes`` windows of the target's files and ``no`` of others, each the first of its file, the first of each side
    answered wrongly (``flip``); the two wrong windows' ids."""
    firsts = windows.groupby("file", sort=False).head(1)
    positive = firsts[firsts["kind"] == TARGET]["window"].to_numpy()[:yes]
    negative = firsts[firsts["kind"] != TARGET]["window"].to_numpy()[:no]
    said = np.array(["yes"] * len(positive) + ["no"] * len(negative))
    if flip:
        said[0], said[len(positive)] = "no", "yes"  # a siren answered no, another sound answered yes
    return (np.r_[positive, negative], said), {int(positive[0]), int(negative[0])}


def test_two_flipped_answers_are_among_the_first_three_disagreements_listed(tmp_path, db, windows):
    verdicts, wrong = flipped_reviews(windows)
    result = learn_verdicts(EmbeddingsStore(db), {TARGET: verdicts}, out=tmp_path, disagreements=5)
    (only,) = result.labels
    assert only.calibration.calibrated  # 6 yes (the store's siren files) and 8 no
    assert wrong <= {d.window for d in only.disagreements[:3]} and len(only.disagreements) == 5
    first = only.disagreements[0]
    assert first.window in wrong and (first.verdict, first.disagrees) == ("no", True) and only.disagreeing >= 1
    scores = [abs((d.verdict == "yes") - d.score) for d in only.disagreements]
    assert scores == sorted(scores, reverse=True)  # farthest from its verdict first
    line = only.disagreement_line()
    assert line.startswith(f"{TARGET}: {only.disagreeing} reviewed windows disagree with the head out of fold")
    assert line in result.lines() and f"--disagreements {max(5, only.disagreeing)}" in line


def test_right_answers_give_no_disagreement_line_and_none_listed_by_default(tmp_path, db, windows):
    verdicts, _ = flipped_reviews(windows, flip=False)
    result = learn_verdicts(EmbeddingsStore(db), {TARGET: verdicts}, out=tmp_path)
    (only,) = result.labels
    assert (only.disagreeing, only.disagreements, only.disagreement_line()) == (0, [], "")


def test_cli_learn_lists_the_disagreements_as_a_table_and_as_json(tmp_path, db, windows, capsys):
    from envsound.agile.labels import label
    from envsound.cli.main import main

    (ids, said), wrong = flipped_reviews(windows)
    rows = EmbeddingsStore(db).rows(ids)
    sheet = tmp_path / "reviews.csv"
    sheet.write_text("window,file,start,end,label,verdict\n" + "".join(
        f"{row['window']},{row['file']},{row['start']},{row['end']},{TARGET},{verdict}\n"
        for row, verdict in zip(rows, said)))
    store = tmp_path / "review.sqlite"
    label(db, sheet, store=store)
    capsys.readouterr()
    assert main(["learn", str(db), "--label", TARGET, "--out", str(tmp_path / "m"), "--disagreements", "3",
                 "--store", str(store), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index("reviewed, farthest from their verdicts (out of fold):")
    assert out[at + 1].split()[0] == "window" and len(out) == at + 5
    assert wrong <= {int(line.split()[0]) for line in out[at + 2:at + 5]}
    assert main(["learn", str(db), "--label", TARGET, "--out", str(tmp_path / "m"), "--disagreements", "3",
                 "--store", str(store), "--json", "--quiet"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["kind"] for row in listed] == ["disagreement"] * 3 and wrong <= {row["window"] for row in listed}
