"""experiments/agile_review.py with another network than mn04: its own store beside mn04's (a second --model reused
mn04's archive.db), and the AP over clips that a short-window network is judged on."""

import numpy as np
from test_agile_review import _module  # the script loaded as a module, as its own tests load it


def test_a_second_network_does_not_reuse_mn04s_store():
    module = _module()
    assert module.store_name("efficientat-mn04") == "archive.db"  # the figures' store keeps its name
    names = {module.store_name(m) for m in ("efficientat-mn04", "yamnet", "birdnet-v2.4")}
    assert names == {"archive.db", "archive-yamnet.db", "archive-birdnet-v2.4.db"}


def test_a_clip_is_scored_by_its_best_window():
    module = _module()
    clip_of = np.array([0, 0, 0, 1, 1, 2, 2])
    truth = np.array([True, True, True, False, False, False, False])
    scores = np.array([0.9, 0.1, 0.1, 0.5, 0.2, 0.3, 0.3])  # clip 0: one loud window among silent ones
    assert module.by_clip(scores, truth, clip_of) == 1.0
    assert module.by_clip(np.array([0.2, 0.1, 0.1, 0.5, 0.2, 0.3, 0.3]), truth, clip_of) == 1 / 3


def test_the_loudest_second_is_where_the_burst_is(tmp_path):
    import soundfile as sf

    module = _module()
    wave = np.zeros(5 * 8000)
    wave[2 * 8000:int(2.5 * 8000)] = 0.5  # a half-second burst at 2 s in 5 s of silence
    sf.write(tmp_path / "bark.wav", wave, 8000)
    start, end = module.loudest(str(tmp_path / "bark.wav"))
    assert 1.5 - 0.01 <= start <= 2.0 + 0.01 and end == start + 1.0
