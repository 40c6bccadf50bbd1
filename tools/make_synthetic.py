#!/usr/bin/env python
"""
Write the synthetic Roboflow COCO export that ``make demo`` trains on (street and campus scenes
of poles and trash cans; ``synthetic/``, which stays in the checkout).

    tools/make_synthetic.py --out datasets/trashpole --num-images 200 --seed 0
    tools/make_synthetic.py --out datasets/trashpole_hires --num-images 50 --seed 1 \\
        --size 3200x2400 --far-objects

The options are those of :func:`synthetic.export.main` (``--help``).
"""

import sys

from trashpole.cli import add_checkout_to_path, run_tool

add_checkout_to_path(__file__)  # the generator lives in synthetic/, not installed
from synthetic.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_tool(main))
