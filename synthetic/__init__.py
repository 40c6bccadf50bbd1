"""A synthetic stand-in for the campus photos, written in Roboflow's COCO export layout.

The real photographs are not available, so the project ships this generator as its default data set.
It draws street and campus scenes and writes them exactly as Roboflow's "COCO Segmentation" export
would: ``OUT/{train,valid,test}/_annotations.coco.json`` with the JPEGs beside each file, category 0
a dataset-level superclass, and image/annotation ids counted from 0 in every split.

Every scene is drawn through a pinhole camera looking along a flat ground plane (X to the right,
Y up, Z forward, in metres), so objects lower in the picture are nearer and bigger, ground textures
converge on the vanishing point and shadows fall consistently from one sun. Objects are painted far
to near into an ownership map, which gives each instance's *visible* mask for free: a bin in front
of a pole, a bush or car in the foreground, all cut the masks of what lies behind them.

Example::

    python tools/make_synthetic.py --out datasets/trashpole_synth --num-images 200 --seed 0
    # high-resolution photos with far, small poles and trash cans (sliced inference, COCO's APs)
    python tools/make_synthetic.py --out datasets/trashpole_hires --num-images 50 \
        --size 3200x2400 --far-objects

Modules: ``scene`` (constants, palettes, camera, light, canvas), ``background``, ``poles``,
``bins``, ``scenery`` (trees, bushes, cars, shadows), ``layout`` (placing things), ``render``
(one scene), ``polygons`` (masks to COCO polygons), ``export`` (files on disk and the CLI).
"""

from synthetic.export import SPLITS, main, make_roboflow_export
from synthetic.polygons import instance_to_annotation
from synthetic.render import render_scene
from synthetic.scene import CATEGORIES, CLASS_NAMES
from trashpole.data.register import ANNOTATION_FILE

__all__ = [
    "ANNOTATION_FILE",
    "CATEGORIES",
    "CLASS_NAMES",
    "SPLITS",
    "instance_to_annotation",
    "main",
    "make_roboflow_export",
    "render_scene",
]
