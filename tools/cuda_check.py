"""A short check of the CUDA paths on a GPU machine: the runtime probe (auto precision on the GPU, within its budget),
envsound.train / evaluate / cross_validate from one import, a frozen AudioSet-format trunk (random weights) probed,
and predict of the trained model. Prints what each chose and took. Run from the repository root, with soundfile,
soxr and miniaudio installed beside torch:

    python3 tools/cuda_check.py OUT_DIR
"""
import logging, sys, time, json
from pathlib import Path
sys.path[:0] = ["src", "tests"]
logging.basicConfig(level=logging.INFO, format="%(message)s")
import numpy as np, soundfile as sf, torch
import envsound
from envsound.data.synthetic import generate_synthetic
print("torch", torch.__version__, torch.cuda.get_device_name(0))
out = Path(sys.argv[1])
root = generate_synthetic(out / "syn", clips_per_class_per_fold=2, seconds=1.5, seed=7)
tiny = {"features.sample_rate": 16000, "features.n_fft": 512, "features.hop_length": 256, "features.n_mels": 32,
        "features.window_seconds": 1.0, "features.eval_hop_seconds": 0.5, "model.filters": 8,
        "train.max_epochs": 5, "augment.copies": 0}
t = time.perf_counter()
data = envsound.dataset("synthetic", root=root)
run = envsound.train(data.with_folds([1, 2, 3, 4]), out=out / "run", settings=tiny)
print("train", round(time.perf_counter() - t, 1), "s", run.metrics, run.model_path)
print("runtime", torch.load(run.model_path, weights_only=True)["meta"]["runtime"])
test = envsound.evaluate(run.model_path, data.with_folds([5]))
print("evaluate on cuda: accuracy", test.metrics["accuracy"], "leakage", test.metrics.get("leakage"))
from test_efficientat import release_state, write_labels
torch.save(release_state(0.4), out / "mn04_as_mAP_432.pt"); write_labels(out)
t = time.perf_counter()
cv = envsound.cross_validate(data.with_folds([1, 2]), init=out / "mn04_as_mAP_432.pt", out=out / "cv")
print("cv from a release file", round(time.perf_counter() - t, 1), "s", cv.metrics["mean_accuracy"])
model = envsound.load_model(run.model_path)
wav = sorted(Path(root).rglob("*.wav"))[0]
print("predict", model.predict(wav, top_k=2).top)
