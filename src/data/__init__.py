"""Where MNIST comes from and how batches reach the model."""
