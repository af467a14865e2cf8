"""The runtime choice (envsound.hardware): accelerator, devices, precision and memory format for the machine found."""

import json
import os

import pytest
import torch
from torch import nn

from envsound import hardware
from envsound.errors import ConfigError
from envsound.hardware import cpu_bf16_supported, probe_candidates, resolve_runtime


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


def counting_probe(identity: dict):
    """A real probe of ``tiny_cnn`` that also records which candidates it was asked to time."""
    asked: list = []
    probe = probe_candidates(tiny_cnn, (1, 16, 20), mode="train", batch=4, identity=identity, seconds=0.02)

    def run(candidates, accelerator):
        asked.append(list(candidates))
        return probe(candidates, accelerator)

    return run, asked


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks CUDA on this machine")
def test_auto_on_this_cpu_probes_bf16_only_where_onednn_has_it():
    """The real CPU's branch, whichever it is (the patched tests below take each branch on any CPU)."""
    probe, asked = counting_probe({"name": "this-cpu-real"})
    runtime = resolve_runtime(probe=probe)
    precisions = {p for candidates in asked for p, _ in candidates}
    assert runtime.accelerator == "cpu" and asked
    if cpu_bf16_supported():
        assert precisions == {"32", "bf16-mixed"} and runtime.reason.startswith("probe:")
    else:
        assert precisions == {"32"} and runtime.precision == "32" and "oneDNN reports no bf16" in runtime.reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks CUDA on this machine")
def test_auto_without_bf16_support_picks_fp32(monkeypatch):
    """The same decision on any CPU: where oneDNN says no bf16, bf16 is never a candidate."""
    monkeypatch.setattr(hardware, "cpu_bf16_supported", lambda: False)
    probe, asked = counting_probe({"name": "no-bf16-patched"})
    runtime = resolve_runtime(probe=probe)
    assert runtime.precision == "32"
    assert {c for candidates in asked for c in candidates} <= {("32", True), ("32", False)}


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks CUDA on this machine")
def test_auto_with_bf16_support_probes_both_and_takes_the_faster(monkeypatch):
    """Where oneDNN says bf16 (patched here: emulated bf16 on a CPU without it, slower but real), both are timed."""
    monkeypatch.setattr(hardware, "cpu_bf16_supported", lambda: True)
    probe, asked = counting_probe({"name": "bf16-patched"})
    runtime = resolve_runtime(probe=probe)
    precisions = {p for candidates in asked for p, _ in candidates}
    assert precisions == {"32", "bf16-mixed"} and runtime.reason.startswith("probe:")


def test_a_probe_is_paid_once_then_read_from_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVSOUND_PROBE_CACHE", str(tmp_path / "probes.json"))
    built = []

    def build():
        built.append(1)
        return tiny_cnn()

    probe = probe_candidates(build, (1, 16, 20), mode="infer", batch=1, identity={"name": "cached"}, seconds=0.01)
    first = probe([("32", True), ("32", False)], "cpu")
    n_built = len(built)
    assert n_built == 2 and set(first) == {("32", True), ("32", False)} and all(t > 0 for t in first.values())
    assert probe([("32", True), ("32", False)], "cpu") == first and len(built) == n_built  # nothing timed again
    entry = next(iter(json.loads((tmp_path / "probes.json").read_text()).values()))
    assert entry["cpu"] == hardware.cpu_model() and entry["torch"] == str(torch.__version__)


def test_settings_that_need_no_probe_are_taken_as_given():
    runtime = resolve_runtime(accelerator="cpu", precision="32", channels_last="false",
                              probe=lambda c, a: pytest.fail("nothing to choose between"))
    assert (runtime.accelerator, runtime.precision, runtime.channels_last) == ("cpu", "32", False)
    assert runtime.reason == "as configured"
    waveform = resolve_runtime(accelerator="cpu", precision="32", image_input=False,
                               probe=lambda c, a: pytest.fail("channels-last does not apply to waveforms"))
    assert waveform.channels_last is False


def test_explicit_bf16_on_a_cpu_without_it_warns_how_much_slower(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_bf16_supported", lambda: False)
    with pytest.warns(UserWarning, match=r"9-15x slower than precision 32"):
        runtime = resolve_runtime(accelerator="cpu", precision="bf16-mixed", channels_last="true")
    assert runtime.precision == "bf16-mixed"  # overridable: the user's choice stands


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("accelerator", ["cuda", "gpu"])
def test_an_accelerator_the_machine_lacks_is_a_config_error_naming_what_it_has(accelerator):
    with pytest.raises(ConfigError, match=r"available: .*cpu"):
        resolve_runtime(accelerator=accelerator)


def test_more_devices_than_cores_is_a_config_error():
    cores = os.cpu_count() or 1
    with pytest.raises(ConfigError, match=rf"runtime.devices={cores + 1} but this machine has {cores} CPU core"):
        resolve_runtime(accelerator="cpu", devices=cores + 1)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_the_usable_cores_are_the_process_affinity_not_the_machine():
    """Under taskset, a container's cpuset or a batch scheduler, the cores are the process's affinity, not the
    machine's: training sets torch's threads to these (more contend for the same cores)."""
    import subprocess
    import sys

    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); import torch; "
            "from envsound.hardware import usable_cores; print(usable_cores())")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ran.stdout.split() == ["1"], ran.stderr
    assert hardware.usable_cores() == len(os.sched_getaffinity(0))


def test_sixteen_bit_on_a_cpu_is_refused_naming_the_setting_the_user_gave():
    with pytest.raises(ConfigError, match="^runtime.precision='16-mixed' is for GPUs"):
        resolve_runtime(accelerator="cpu", precision="16-mixed")
    with pytest.raises(ConfigError, match="^--precision '16-mixed' is for GPUs"):  # predict / serve
        resolve_runtime(accelerator="cpu", precision="16-mixed", setting="--device")


def test_no_probe_environment_switch_takes_the_first_candidate(monkeypatch):
    monkeypatch.setenv("ENVSOUND_NO_PROBE", "1")
    runtime = resolve_runtime(accelerator="cpu", probe=lambda c, a: pytest.fail("probing is switched off"))
    assert runtime.precision == "32" and runtime.channels_last is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_probe_compares_reduced_precision_with_fp32():
    probe, asked = counting_probe({"name": "cuda"})
    runtime = resolve_runtime(accelerator="cuda", probe=probe)
    precisions = {p for candidates in asked for p, _ in candidates}
    assert runtime.accelerator == "cuda" and "32" in precisions and len(precisions) == 2


def test_other_processes_of_a_machine_wait_for_local_rank_0s_probe_answer(tmp_path, monkeypatch):
    """Under torchrun every process starts at once: only local rank 0 probes (they would compete for the CPU); the
    others wait until its answer is in the probe cache."""
    import shutil
    import threading
    import time

    built = []

    def probe():
        def build():
            built.append(1)
            return tiny_cnn()

        return probe_candidates(build, (1, 16, 20), mode="infer", batch=1, identity={"name": "ranks"}, seconds=0.01)

    monkeypatch.setenv("ENVSOUND_PROBE_CACHE", str(tmp_path / "rank0.json"))
    answer = probe()([("32", True), ("32", False)], "cpu")  # what local rank 0 finds
    n_built = len(built)
    monkeypatch.setenv("ENVSOUND_PROBE_CACHE", str(tmp_path / "shared.json"))
    monkeypatch.setenv("LOCAL_RANK", "1")
    writer = threading.Timer(0.6, shutil.copy, (tmp_path / "rank0.json", tmp_path / "shared.json"))
    writer.start()
    start = time.monotonic()
    again = probe()([("32", True), ("32", False)], "cpu")
    writer.join()
    assert again == answer and len(built) == n_built and time.monotonic() - start >= 0.5


def test_waveform_models_that_make_images_are_probed_in_both_memory_formats(monkeypatch):
    """EnvNet-v2 reshapes its waveform into an image for 2-D convolutions, where channels-last can be faster: its
    training probe times both layouts. A 1-D network has nothing the layout would change."""
    from envsound.config.files import bare_config
    from envsound.models.clip import build_network
    from envsound.models.registry import model_preset
    from envsound.training.loop.fit import training_runtime

    assert not hardware.has_image_layers(nn.Sequential(nn.Conv1d(1, 8, 3), nn.Conv1d(8, 8, 3)))
    assert not hardware.has_image_layers(nn.Conv2d(1, 8, 3))  # one input channel: no layout to choose
    config = bare_config(preset=model_preset("envnet2"), model="envnet2", overrides=[
        "model.filters=10", "features.sample_rate=16000", "features.window_seconds=1.5", "train.batch_size=2",
        "runtime.precision=32"])
    asked = []
    real = hardware.resolve_runtime

    def recording(**kwargs):
        asked.append(kwargs["image_input"])
        return real(**{**kwargs, "probe": None})  # what it was asked is the point here, not the timing

    monkeypatch.setattr("envsound.training.loop.fit.resolve_runtime", recording)
    training_runtime(config, lambda: build_network(config, 3))
    assert asked == [True] and hardware.has_image_layers(build_network(config, 3))
    for name in ("envnet2", "aclnet"):  # a builder is asked on the meta device: no weights made
        preset = bare_config(preset=model_preset(name), model=name)
        assert hardware.has_image_layers(lambda: build_network(preset, 10))


def test_freed_memory_is_kept_for_the_next_allocation():
    """glibc hands blocks over 32 MB back to the kernel on free, so a training step faulted every page of its
    large activations in again (690,000 faults a step for EnvNet-v2). Once kept, a repeated step reuses the pages of
    the step before; released (after a probe), they go back to the kernel."""
    import resource
    from pathlib import Path

    if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc") or os.environ.get("ENVSOUND_KEEP_HEAP") == "0":
        pytest.skip("glibc's mallopt only, and not turned off")
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp.exists() and "[always]" in thp.read_text():
        pytest.skip("transparent huge pages for every block: handed-back memory faults once per 2 MB too")
    assert hardware.keep_freed_memory() and hardware.keep_freed_memory()  # in force, and idempotent

    def faults_of_a_step() -> int:  # two activations of 64 and 48 MB, a small result, all freed
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        x, y = torch.ones(64 * 2**20, dtype=torch.uint8), torch.ones(48 * 2**20, dtype=torch.uint8)
        assert int(x[:4].sum() + y[-4:].sum()) == 8
        del x, y
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    pages = 112 * 2**20 // resource.getpagesize()
    faults = [faults_of_a_step() for _ in range(8)]  # the heap grows over the first steps, then is reused
    assert min(faults[4:]) < pages // 10, f"page faults per step: {faults}, {pages} pages a step"

    def resident() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()

    block = torch.ones(128 * 2**20, dtype=torch.uint8)
    del block  # kept by the heap
    held = resident()
    hardware.release_freed_memory()
    assert held - resident() > 64 * 2**20
