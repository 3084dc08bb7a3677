"""The scan backends a test should run against on this machine.

"reference" and "torch" always; "numba" when its package and module load; "triton" only under
TRITON_INTERPRET=1 on CPU (there is no GPU in CI). A backend whose module fails to load for a reason other
than a missing package is still listed, so the tests that use it fail with that reason instead of the
whole test module failing at collection.
"""

from __future__ import annotations

import os

from mru.scan import available_backends
from mru.scan.dispatch import BACKEND_NAMES


def scan_backends(include_reference: bool = True) -> list[str]:
    try:
        status = available_backends()
    except Exception:  # a backend module that crashes on import: let its tests show why
        status = {name: "available" for name in BACKEND_NAMES}
    names = [n for n, s in status.items() if s == "available"]
    if not os.environ.get("TRITON_INTERPRET"):
        names = [n for n in names if n != "triton"]
    if not include_reference:
        names = [n for n in names if n != "reference"]
    return names
