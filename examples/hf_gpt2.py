"""A Hugging Face GPT-2 (two layers, random weights) training step, in every PyTorch mode.

    eagerbench run -w examples/hf_gpt2.py -p step=train,infer
"""

import torch

from eagerbench.models import torch_workload


def model(p):
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=128, n_head=4, vocab_size=8192,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))


def batch(p, env):
    ids = torch.randint(0, 8192, (p["batch"], 64))
    return {"input_ids": ids, "labels": ids}, None     # the model computes its own loss


WORKLOAD = torch_workload("hf-gpt2", model, batch, loss=lambda out, _: out.loss,
                          steps=("train", "infer"), params={"batch": (8,)})
