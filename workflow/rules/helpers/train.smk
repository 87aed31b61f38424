# Helpers of the training rules (train_supernet, train_arch, train_final): a section's `gpus` x
# `nodes` data-parallel processes (nasflow.train.distributed), how torchrun starts them and what
# the job asks the scheduler for.

from nasflow.train.distributed import launch_command


def train_launch(settings):
    """The words that start `nasflow` for a training section: `nasflow` itself, or torchrun
    when gpus x nodes > 1 (rules write them as `{params.launch:q}`)."""
    return launch_command(settings["gpus"], settings["nodes"])


def train_resources(device_section, settings):
    """Scheduler resources of a training job besides memory and runtime: `gpu`, the GPUs of all
    its nodes (0 on the CPU, see uses_gpu); on several nodes also `nodes`, and the SLURM
    plugin's MPI keys, so that the job's batch script runs the command (which starts one
    torchrun per node with srun) instead of one srun task: `tasks` one per node, and no
    `--ntasks-per-gpu` (tasks_per_gpu 0)."""
    one = uses_gpu(device_section)
    gpus, nodes = settings["gpus"], settings["nodes"]
    resources = {"gpu": lambda wildcards: one(wildcards) * gpus * nodes}
    if nodes > 1:
        resources.update(nodes=nodes, mpi="srun", tasks=nodes, tasks_per_gpu=0)
    return resources
