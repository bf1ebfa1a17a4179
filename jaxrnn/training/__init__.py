"""Training with optax: losses, clipping, the step, the loop, checkpoints and data parallelism."""
