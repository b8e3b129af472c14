"""Flax NNX counterparts of the suite's PyTorch models (Flax ships layers, not a model zoo):
the same configurations (``config``), written from ``flax.nnx``'s layers. MobileNetV3 has no
counterpart here."""

from __future__ import annotations

from workloads.zoo import config


def resnet18(p: dict, rngs):
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            self.conv1 = nnx.Conv(cin, cout, (3, 3), strides=stride, padding=1, use_bias=False,
                                  rngs=rngs)
            self.bn1 = nnx.BatchNorm(cout, rngs=rngs)
            self.conv2 = nnx.Conv(cout, cout, (3, 3), padding=1, use_bias=False, rngs=rngs)
            self.bn2 = nnx.BatchNorm(cout, rngs=rngs)
            projected = stride != 1 or cin != cout
            self.down_conv = nnx.Conv(cin, cout, (1, 1), strides=stride, use_bias=False,
                                      rngs=rngs) if projected else None
            self.down_bn = nnx.BatchNorm(cout, rngs=rngs) if projected else None

        def __call__(self, x):
            y = self.bn2(self.conv2(nnx.relu(self.bn1(self.conv1(x)))))
            shortcut = x if self.down_conv is None else self.down_bn(self.down_conv(x))  # type: ignore[misc]
            return nnx.relu(y + shortcut)

    class ResNet18(nnx.Module):
        def __init__(self):
            self.stem = nnx.Conv(3, 64, (7, 7), strides=2, padding=3, use_bias=False, rngs=rngs)
            self.bn = nnx.BatchNorm(64, rngs=rngs)
            widths, blocks, cin = (64, 128, 256, 512), [], 64
            for i, width in enumerate(widths):
                blocks += [Block(cin, width, 1 if i == 0 else 2), Block(width, width, 1)]
                cin = width
            self.blocks = nnx.List(blocks)
            self.head = nnx.Linear(512, config.CLASSES, rngs=rngs)

        def __call__(self, x):
            x = nnx.relu(self.bn(self.stem(x)))
            x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
            for block in self.blocks:
                x = block(x)
            return self.head(x.mean(axis=(1, 2)))

    return ResNet18()


def _block(width: int, heads: int, rngs, post_norm: bool = False):
    """A transformer block: pre-norm (GPT-2, ViT) or post-norm (BERT)."""
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self):
            eps = 1e-12 if post_norm else 1e-5
            self.norm1 = nnx.LayerNorm(width, epsilon=eps, rngs=rngs)
            self.attn = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
            self.norm2 = nnx.LayerNorm(width, epsilon=eps, rngs=rngs)
            self.up = nnx.Linear(width, 4 * width, rngs=rngs)
            self.down = nnx.Linear(4 * width, width, rngs=rngs)

        def __call__(self, x, mask=None):
            if post_norm:
                x = self.norm1(x + self.attn(x, mask=mask))
                return self.norm2(x + self.down(nnx.gelu(self.up(x))))
            y = self.norm1(x)
            x = x + self.attn(y, mask=mask)
            return x + self.down(nnx.gelu(self.up(self.norm2(x))))

    return Block()


def vit(p: dict, rngs):
    import jax.numpy as jnp
    from flax import nnx

    c = config.VIT
    tokens = (config.IMAGE[0] // c["patch"]) ** 2

    class ViT(nnx.Module):
        def __init__(self):
            self.patches = nnx.Conv(3, c["width"], (c["patch"], c["patch"]),
                                    strides=c["patch"], padding="VALID", rngs=rngs)
            self.positions = nnx.Param(0.02 * nnx.initializers.normal()(
                rngs.params(), (tokens, c["width"])))
            self.blocks = nnx.List([_block(c["width"], c["heads"], rngs)
                                    for _ in range(c["depth"])])
            self.norm = nnx.LayerNorm(c["width"], epsilon=1e-6, rngs=rngs)
            self.head = nnx.Linear(c["width"], config.CLASSES, rngs=rngs)

        def __call__(self, x):
            x = self.patches(x)
            x = jnp.reshape(x, (x.shape[0], -1, x.shape[-1])) + self.positions
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x).mean(axis=1))

    return ViT()


def gpt(p: dict, rngs):
    import jax.numpy as jnp
    from flax import nnx

    c = config.GPT

    class GPT(nnx.Module):
        def __init__(self):
            self.tokens = nnx.Embed(c["vocab"], c["width"], rngs=rngs)
            self.positions = nnx.Embed(c["seq"], c["width"], rngs=rngs)
            self.blocks = nnx.List([_block(c["width"], c["heads"], rngs)
                                    for _ in range(c["depth"])])
            self.norm = nnx.LayerNorm(c["width"], epsilon=1e-5, rngs=rngs)
            self.head = nnx.Linear(c["width"], c["vocab"], use_bias=False, rngs=rngs)

        def __call__(self, ids):
            x = self.tokens(ids) + self.positions(jnp.arange(ids.shape[1]))
            mask = nnx.make_causal_mask(ids)
            for block in self.blocks:
                x = block(x, mask)
            return self.head(self.norm(x))

    return GPT()


def bert(p: dict, rngs):
    import jax.numpy as jnp
    from flax import nnx

    c = config.BERT

    class BERT(nnx.Module):
        def __init__(self):
            self.tokens = nnx.Embed(c["vocab"], c["width"], rngs=rngs)
            self.positions = nnx.Embed(c["seq"], c["width"], rngs=rngs)
            self.norm = nnx.LayerNorm(c["width"], epsilon=1e-12, rngs=rngs)
            self.blocks = nnx.List([_block(c["width"], c["heads"], rngs, post_norm=True)
                                    for _ in range(c["depth"])])
            self.pooler = nnx.Linear(c["width"], c["width"], rngs=rngs)
            self.head = nnx.Linear(c["width"], c["labels"], rngs=rngs)

        def __call__(self, ids):
            x = self.norm(self.tokens(ids) + self.positions(jnp.arange(ids.shape[1])))
            for block in self.blocks:
                x = block(x)
            return self.head(jnp.tanh(self.pooler(x[:, 0])))

    return BERT()
