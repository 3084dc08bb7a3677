"""mru.bench — the benchmark suite behind ``mru bench`` (DESIGN §8).

Every figure is a median over repeated runs after warm-up, measured side by side in one process, and
compared with a physical floor measured in the same run: the time to copy the bytes an operation must
read and write (``torch.empty_like(x).copy_(x)`` into a preallocated buffer).
"""

from .suites import SUITES, run_suites

__all__ = ["SUITES", "run_suites"]
