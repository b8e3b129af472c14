"""eagerbench: measure the eager tax of deep-learning frameworks."""
