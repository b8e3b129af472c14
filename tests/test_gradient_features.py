"""The article's gradient features: each computes what it claims, in every mode."""

from __future__ import annotations

import numpy as np
import pytest

from eagerbench.execute.local import measure_cell
from eagerbench.execute.runner import Cell, to_records
from eagerbench.frameworks.modes import all_modes, get_mode
from tests.conftest import THREADS, build, rel_diff, run_steps
from workloads import custom_gradient, higher_order, kfac

MODES = [m.name for m in all_modes().values() if m.installed() and "cpu" in m.devices]


def backend(mode: str, dtype: str = "float64"):
    return get_mode(mode).make("cpu", dtype, THREADS)


# --- higher-order -------------------------------------------------------------------------------

def test_closed_form_tanh_derivatives_are_right():
    x = np.linspace(-2, 2, 9)
    t = np.tanh(x)
    assert np.allclose(higher_order.tanh_derivative(1, x), 1 - t**2)
    assert np.allclose(higher_order.tanh_derivative(2, x), -2 * t * (1 - t**2))
    assert np.allclose(higher_order.tanh_derivative(3, x), (1 - t**2) * (6 * t**2 - 2))


@pytest.mark.parametrize("mode", MODES)
def test_nth_derivative_matches_the_closed_form(mode):
    orders = (1, 2, 6) if get_mode(mode).compiled else (1, 2, 3, 4, 5, 6)
    for n in orders:
        B, task = build(mode, "higher-order", {"order": n, "size": 41})
        _, check, (st, _) = run_steps(B, task, 2)
        got = B.to_numpy(st["d"])
        want = higher_order.tanh_derivative(n, higher_order.points(41))
        assert got.shape == want.shape
        assert np.max(np.abs(got - want)) < 1e-9 * max(1.0, np.max(np.abs(want))), (mode, n)


# --- custom-gradient ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_custom_squares_forward_is_exactly_the_square(mode):
    B = backend(mode, "float32")
    r = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    eps = B.asarray(np.ones(100))
    for name, square in custom_gradient.make_squares(B, 1.0).items():
        assert np.array_equal(B.to_numpy(square(B.asarray(r), eps)), r * r), name


@pytest.mark.parametrize("mode", MODES)
def test_noisy_gradient_is_unbiased_and_noisy_and_exact_gradient_is_exact(mode):
    """Many draws through the mode's own (compiled) step: their mean is the true gradient 2r,
    their spread the noise asked for; the exact custom gradient equals the built-in one."""
    B = backend(mode)
    sigma, n, draws = 0.5, 2000, 40
    r = np.random.default_rng(1).standard_normal(n)
    squares = custom_gradient.make_squares(B, sigma)

    def grads(st, mem):
        eps, key = B.normal(st["key"], (n,))
        out = {"key": key, "r": st["r"]}
        for name, square in squares.items():
            out[name] = B.value_and_grad(
                lambda x, square=square: B.sum(square(x, eps)))(st["r"])[1]
        return out, mem

    step = B.compile_step(grads, "grads")
    st = {"key": B.rng_key(3), "r": B.asarray(r)}
    noise = []
    for _ in range(draws):
        st, _ = step(st, {})
        assert np.allclose(B.to_numpy(st["custom"]), B.to_numpy(st["plain"]), rtol=1e-12)
        assert np.allclose(B.to_numpy(st["plain"]), 2 * r, rtol=1e-12)
        noise.append(B.to_numpy(st["noisy"]) - 2 * r)
    noise = np.array(noise)
    assert abs(noise.mean()) < 5 * sigma / np.sqrt(noise.size)
    assert noise.std() == pytest.approx(sigma, rel=0.03)
    assert not np.allclose(noise[0], noise[1])   # a fresh draw every call, even when compiled


@pytest.mark.parametrize("mode", ["torch-compile", "jax-jit", "tf-graph"])
def test_interleaved_squares_do_not_share_a_compiled_graph(mode):
    """Regression: torch.compile reused the exact square's graph for the noisy one when both ran
    in one process (closures differ, code does not). In one worker, noisy must differ."""
    if mode not in MODES:
        pytest.skip(f"{mode} not installed")
    cell = Cell("custom-gradient", {"square": ["plain", "custom", "noisy"], "noise": 1.0,
                                    "batch": 64}, mode, threads=1, iters=[4, 4, 4], warmup=2)
    records = to_records(cell, measure_cell(cell, 600))
    assert [r.spec.params["square"] for r in records] == ["plain", "custom", "noisy"]
    assert all(r.result.ok for r in records)
    # each square's loss after its second step (the warm-up calls step one at a time; in the
    # first repeat, a step whose ops are counted keeps no sample)
    second = {r.spec.params["square"]: [s for s in r.result.warmup if s.step == 2]
              for r in records}
    assert all(len(samples) == 1 for samples in second.values())
    loss = {square: samples[0].observed["loss"] for square, samples in second.items()}
    assert loss["custom"] == pytest.approx(loss["plain"], rel=1e-5)
    assert abs(loss["noisy"] - loss["plain"]) > 1e-4 * loss["plain"]


# --- kfac ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_kfac_matmul_gradient_is_the_whitened_formula(mode):
    B = backend(mode)
    rng = np.random.default_rng(2)
    n, k, m = 50, 8, 5
    A, W, C = rng.standard_normal((n, k)), rng.standard_normal((k, m)), rng.standard_normal((n, m))
    matmul = kfac.make_kfac_matmul(B, n)
    Ct = B.asarray(C)
    f = B.compile_function(B.value_and_grad(lambda xs: B.sum(matmul(xs[0], xs[1]) * Ct)), "vg")
    value, (dA, dW) = f([B.asarray(A), B.asarray(W)])
    s_a = A.T @ A / n + kfac.LAMBDA * np.eye(k)
    G = n * C                         # per-example backprops of a loss with dZ = C
    s_g = G.T @ G / n + kfac.LAMBDA * np.eye(m)
    m1, m2 = np.linalg.inv(s_a), np.linalg.inv(s_g)
    assert B.to_float(value) == pytest.approx(float(np.sum((A @ W) * C)), rel=1e-12)
    assert np.allclose(B.to_numpy(dW), m1 @ (A.T @ C) @ m2, rtol=1e-9, atol=1e-12)
    assert np.allclose(B.to_numpy(dA), C @ W.T, rtol=1e-12)


@pytest.fixture(scope="module")
def kfac_runs():
    out = {}
    for mode in MODES:
        for opt in kfac.OPTIMIZERS:
            B, task = build(mode, "kfac", {"optimizer": opt, "batch": 300})
            seen, _, _ = run_steps(B, task, 12)   # kfac overtakes gd after about 6
            out[mode, opt] = [s["loss"] for s in seen]
    return out


@pytest.mark.parametrize("mode", MODES[1:])
def test_kfac_losses_agree_with_torch_in_float64(kfac_runs, mode):
    for opt in kfac.OPTIMIZERS:
        assert rel_diff(kfac_runs[mode, opt], kfac_runs["torch", opt]) < 1e-8, opt


def test_kfac_whitening_converges_faster_than_gradient_descent(kfac_runs):
    losses = {opt: kfac_runs["torch", opt] for opt in kfac.OPTIMIZERS}
    assert len({round(v[0], 12) for v in losses.values()}) == 1   # the same start
    assert losses["kfac"][-1] < 0.7 * losses["gd"][-1]
    assert losses["gd"][-1] < losses["gd"][0] and losses["adam"][-1] < losses["adam"][0]


# --- convnet ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def convnet_runs():
    out = {}
    for mode in MODES:
        # width 8: see tests/test_compiled_modes.py (Inductor crashes at widths 2 and 4)
        B, task = build(mode, "convnet", {"batch": 4, "width": 8})
        seen, check, _ = run_steps(B, task, 3)
        out[mode] = ([s["loss"] for s in seen], check["fc_sum"])
    return out


@pytest.mark.parametrize("mode", MODES[1:])
def test_convnet_training_agrees_with_torch_in_float64(convnet_runs, mode):
    losses, fc = convnet_runs[mode]
    ref_losses, ref_fc = convnet_runs["torch"]
    assert rel_diff(losses, ref_losses) < 1e-9
    assert fc == pytest.approx(ref_fc, rel=1e-9)


def test_convnet_sgd_lowers_the_loss(convnet_runs):
    losses, _ = convnet_runs["torch"]
    assert losses[-1] < losses[0]
