"""Every mode computes the same numbers: the article's port-agreement result, as a test."""

from __future__ import annotations

import numpy as np
import pytest

from eagerbench.frameworks.modes import all_modes
from tests.conftest import build, rel_diff, run_steps
from workloads import autoencoder, lbfgs_reference, mnist

MODES = [m.name for m in all_modes().values() if m.installed() and "cpu" in m.devices]
LBFGS = {"history": 3, "batch": 300}
STEPS = 8    # past the history size, so the ring buffer wraps


@pytest.fixture(scope="module")
def lbfgs_runs():
    out = {}
    for mode in MODES:
        B, task = build(mode, "lbfgs", LBFGS, dtype="float64")
        seen, check, (st, _) = run_steps(B, task, STEPS)
        out[mode] = ([s["loss"] for s in seen], B.to_numpy(st["x"]))
    return out


@pytest.mark.parametrize("mode", MODES[1:])
def test_lbfgs_losses_and_weights_agree_with_torch_in_float64(lbfgs_runs, mode):
    losses, x = lbfgs_runs[mode]
    ref_losses, ref_x = lbfgs_runs["torch"]
    assert len(losses) == STEPS
    assert rel_diff(losses, ref_losses) < 1e-8
    assert np.max(np.abs(x - ref_x)) < 1e-8 * np.max(np.abs(ref_x))


def test_lbfgs_loss_decreases(lbfgs_runs):
    losses, _ = lbfgs_runs["torch"]
    assert losses[-1] < 0.5 * losses[0]


def test_lbfgs_follows_torch_optim_lbfgs(lbfgs_runs):
    """The port is torch.optim.LBFGS's algorithm (no line search, lr 1), not a cousin."""
    losses, x = lbfgs_reference.run(mnist.standin(LBFGS["batch"], 1), autoencoder.init_weights(1),
                                    LBFGS["history"], STEPS)
    ours, our_x = lbfgs_runs["torch"]
    assert len(losses) == STEPS
    assert rel_diff(ours, losses) < 1e-8
    assert np.max(np.abs(our_x - x)) < 1e-8 * np.max(np.abs(x))


def test_first_iteration_step_length_is_min_one_over_l1_norm():
    B, task = build("torch", "lbfgs", LBFGS, dtype="float64")
    g = B.to_numpy(task.st["g"])
    st, _ = task.step(task.st, task.mem)
    assert B.to_float(st["t"]) == pytest.approx(min(1.0, 1.0 / np.abs(g).sum()), rel=1e-12)


@pytest.mark.parametrize("workload,params,key", [
    ("matmul", {"size": 64}, "c_sum"), ("elementwise", {"size": 1000, "ops": 7}, "b0")])
def test_simple_workloads_agree_across_modes(workload, params, key):
    values = {}
    for mode in MODES:
        B, task = build(mode, workload, params, dtype="float32")
        _, check, _ = run_steps(B, task, 3)
        values[mode] = check[key]
    for mode in MODES:
        assert values[mode] == pytest.approx(values["torch"], rel=1e-4), mode
    if workload == "elementwise":   # b += a, 7 adds per step, 3 steps, a = 1/1024 exactly
        assert values["torch"] == 3 * 7 / 1024


def test_rounding_noise_in_a_negligible_tensor_is_not_a_disagreement():
    """A MobileNet step's batch-norm betas (norm 1e-9, beside weights of norm 27) differed by
    43% between torch and torch-compile: rounding noise, once called DISAGREES. A difference
    in a value that matters is still one."""
    from eagerbench.report.cellstats import relative_difference

    eager = {"loss": 2.30, "conv_norm": 27.1, "bn_beta_norm": 1.34e-9}
    compiled = {"loss": 2.30, "conv_norm": 27.1, "bn_beta_norm": 0.77e-9}
    assert relative_difference(eager, compiled) < 1e-3
    assert relative_difference(eager, {**compiled, "loss": 2.40}) > 0.04
    small = {**eager, "bias_norm": 1e-3}
    assert relative_difference(small, {**compiled, "bias_norm": 1.1e-3}) > 0.09   # it counts
