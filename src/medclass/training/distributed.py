"""Scale-out with Lightning's DDP: which process this is, how many there will be, and the strategy to build.

Every rank runs `train()` from the top (Lightning's own launcher re-runs the command line for ranks 1..N-1, torchrun
and srun start all of them), so the rank has to be known before any Trainer exists: from the launcher's environment.
"""

from __future__ import annotations

import os

from medclass.core.errors import MedclassError

STRATEGIES = ("auto", "ddp")
# torchrun sets RANK and LOCAL_RANK; srun SLURM_PROCID; Lightning's launcher NODE_RANK and LOCAL_RANK
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK")


def is_global_zero() -> bool:
    """Whether this process is global rank 0, the one that writes the run folder. Rank 0 is where every rank
    variable present says 0: a process Lightning starts inside an sbatch script inherits SLURM_PROCID 0 from its
    parent, but its own LOCAL_RANK is not 0."""
    return all(os.environ.get(name, "0").strip() in ("", "0") for name in RANK_VARIABLES)


def local_processes(devices: str, accelerator: str) -> int:
    """Training processes on this machine, counted as Lightning counts devices: a number, a list of GPU ids
    ("0,1"), or auto / -1 (every GPU when training on GPUs, else one CPU process)."""
    devices = str(devices).strip()
    if devices.isdigit():
        return max(int(devices), 1)
    if "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    import torch  # here: config.py imports this module for STRATEGIES, cheaply

    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return torch.cuda.device_count() if on_gpu else 1


def check_batch_split(batch_size: int, processes: int) -> None:
    """--batch-size is the global batch, split evenly among the processes, so a recipe's learning rate and number
    of steps per epoch mean the same on one device and on many."""
    if batch_size % processes:
        raise MedclassError(f"--batch-size {batch_size} is the batch of all {processes} processes together and must "
                            f"split evenly among them; use a multiple of {processes}")


def lightning_strategy(strategy: str, finetune: str, processes: int):
    """A backbone frozen for some or all epochs gets no gradient, which DDP refuses ("parameters that were not used
    in producing loss") unless told to look for unused parameters each step. Only then is the strategy built here."""
    if finetune != "full" and (strategy == "ddp" or processes > 1):
        from lightning.pytorch.strategies import DDPStrategy  # here: config.py imports this module, cheaply

        return DDPStrategy(find_unused_parameters=True)
    return strategy
