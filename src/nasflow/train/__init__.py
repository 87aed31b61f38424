"""Training: the loop (SPOS / sandwich / fixed), LR schedules, settings, one config-driven job."""
