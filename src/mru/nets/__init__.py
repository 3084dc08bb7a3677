"""mru.nets — sequence models built from units (DESIGN §6)."""

from .blocks import GLUMLP, Block, Mixer
from .model import HEADS, ModelConfig, SequenceModel

__all__ = ["ModelConfig", "SequenceModel", "Block", "Mixer", "GLUMLP", "HEADS"]
