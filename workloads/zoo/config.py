"""The suite's model configurations, shared by every library's counterpart: small enough for a
CPU (64x64 images, sequences of 64 tokens), each a standard architecture at a reduced size."""

from __future__ import annotations

IMAGE = (64, 64, 3)          # height, width, channels (NHWC; PyTorch's models take NCHW)
CLASSES = 10
VIT = {"width": 192, "depth": 6, "heads": 3, "patch": 8}          # ViT-Tiny's width, 6 blocks
GPT = {"width": 128, "depth": 2, "heads": 4, "seq": 64, "vocab": 8192}
BERT = {"width": 128, "depth": 2, "heads": 4, "seq": 64, "vocab": 8192, "labels": 2}
