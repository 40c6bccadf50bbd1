#!/usr/bin/env python
"""
Film a synthetic scene with a panning, zooming camera (every object's identity known), track it
with a trained run or with the true boxes, and score the tracking (``tracking_score.json``).

    tools/synthetic_video.py --out output/track_oracle --oracle --size 256
    tools/synthetic_video.py --out output/track_demo --run output/demo \\
        --picture docs/images/tracked_frame.png

The options are those of :func:`benchmarks.synthetic_video.main` (``--help``).
"""

import sys

from trashpole.cli import add_checkout_to_path, run_tool

add_checkout_to_path(__file__)  # the synthetic video lives in benchmarks/, not installed
from benchmarks.synthetic_video import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_tool(main))
