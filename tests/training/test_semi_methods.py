"""Each semi-supervised method's unlabelled term on a small batch: it is non-zero, it reaches the weights, and the
pieces it is made of (pseudo-label mask, distribution alignment, sharpening, (Re)MixMatch's mixing and losses) do
what their papers say."""

import pytest
import torch

from conftest import TINY_OVERRIDES
from envsound.augment.batch import mixup
from envsound.config.files import bare_config
from envsound.errors import ConfigError
from envsound.models.clip import window_shape
from envsound.task import Task
from envsound.training.semi import SemiModule
from envsound.training.semi.losses import (PRE_MIXUP_SHARE, DistributionAlignment, SelfAdaptiveThreshold,
                                           mixmatch_loss, pseudo_label_loss, remixmatch_loss, sharpen)

N_CLASSES = 4
# the steps run outside a Trainer, where SemiModule's self.log() has nowhere to log
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


def _module(method: str, *extra: str) -> SemiModule:
    torch.manual_seed(0)
    config = bare_config(overrides=TINY_OVERRIDES + (f"semi.method={method}", "model.filters=4", *extra))
    return SemiModule.from_config(config, N_CLASSES)


def _batch(module: SemiModule, n_labelled: int = 4, n_unlabelled: int = 8):
    shape = window_shape(bare_config(overrides=TINY_OVERRIDES).features)  # every method's windows alike
    x_l = torch.randn(n_labelled, *shape) * 10 - 40  # dB-like log-mels
    y_l = torch.eye(N_CLASSES)[torch.arange(n_labelled) % N_CLASSES]
    return (x_l, y_l), torch.randn(n_unlabelled, *shape) * 10 - 40


@pytest.mark.parametrize("method", ["fixmatch", "mixmatch", "remixmatch", "mean_teacher"])
def test_the_unlabelled_term_is_non_zero_and_trains_the_network(method):
    # threshold 0.01: every window's top probability is above it, so FixMatch's mask is fully open
    module = _module(method, "semi.fixmatch.threshold=0.01", "semi.rampup=0")
    module.train()
    labelled, x_u = _batch(module)
    step = {"fixmatch": module._fixmatch, "mixmatch": module._mixmatch, "remixmatch": module._remixmatch,
            "mean_teacher": module._mean_teacher}[method]
    sup, unsup, weight, n_l = step(labelled, x_u)
    assert n_l == 4 and float(sup.detach()) > 0 and float(unsup.detach()) > 0
    assert weight == module.settings.semi.unlabelled_weight
    unsup.backward()
    grads = [p.grad.abs().sum() for p in module.model.parameters() if p.grad is not None]
    assert grads and float(sum(grads)) > 0  # the unlabelled term alone moves the weights


@pytest.mark.parametrize("method", ["mixmatch", "remixmatch", "mean_teacher"])
def test_a_ramped_method_steps_outside_a_trainer_at_full_weight(method):
    # regression: with semi.rampup > 0 the ramp read trainer.estimated_stepping_batches and a step outside a
    # Trainer (benchmarks/bench_semi.py) raised RuntimeError
    module = _module(method, "semi.rampup=0.4")
    module.train()
    _, _, weight, _ = getattr(module, f"_{method}")(*_batch(module))
    assert weight == module.settings.semi.unlabelled_weight


def test_fixmatch_mask_opens_only_above_the_threshold():
    module = _module("fixmatch", "semi.fixmatch.threshold=0.999", "semi.distribution_alignment=false")
    module.train()
    _, unsup, _, _ = module._fixmatch(*_batch(module))
    assert float(unsup.detach()) == 0.0  # an untrained network is nowhere near 0.999 confident: no pseudo-label
    probs = torch.tensor([[0.97, 0.01, 0.01, 0.01], [0.4, 0.3, 0.2, 0.1]])
    strong = torch.zeros(2, 4)
    loss, mask = pseudo_label_loss(probs, strong, threshold=0.95)
    assert mask.tolist() == [1.0, 0.0]
    assert float(loss) == pytest.approx(float(torch.log(torch.tensor(4.0))) / 2)  # CE of a flat guess, halved


def test_the_adaptive_threshold_follows_the_models_confidence_and_is_lower_for_rare_classes():
    adaptive = SelfAdaptiveThreshold(N_CLASSES, momentum=0.0)  # momentum 0: the averages are this batch's
    probs = torch.tensor([[0.9, 0.05, 0.03, 0.02]] * 3 + [[0.1, 0.6, 0.2, 0.1]])
    thresholds = adaptive(probs)
    confidence = (0.9 * 3 + 0.6) / 4  # the mean top probability
    class_probs = probs.mean(dim=0)
    assert float(adaptive.confidence) == pytest.approx(confidence)
    expected_rare = confidence * float(class_probs[1] / class_probs[0])
    assert thresholds.tolist() == pytest.approx([confidence] * 3 + [expected_rare])
    _, mask = pseudo_label_loss(probs, torch.zeros(4, N_CLASSES), threshold=thresholds)
    # a fixed 0.95 takes none of these; here the class-0 windows above the mean confidence and the class-1 window
    # above its class's lower threshold (0.6 >= about 0.22) all get pseudo-labels
    assert mask.tolist() == [1.0, 1.0, 1.0, 1.0]
    slow = SelfAdaptiveThreshold(N_CLASSES, momentum=0.99)
    assert float(slow(probs).max()) < 0.26  # starts at 1 / K and rises with the model's confidence


def test_fixmatch_with_the_adaptive_threshold_opens_the_mask_of_an_untrained_network():
    module = _module("fixmatch", "semi.fixmatch.threshold_mode=adaptive", "semi.distribution_alignment=false")
    module.train()
    _, unsup, _, _ = module._fixmatch(*_batch(module))
    assert float(unsup.detach()) > 0  # the fixed 0.95 gives 0 here (test above); 1 / K does not
    assert 0.24 < float(module.adaptive_threshold.confidence) < 1


def test_the_adaptive_threshold_is_single_label_only():
    config = bare_config(overrides=TINY_OVERRIDES + ("semi.method=fixmatch",
                                                     "semi.fixmatch.threshold_mode=adaptive"))
    with pytest.raises(ConfigError, match="threshold_mode=adaptive is for single-label"):
        SemiModule.from_config(config, N_CLASSES, task=Task("multi_label"))
    with pytest.raises(ConfigError, match="semi.fixmatch.threshold_mode"):
        bare_config(overrides=TINY_OVERRIDES + ("semi.fixmatch.threshold_mode=freematch",))


def test_distribution_alignment_spreads_guesses_that_crowd_into_one_class():
    align = DistributionAlignment(N_CLASSES, momentum=0.0)  # momentum 0: the marginals are this batch's
    crowded = torch.tensor([[0.7, 0.1, 0.1, 0.1]] * 3 + [[0.1, 0.7, 0.1, 0.1]])
    balanced = torch.eye(N_CLASSES)
    aligned = align(crowded, balanced)
    assert torch.allclose(aligned.sum(dim=1), torch.ones(4))
    assert aligned[:, 0].mean() < crowded[:, 0].mean()  # the over-predicted class loses mass
    assert aligned.argmax(dim=1).tolist() == [0, 0, 0, 1]  # a confident enough guess keeps its class
    assert torch.allclose(align.p_labelled, torch.full((N_CLASSES,), 0.25))


def test_sharpen_mix_and_the_mixmatch_loss():
    p = torch.tensor([[0.6, 0.4, 0.0, 0.0]])
    assert torch.allclose(sharpen(p, temperature=0.5), torch.tensor([[0.36, 0.16, 0.0, 0.0]]) / 0.52, atol=1e-6)
    assert torch.allclose(sharpen(p, temperature=1.0), p, atol=1e-6)
    torch.manual_seed(1)
    x, y = torch.randn(6, 1, 3, 5), torch.eye(N_CLASSES)[torch.tensor([0, 1, 2, 3, 0, 1])]
    x_mixed, y_mixed = mixup(x, y, alpha=0.75, per_example=True)
    assert torch.allclose(y_mixed.sum(dim=1), torch.ones(6))
    assert (y_mixed.max(dim=1).values >= 0.5 - 1e-6).all()  # lam >= 0.5: each row keeps most of its own target
    targets = torch.eye(N_CLASSES)[torch.tensor([0, 1, 2])]
    perfect = targets * 50.0  # logits whose softmax is the targets
    sup, unsup = mixmatch_loss(perfect, targets, n_labelled=1)
    assert float(sup) < 1e-6 and float(unsup) < 1e-6
    sup, unsup = mixmatch_loss(torch.zeros(3, N_CLASSES), targets, n_labelled=1)
    assert float(sup) == pytest.approx(float(torch.nn.functional.cross_entropy(torch.zeros(1, 4), targets[:1])))
    assert float(unsup) == pytest.approx(((0.25 - targets[1:]) ** 2).mean().item())


def test_the_remixmatch_loss_is_cross_entropy_on_mixed_rows_plus_a_third_on_one_unmixed_strong_view():
    targets = torch.eye(N_CLASSES)[torch.tensor([0, 1, 2])]
    guess = torch.eye(N_CLASSES)[torch.tensor([3])]
    sup, unsup = remixmatch_loss(targets * 50.0, targets, 1, guess * 50.0, guess)  # every row predicted exactly
    assert float(sup) < 1e-6 and float(unsup) < 1e-6
    flat = float(torch.log(torch.tensor(float(N_CLASSES))))  # cross-entropy of a uniform prediction
    sup, unsup = remixmatch_loss(torch.zeros(3, N_CLASSES), targets, 1, torch.zeros(1, N_CLASSES), guess)
    assert float(sup) == pytest.approx(flat) and float(unsup) == pytest.approx(flat * (1 + PRE_MIXUP_SHARE))
    assert PRE_MIXUP_SHARE * bare_config(overrides=("semi.method=remixmatch",)).semi.unlabelled_weight == 0.5


@pytest.mark.parametrize(("method", "guess_rows"), [("fixmatch", 4 + 8 + 8), ("remixmatch", 4 + 8 + 8)])
def test_guesses_are_made_beside_labelled_and_strong_windows(method, guess_rows):
    # a weak view guessed in a batch of its own is normalised by its own BatchNorm statistics (docs/results.md)
    module = _module(method)
    module.train()
    rows = []
    handle = module.model.register_forward_hook(lambda _m, args, _out: rows.append(len(args[0])))
    getattr(module, f"_{method}")(*_batch(module))
    handle.remove()
    assert rows[0] == guess_rows  # labelled + weak + strong; FixMatch's pass is also its training pass


def test_labelled_windows_are_not_mixed_unless_asked():
    module = _module("fixmatch", "augment.mixup_alpha=0.4")
    (x_l, y_l), _ = _batch(module)
    _, y, _ = module._labelled((x_l, y_l))
    assert torch.equal(y, y_l)  # one-hot targets: FixMatch's confidence can reach the threshold
    mixed = _module("fixmatch", "augment.mixup_alpha=0.4", "semi.labelled_mixup=true")
    _, y, _ = mixed._labelled((x_l, y_l))
    assert not torch.equal(y, y_l)


@pytest.mark.parametrize("method", ["mixmatch", "remixmatch"])
def test_mixmatch_is_single_label_and_lambda_u_follows_the_method(method):
    with pytest.raises(ConfigError, match="single-label"):
        SemiModule.from_config(bare_config(overrides=TINY_OVERRIDES + (f"semi.method={method}",)), 3,
                            task=Task("multi_label"))
    config = bare_config(overrides=TINY_OVERRIDES + ("semi.method=mixmatch",))
    assert config.semi.unlabelled_weight == 75.0
    assert bare_config(overrides=("semi.method=fixmatch",)).semi.unlabelled_weight == 1.0
    assert bare_config(overrides=("semi.method=mixmatch", "semi.lambda_u=2")).semi.unlabelled_weight == 2.0
    with pytest.raises(ConfigError, match="semi.mixmatch.temperature"):
        bare_config(overrides=("semi.mixmatch.temperature=0",)).validate()


def test_fixmatch_with_an_ema_guesser_takes_the_teachers_pseudo_labels():
    # the untrained student is nowhere near 0.999 confident (test above); a teacher sure of class 2 opens the mask
    module = _module("fixmatch", "semi.fixmatch.threshold=0.999", "semi.distribution_alignment=false",
                     "semi.fixmatch.guesser=ema")
    module.train()
    head = [m for m in module.teacher.module.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.bias[2] = 100.0
    labelled, x_u = _batch(module)
    _, unsup, _, _ = module._fixmatch(labelled, x_u)
    assert float(unsup.detach()) > 0
    unsup.backward()
    assert all(p.grad is None for p in module.teacher.parameters())  # the teacher is not trained
    assert sum(float(p.grad.abs().sum()) for p in module.model.parameters() if p.grad is not None) > 0
    for method in ("semi.method=mixmatch", "stages.pseudo_label=mean_teacher"):
        with pytest.raises(ConfigError, match="semi.fixmatch.guesser=ema is for fixmatch"):
            bare_config(overrides=(method, "semi.fixmatch.guesser=ema"))


def test_the_mean_teacher_is_a_warmed_up_average_of_the_student():
    module = _module("mean_teacher", "semi.ema_decay=0.9")
    student = [p.detach().clone() for p in module.model.parameters()]
    module.on_train_batch_end(None, None, 0)  # the first update copies the student (d = 0)
    assert all(torch.equal(t, s) for t, s in zip(module.teacher.module.parameters(), student))
    with torch.no_grad():
        for p in module.model.parameters():
            p.add_(1.0)
    module.on_train_batch_end(None, None, 1)  # d = min(0.9, 1 - 1/2) = 0.5
    for t, s in zip(module.teacher.module.parameters(), student):
        assert torch.allclose(t, s + 0.5)
    assert not any(p.requires_grad for p in module.teacher.module.parameters())
