"""mru.units — recurrent units with one interface modelled on ``nn.GRU`` (DESIGN §2-4).

Memory recurrent units: :class:`BMRU`, :class:`CMRU`. Baselines: :class:`LRU`, :class:`MinGRU`,
:class:`BRC`, :class:`NBRC`, :class:`GRU`, :class:`LSTM`. See :mod:`mru.units.base` for the interface.
"""

from .base import RecurrentLayer, RecurrentUnit
from .bmru import BMRU, CMRU, BMRULayer
from .brc import BRC, NBRC
from .lru import LRU, LRULayer
from .mingru import MinGRU
from .torch_rnn import GRU, LSTM

__all__ = ["RecurrentUnit", "RecurrentLayer", "BMRU", "CMRU", "BMRULayer", "LRU", "LRULayer", "MinGRU",
           "BRC", "NBRC", "GRU", "LSTM"]
