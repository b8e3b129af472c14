"""``convnet``: a training step of a small ResNet on a random batch, written once for every
framework (the article ran a graph-built ResNet from eager code; today that is ``tf.function``).

The model: a 3x3 stem convolution to ``width`` channels, three residual blocks (the second halves
the resolution and doubles the width, with a strided 1x1 projection on its shortcut), each block
``relu(x + bn(conv(relu(bn(conv(x))))))``, global average pooling and a linear classifier, softmax
cross-entropy over 10 classes, one plain SGD step. Batch norm uses batch statistics (training
mode); running averages, needed only for inference, are not kept.
"""

from __future__ import annotations

import numpy as np

from eagerbench.presentation import Bars, Columns
from eagerbench.workload import Param, Task, Work, Workload

IMAGE, CHANNELS, CLASSES = 32, 3, 10
LR = 0.05


def _layers(width: int) -> list[tuple[str, tuple]]:
    """Every parameter's name and shape (kernels HWIO), in a fixed order."""
    shapes = [("stem", (3, 3, CHANNELS, width)), ("stem_g", (width,)), ("stem_b", (width,))]
    for name, cin, cout in (("b1", width, width), ("b2", width, 2 * width),
                            ("b3", 2 * width, 2 * width)):
        shapes += [(f"{name}_c1", (3, 3, cin, cout)), (f"{name}_g1", (cout,)),
                   (f"{name}_be1", (cout,)), (f"{name}_c2", (3, 3, cout, cout)),
                   (f"{name}_g2", (cout,)), (f"{name}_be2", (cout,))]
        if cin != cout:
            shapes.append((f"{name}_proj", (1, 1, cin, cout)))
    return shapes + [("fc_w", (2 * width, CLASSES)), ("fc_b", (CLASSES,))]


def init(width: int, seed: int) -> dict[str, np.ndarray]:
    """He-normal kernels, unit batch-norm scales, zero shifts and biases."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in _layers(width):
        if len(shape) == 4 or name == "fc_w":
            fan_in = int(np.prod(shape[:-1]))
            out[name] = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif "_g" in name:
            out[name] = np.ones(shape)
        else:
            out[name] = np.zeros(shape)
    return out


def random_batch(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """NHWC images and one-hot labels, random (the article trained on a random batch)."""
    rng = np.random.default_rng(seed + 1)
    images = rng.standard_normal((batch, IMAGE, IMAGE, CHANNELS))
    return images, np.eye(CLASSES)[rng.integers(0, CLASSES, batch)]


def make_loss(B, names: list[str], images, labels, batch: int):
    """``weights (a list in ``names`` order) -> mean softmax cross-entropy``."""

    def block(p, x, name, stride):
        h = B.relu(B.batch_norm(B.conv2d(x, p[f"{name}_c1"], stride, 1), p[f"{name}_g1"],
                                p[f"{name}_be1"]))
        h = B.batch_norm(B.conv2d(h, p[f"{name}_c2"], 1, 1), p[f"{name}_g2"], p[f"{name}_be2"])
        shortcut = B.conv2d(x, p[f"{name}_proj"], stride, 0) if f"{name}_proj" in p else x
        return B.relu(h + shortcut)

    def loss(weights):
        p = dict(zip(names, weights))
        x = B.relu(B.batch_norm(B.conv2d(images, p["stem"], 1, 1), p["stem_g"], p["stem_b"]))
        x = block(p, x, "b1", 1)
        x = block(p, x, "b2", 2)
        x = block(p, x, "b3", 1)
        logits = B.matmul(B.spatial_mean(x), p["fc_w"]) + p["fc_b"]
        return -B.sum(labels * B.log_softmax(logits)) * (1.0 / batch)

    return loss


def _build(B, params: dict, ctx: dict) -> Task:
    batch, width = params["batch"], params["width"]
    weights = init(width, ctx["seed"])
    names = list(weights)
    images, labels = random_batch(batch, ctx["seed"])
    kernels = {n for n, shape in _layers(width) if len(shape) == 4}
    w0 = [B.conv_kernel(weights[n]) if n in kernels else B.asarray(weights[n]) for n in names]
    value_and_grad = B.value_and_grad(make_loss(B, names, B.images(images), B.asarray(labels),
                                                batch))

    def train(st, mem):
        value, grads = value_and_grad(st["w"])
        return {"w": [w - LR * g for w, g in zip(st["w"], grads)], "loss": value}, mem

    def check(st, mem):
        return {"loss": B.to_float(st["loss"]),
                "fc_sum": float(B.to_numpy(st["w"][names.index("fc_w")]).astype(float).sum())}

    return Task(step=B.compile_step(train, "train"), st={"w": w0, "loss": B.scalar(0.0)},
                mem={}, observe=lambda st, mem: {"loss": B.to_float(st["loss"])}, check=check)


def flops(batch: int, width: int) -> float:
    """Convolutions and the classifier, forward (2 per multiply-add) times 3 for the backward
    pass (input and weight gradients); batch norm and other element-wise work left out."""
    forward = 0.0
    for name, shape in _layers(width):
        if len(shape) == 4:   # the stem and block 1 run at full resolution, blocks 2-3 at half
            side = IMAGE if name.startswith(("stem", "b1")) else IMAGE // 2
            forward += 2.0 * batch * side**2 * np.prod(shape)
    forward += 2.0 * batch * 2 * width * CLASSES
    return 3.0 * forward


def _work(params: dict, dtype: str, observed: dict) -> Work:
    return Work(flops=flops(params["batch"], params["width"]))


WORKLOAD = Workload(
    name="convnet",
    summary="one SGD step of a small ResNet (3 residual blocks, batch norm) on a random batch",
    params=(Param("batch", (32,), "images per batch (32x32x3, random)"),
            Param("width", (16,), "channels of the first stage (the second has twice as many)")),
    build=_build,
    work=_work,
    iters=lambda p: 15,
    warmup=lambda p: 2,
    # torch.compile specialises again on the second call (its inputs are then its own outputs).
    min_warmup=2,
    views=(Bars(y="median_ms", ylabel="median ms per training step",
                title="convnet: one SGD step of a small ResNet", file="convnet.png"),
           Bars(y="compile_ms", ylabel="compile cost, ms",
                title="convnet: cost of compiling, tracing included\n(every warm-up call "
                      "over the steady state)",
                file="convnet_compile.png"),
           Columns(("params", "mode", "median_ms", "gflops", "vs_eager", "compile_ms"),
                   title="one training step",
                   text="Median ms per SGD step of the small ResNet, achieved GFLOP/s "
                        "(convolutions, forward and backward), ratio to the same framework's "
                        "eager mode, and the compile cost (every warm-up call over the steady "
                        "state: torch.compile compiles this step again on its second call).")),
)
