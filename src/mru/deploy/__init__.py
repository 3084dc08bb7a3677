"""mru.deploy — streaming inference outside the training process.

- :mod:`mru.deploy.state`: save and restore a model's streaming state (safetensors + JSON layout), so a stream
  can stop in one process and continue in another with the same outputs.
- :mod:`mru.deploy.export`: the model's one-token ``step`` exported with ``torch.export`` (works for every
  unit: BMRU, CMRU, LRU with its complex state, minGRU, BRC, nBRC, GRU, LSTM), saved as a ``.pt2`` file and
  run without mru's Python model code.
"""

from .export import ExportedStepper, export_step, load_exported_step, save_exported_step
from .state import load_stream_state, save_stream_state

__all__ = ["export_step", "save_exported_step", "load_exported_step", "ExportedStepper",
           "save_stream_state", "load_stream_state"]
