"""Training: the loop (SPOS / sandwich / fixed), LR schedules, settings and one config-driven job."""
