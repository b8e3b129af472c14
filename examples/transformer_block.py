"""A small transformer block's training step in PyTorch, as a user would bring it.

    eagerbench run -w examples/transformer_block.py
    eagerbench run -w examples/transformer_block.py -p batch=8,32 -p dim=128

eagerbench runs the step in every PyTorch mode (torch, torch-compile, and torch-cudagraph with
--device cuda), checks that the modes agree after the warm-up, and reports the eager tax and
after how many steps torch.compile pays for itself.
"""

from __future__ import annotations

import torch
from torch import nn

from eagerbench import native
from eagerbench.workload import Work


class Block(nn.Module):
    """Pre-norm self-attention and MLP, as in GPT-2."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


def setup(params: dict, env: native.Env):
    """The model, its optimizer and one batch, on the cell's device and dtype."""
    torch.manual_seed(env.seed)
    model = Block(params["dim"], params["heads"]).to(env.device, env.dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    shape = (params["batch"], params["seq"], params["dim"])
    x = torch.as_tensor(env.rng.standard_normal(shape), dtype=env.dtype, device=env.device)
    target = torch.as_tensor(env.rng.standard_normal(shape), dtype=env.dtype, device=env.device)
    st = {"model": model, "optimizer": optimizer, "x": x, "target": target,
          "loss": torch.zeros((), dtype=env.dtype, device=env.device)}
    return st, {}


def step(st: dict, mem: dict):
    """One SGD step: forward, backward, update. The loss is returned, so nothing is dead."""
    model, optimizer = st["model"], st["optimizer"]
    loss = nn.functional.mse_loss(model(st["x"]), st["target"])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {**st, "loss": loss.detach()}, mem


def work(params: dict) -> Work:
    """Forward and backward of the matmuls (6 flops per weight per token) and of attention."""
    tokens, dim, seq = params["batch"] * params["seq"], params["dim"], params["seq"]
    weights = 4 * dim * dim + 8 * dim * dim
    return Work(flops=6.0 * tokens * weights + 12.0 * tokens * seq * dim)


WORKLOAD = native.workload(
    "transformer-block", "torch", setup, step, work=work, iters=20, warmup=3,
    summary="a pre-norm transformer block's SGD training step (PyTorch nn.Module)",
    params={"batch": (8,), "seq": (64,), "dim": (128,), "heads": (4,)})
