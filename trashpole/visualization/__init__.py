"""
Every picture trashpole draws, with one palette.

- :mod:`.palette`: the class colours (:data:`CLASS_COLORS`) and the track colours;
- :mod:`.charts`: matplotlib charts: training curves, run comparison, ``labels.png``, confusion
  matrix, PR curves, inventory positions;
- :mod:`.overlays`: drawings on photos with detectron2's ``Visualizer``: data records, the
  trainer's view, predictions, tracks, the evaluation galleries;
- :mod:`.panels`: report.html's pictures, drawn with OpenCV.

Importing the package chooses no matplotlib backend. ``overlays`` and ``panels`` are imported
by their users, not here, so that registering data (which needs the palette) stays light.
"""

from .charts import plot_training_curves
from .palette import CLASS_COLORS, class_colors, track_color

__all__ = ["CLASS_COLORS", "class_colors", "plot_training_curves", "track_color"]
