"""Train and study the classic PyTorch-tutorial MLP on MNIST with Lightning and Hydra."""
