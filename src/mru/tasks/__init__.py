"""Long-memory benchmark tasks (DESIGN §7), each a fixed-seed generator or a loader of real data.

    task = get_task("latch", length=100, seed=0)
    train = task.dataset("train")                  # TaskData(x, y, mask), deterministic per seed
    test_10x = task.dataset("test", length=1000)   # length generalisation
    for batch in train.batches(64, shuffle=True, generator=g):
        loss = task.loss(model(batch.x), batch)

The contract (shapes, masks, readouts) is documented in :mod:`mru.tasks.base`.
"""

from __future__ import annotations

from .adding import AddingTask
from .base import DataNotFoundError, GeneratedTask, Task, TaskData, closest_names
from .charlm import CharLMTask
from .copy_first import CopyFirstTask
from .denoising import DenoisingTask
from .digits import DigitsTask, PermutedDigitsTask
from .latch import LatchTask
from .mnist import PermutedMNISTTask, SequentialMNISTTask, read_idx
from .mode_filter import ModeFilterTask
from .selective_copy import SelectiveCopyTask

__all__ = [
    "TASKS",
    "AddingTask",
    "CharLMTask",
    "CopyFirstTask",
    "DataNotFoundError",
    "DenoisingTask",
    "DigitsTask",
    "GeneratedTask",
    "LatchTask",
    "ModeFilterTask",
    "PermutedDigitsTask",
    "PermutedMNISTTask",
    "SelectiveCopyTask",
    "SequentialMNISTTask",
    "Task",
    "TaskData",
    "get_task",
    "list_tasks",
    "read_idx",
]

#: task name -> class, in the order of DESIGN §7
TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        CopyFirstTask,
        DenoisingTask,
        AddingTask,
        SelectiveCopyTask,
        LatchTask,
        ModeFilterTask,
        DigitsTask,
        PermutedDigitsTask,
        SequentialMNISTTask,
        PermutedMNISTTask,
        CharLMTask,
    )
}


def get_task(name: str, **kwargs) -> Task:
    """The task ``name`` built with ``kwargs`` (``length``, ``seed`` and the task's options). Dashes and
    case are ignored (``"Copy-First"`` is ``copy_first``); an unknown name raises ``ValueError`` suggesting
    the closest one and listing them all."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in TASKS:
        raise ValueError(
            f"unknown task {name!r}{closest_names(key, TASKS)}; available tasks: {', '.join(TASKS)}"
        )
    return TASKS[key](**kwargs)


def list_tasks() -> list[tuple[str, str]]:
    """``(name, description)`` of every registered task, in registry order."""
    return [(name, cls.description) for name, cls in TASKS.items()]
