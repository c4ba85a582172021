"""Training: the engine (one epoch of steps), optimizers and schedules, the weight average, run folders."""
