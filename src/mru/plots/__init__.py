"""mru.plots — figures that show what the units do (matplotlib, written as PNG files).

- :func:`plot_learning_curves` — loss and validation metric against step, one line per run;
- :func:`plot_state_raster` — BMRU states s_t in {-1, +1} over time (DESIGN §2);
- :func:`plot_hysteresis` — the loop c ↦ s of BMRU units at their thresholds (DESIGN §2);
- :func:`plot_bifurcation` — a continuous bistable cell iterated N times per input converges to the BMRU
  map as N grows (DESIGN §1).
"""

from .bifurcation import bistable_cell_sweep, plot_bifurcation
from .curves import plot_learning_curves, read_metrics
from .runs import compare_figures
from .hysteresis import bmru_sweep, mean_thresholds, plot_hysteresis
from .raster import bmru_states, plot_state_raster

__all__ = ["compare_figures", "plot_learning_curves", "read_metrics", "plot_state_raster", "bmru_states", "plot_hysteresis",
           "bmru_sweep", "mean_thresholds", "plot_bifurcation", "bistable_cell_sweep"]
