"""mru — memory recurrent units for PyTorch (BMRU, CMRU and their baselines)."""

__version__ = "0.1.0"
