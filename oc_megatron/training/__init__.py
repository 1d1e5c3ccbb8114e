"""The training loop and its parts: distributed setup, LR schedule, checkpoints, preemption, metrics."""
