"""mru.train — configs, schedules, checkpoints, the training loop and multi-run comparisons.

    from mru.train import TrainConfig, train, evaluate, load_run
    result = train(TrainConfig(task="latch", model="bmru", steps=300))
    model, task, config, _ = load_run(result.run_dir)
    evaluate(model, task, "test", length=100 * task.length)     # length generalisation

One job per module: :mod:`.config` (``TrainConfig``), :mod:`.schedules` (lr, ε of DESIGN §3, γ of DESIGN §2),
:mod:`.checkpoint` (atomic, verified, exactly resumable), :mod:`.loop` (``train``, ``evaluate``),
:mod:`.distributed` (data-parallel under torchrun, on DDP), :mod:`.compare` (models × tasks × seeds ->
results.md / results.json).
"""

from .checkpoint import CheckpointError, load_checkpoint
from .config import TrainConfig
from .loop import RunResult, evaluate, load_run, train

__all__ = ["TrainConfig", "train", "evaluate", "load_run", "RunResult", "CheckpointError", "load_checkpoint"]
