"""The one-cycle schedule on every run length, short fine-tunes included."""

import pytest
import torch

from envsound.config import TrainConfig
from envsound.training.loop.optim import configure_optimization


@pytest.mark.parametrize("total_steps", [1, 2, 3, 10, 20, 40, 100])
@pytest.mark.parametrize("warmup_fraction", [0.05, 0.1, 0.5])
def test_one_cycle_schedule_builds_and_steps_for_any_number_of_steps(total_steps, warmup_fraction):
    params = [torch.nn.Parameter(torch.zeros(2))]
    train = TrainConfig(lr=0.01, warmup_fraction=warmup_fraction)
    setup = configure_optimization(params, train, total_steps=total_steps)
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    rates = []
    for step in range(total_steps):
        optimizer.step()
        rates.append(optimizer.param_groups[0]["lr"])
        if step < total_steps - 1:  # OneCycleLR refuses a step past total_steps
            scheduler.step()
    assert max(rates) <= 0.01 + 1e-12 and all(rate > 0 for rate in rates)


def test_step_schedule_multiplies_the_rate_after_each_milestone_epoch():
    from envsound.config.files import bare_config

    train = bare_config(overrides=["train.optimizer=sgd", "train.lr=0.1", "train.scheduler=step",
                                   "train.lr_milestones=2,4", "train.lr_gamma=0.5"]).train
    setup = configure_optimization([torch.nn.Parameter(torch.zeros(2))], train, total_steps=100)
    optimizer, schedule = setup["optimizer"], setup["lr_scheduler"]
    assert schedule["interval"] == "epoch" and optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.9
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule["scheduler"].step()
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


@pytest.mark.parametrize("value", ["4,2", "0", "2,2"])
def test_milestones_must_be_increasing_epochs(value):
    from envsound.config.files import bare_config
    from envsound.errors import ConfigError

    with pytest.raises(ConfigError, match="train.lr_milestones"):
        bare_config(overrides=[f"train.lr_milestones={value}"])


def test_cosine_schedule_decays_from_the_rate_to_zero_without_warm_up():
    train = TrainConfig(lr=0.01, scheduler="cosine", optimizer="adam")
    setup = configure_optimization([torch.nn.Parameter(torch.zeros(2))], train, total_steps=4)
    optimizer, schedule = setup["optimizer"], setup["lr_scheduler"]
    assert schedule["interval"] == "step"
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule["scheduler"].step()
    assert rates == pytest.approx([0.01, 0.01 * (1 + 2 ** -0.5) / 2, 0.005, 0.01 * (1 - 2 ** -0.5) / 2, 0.0], abs=1e-9)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_cpu_optimisers_are_fused_and_update_as_the_unfused_ones(optimizer, monkeypatch):
    """The fused kernels (one pass per tensor; 6x faster for piczak's SGD step) must give the same update."""
    from envsound.training.loop import optim

    train = TrainConfig(optimizer=optimizer, lr=0.01, weight_decay=1e-3, scheduler="none")
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(3)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(3)]

    def run(fused: bool) -> list[torch.Tensor]:
        params = [torch.nn.Parameter(p.clone()) for p in start]
        opt = configure_optimization([{"params": params, "lr": 0.01}], train, total_steps=3)
        assert bool(opt.defaults.get("fused")) is fused
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g.clone()
            opt.step()
        return [p.detach() for p in params]

    fused = run(True)
    monkeypatch.setattr(optim, "_fusable", lambda params: False)
    unfused = run(False)
    for a, b, before in zip(fused, unfused, start):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        assert not torch.allclose(a, before)  # the steps moved the weights


def test_a_resumed_unfused_optimiser_state_stays_fused():
    """Runs saved before the fused kernels resume fused: the saved groups' ``fused: None`` must not switch the step
    back to the unfused path, which fails under a 16-bit grad scaler that the fused optimiser told to skip
    unscaling."""
    train = TrainConfig(optimizer="sgd", lr=0.01, scheduler="none")
    params = [torch.nn.Parameter(torch.randn(4))]
    old = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True)
    params[0].grad = torch.randn(4)
    old.step()
    saved = old.state_dict()
    assert saved["param_groups"][0]["fused"] is None
    resumed = configure_optimization(params, train, total_steps=3)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["fused"] is True
    torch.testing.assert_close(resumed.state[params[0]]["momentum_buffer"], old.state[params[0]]["momentum_buffer"])
    scaler = torch.amp.GradScaler("cpu")
    params[0].grad = None
    scaler.scale((params[0] * torch.arange(4.0)).sum()).backward()
    before = params[0].detach().clone()
    scaler.step(resumed)  # the fused step takes the scaler's arguments (the unfused one raises on them)
    assert not torch.equal(params[0].detach(), before)


def test_parameters_off_the_cpu_and_cuda_are_not_fused():
    from envsound.training.loop.optim import _fusable

    assert _fusable([torch.nn.Parameter(torch.zeros(2))])
    assert not _fusable([torch.nn.Parameter(torch.zeros(2, device="meta"))])
    assert not _fusable([{"params": []}])
