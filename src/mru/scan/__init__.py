"""mru.scan — the scan engine (DESIGN §5): first-order recurrences, parallel over the sequence.

Public functions: :func:`linear_scan`, :func:`bmru_scan`; their slow, readable specifications
:func:`linear_scan_ref`, :func:`bmru_scan_ref`; the surrogate step functions :func:`heaviside`,
:func:`binary_sign`; and :func:`available_backends`.
"""

from .dispatch import available_backends
from .functional import bmru_scan, linear_scan
from .reference import bmru_scan_ref, linear_scan_ref
from .surrogate import binary_sign, heaviside

__all__ = [
    "linear_scan",
    "bmru_scan",
    "linear_scan_ref",
    "bmru_scan_ref",
    "heaviside",
    "binary_sign",
    "available_backends",
]
