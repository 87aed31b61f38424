"""Running the workflow on a cluster: `resources` estimates each job's SLURM runtime and memory
from its size in the config and places latency jobs (`latency.targets.<name>.slurm`,
`lts.slurm`). It sits above the stages whose sizes it reads (spaces, counts, LTS spaces)."""
