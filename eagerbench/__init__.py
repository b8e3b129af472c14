"""eagerbench: measure the eager tax of deep-learning frameworks.

``eagerbench.measure(...)`` runs a workload from Python (see ``eagerbench.api``);
``eagerbench.native.workload(...)`` makes one from a PyTorch, JAX or TensorFlow step.
"""


def measure(*args, **kwargs):
    """``eagerbench.api.measure``, imported on first use (workers never need it)."""
    from eagerbench.api import measure as run

    return run(*args, **kwargs)
