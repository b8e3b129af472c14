"""torchvision's ResNet-18 training step, in every PyTorch mode.

    eagerbench run -w examples/torchvision_resnet.py -p batch=1,16
"""

import torch

from eagerbench.models import import_torchvision, torch_workload


def model(p):
    return import_torchvision().models.resnet18(num_classes=10)


def batch(p, env):
    return torch.randn(p["batch"], 3, 64, 64), torch.randint(0, 10, (p["batch"],))


WORKLOAD = torch_workload("torchvision-resnet18", model, batch, params={"batch": (8,)})
