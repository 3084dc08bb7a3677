"""Data-parallel training under ``torchrun``, on PyTorch's own DistributedDataParallel (DDP).

    torchrun --nproc-per-node 4 -m mru train --task latch --model bmru         # one node, 4 processes/GPUs
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 --rdzv-endpoint HOST:29500 -m mru compare ...

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` reads them and joins the process
group (nccl when the run's device is CUDA, gloo on CPU). Without them everything here is a no-op and the
trainer runs as one process. How a distributed run keeps the mathematics of one process with the same global
batch (``batch_size`` is the *global* batch):

- every rank builds the same task data (generated from the seed) and the same global batch order; rank ``r``
  takes the ``r``-th contiguous slice of each global batch (:meth:`Dist.shard`; sizes differ by at most one);
- a rank's loss is its *sum* of per-element losses divided by the element count of the whole global batch,
  times the world size, so DDP's gradient average is the gradient of the global mean loss, however unevenly
  the scored elements (masks) fall between ranks;
- validation and test sets are sliced the same way and their ``(total, count)`` metric parts summed with
  ``all_reduce``: every rank sees the same metric, hence the same early-stop and best-checkpoint decisions;
- only rank 0 writes (log lines, progress bar, metrics, checkpoints, summary); every rank reads a checkpoint
  to resume, after a barrier;
- a NaN/Inf loss or a Ctrl-C on any rank stops every rank at the same step (both travel with the one
  ``all_reduce`` of the logged loss per step).

The results equal a single-process run up to float rounding (the sums are ordered differently), which
``tests/test_distributed.py`` checks with a 2-process gloo run. Dropout masks come from each rank's copy of
the run's random stream (rank 0's is the one checkpointed).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Dist", "SINGLE", "current", "from_env", "is_main_process", "setup", "shutdown", "wrap"]


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of ``n`` items (the first ``n % world_size`` ranks get one more)."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def all_sum(self, values, device) -> list[float]:
        """Element-wise sums of ``values`` over all ranks (float64; as given when not distributed)."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


SINGLE = Dist()


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} must be an integer (torchrun sets it)") from None


def from_env() -> Dist:
    """The job layout torchrun describes in ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (one process without)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return Dist(rank, world, local)


def is_main_process() -> bool:
    """Whether this process is rank 0 of its torchrun job (or not in one): the one that prints and writes.
    Read from the environment, so it holds before the process group is joined."""
    try:
        return from_env().is_main
    except ValueError:
        return True


def current() -> Dist:
    """The job layout when this process has joined a process group (:func:`setup`), else one process."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", dist.get_rank()))
    return SINGLE


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shutdown() -> None:
    """Leave the process group once a command has finished normally: a barrier, so that no rank tears its
    connections down while another still uses them (gloo can abort the process then), and
    ``destroy_process_group``. A no-op outside a torchrun job. (After an error, only the atexit handler
    destroys the group, without a barrier that a failed rank would never reach.)"""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def setup(device: str = "auto") -> tuple[Dist, torch.device]:
    """Join the torchrun job, if there is one, and choose this rank's device.

    ``device`` is the run's setting: "auto" (CUDA when available), "cpu" or "cuda". Under torchrun a CUDA
    run puts rank ``r`` on GPU ``LOCAL_RANK`` and uses nccl; a CPU run uses gloo. Idempotent: ``mru compare``
    trains many runs in the one process group.
    """
    d = from_env()
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch.cuda.is_available() is False; "
                         "use device 'auto' or 'cpu'")
    if not d.enabled:
        return d, torch.device("cuda" if cuda else "cpu")
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if cuda:
        n = torch.cuda.device_count()
        if d.local_rank >= n:
            raise ValueError(f"LOCAL_RANK {d.local_rank} has no GPU: this node has {n}; start at most {n} "
                             f"processes per node (torchrun --nproc-per-node {n})")
        torch.cuda.set_device(d.local_rank)
        dev = torch.device("cuda", d.local_rank)
    else:
        dev = torch.device("cpu")
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
        atexit.register(_destroy)
    elif dist.get_world_size() != d.world_size or dist.get_rank() != d.rank:
        raise RuntimeError(f"the process group (rank {dist.get_rank()} of {dist.get_world_size()}) does not "
                           f"match the environment (rank {d.rank} of {d.world_size})")
    elif dist.get_backend() != backend:
        raise ValueError(f"this process group uses {dist.get_backend()}, but device {device!r} needs {backend}; "
                         f"keep one device for every run of a torchrun job")
    return d, dev


def wrap(model: torch.nn.Module, d: Dist, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when distributed (for the training forward), else itself."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, output_device=device.index if ids else None)
