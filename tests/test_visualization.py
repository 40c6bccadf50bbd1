"""One palette for every picture, and no matplotlib backend chosen at import."""

import subprocess
import sys

import cv2
import numpy as np

from trashpole.visualization import CLASS_COLORS, class_colors, plot_training_curves


def test_class_colors_cycle_through_the_palette():
    colors = class_colors(7)
    assert colors[:5] == CLASS_COLORS and colors[5:] == CLASS_COLORS[:2]
    assert len(set(CLASS_COLORS)) == len(CLASS_COLORS)


def test_registered_data_takes_the_palette(tiny_export, clean_catalogs):
    from detectron2.data import MetadataCatalog

    from trashpole.data import register_roboflow_splits

    splits = register_roboflow_splits("palette", str(tiny_export))
    assert MetadataCatalog.get(splits["train"]).thing_colors == class_colors(2)
    # (tests/test_train.py checks the predictor's metadata against the same colours)


def test_importing_visualization_picks_no_backend():
    code = "import sys, trashpole.visualization; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_training_curves_png(tmp_path):
    rows = [
        {"epoch": 1, "train_loss": 1.5, "val_loss": 1.25, "segm_AP": 10.0, "lr": 1e-3},
        {"epoch": 2, "train_loss": 0.75, "val_loss": 0.5, "segm_AP": 30.0, "lr": 1e-4},
    ]
    path = str(tmp_path / "curves.png")
    plot_training_curves(rows, path)
    image = cv2.imread(path)
    assert image.shape == (640, 1200, 3)  # 15 x 8 inches at 80 dpi
    assert (image < 250).any() and np.unique(image.reshape(-1, 3), axis=0).shape[0] > 10


def test_gallery_images_are_read_as_the_model_saw_them(tmp_path):
    """EXIF orientation applied (6: rotated 90 degrees clockwise), as detectron2's loader and the
    predictor apply it; an unreadable file gives a gray canvas of the record's size."""
    from PIL import Image

    from trashpole.visualization.overlays import _read_rgb

    raw = np.zeros((20, 40, 3), np.uint8)
    raw[:, :10] = (255, 0, 0)  # red on the left of the stored pixels
    exif = Image.Exif()
    exif[274] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(raw).save(path, exif=exif.tobytes(), quality=95)
    seen = _read_rgb(str(path), 40, 20)
    assert seen.shape == (40, 20, 3)  # width and height swapped
    assert seen[:10, :, 0].mean() > 200 and seen[-10:, :, 0].mean() < 50  # left became top
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    gray = _read_rgb(str(tmp_path / "broken.jpg"), 12, 16)
    assert gray.shape == (12, 16, 3) and (gray == 128).all()


def test_report_photos_are_turned_as_the_model_sees_them(tmp_path):
    """report.html's photo of a JPEG with EXIF orientation 6 (stored 200x400, seen 400x200):
    decoded at a quarter of its size for a 100 px panel, and still turned the way
    ``read_bgr`` (the model's input) turns it; an unreadable file gives a gray panel."""
    from PIL import Image

    from trashpole.images import read_bgr
    from trashpole.visualization.panels import panel_size, read_photo

    raw = np.zeros((200, 400, 3), np.uint8)
    raw[:, :100] = (255, 0, 0)  # red on the left quarter of the stored pixels
    exif = Image.Exif()
    exif[274] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(raw).save(path, exif=exif.tobytes(), quality=95)
    size = panel_size(400, 200, side=100)
    assert size == (100, 50)
    # 1/4 of the stored 200x400 covers the panel once turned (1/8 would not)
    assert read_bgr(str(path), at_least=size)[0].shape == (100, 50, 3)
    photo = read_photo(str(path), size)
    assert photo.shape == (100, 50, 3)
    assert photo[:20, :, 2].mean() > 200 and photo[-70:, :, 2].mean() < 50  # left became top
    model = cv2.resize(read_bgr(str(path))[0], (50, 100), interpolation=cv2.INTER_AREA)
    assert np.abs(photo.astype(int) - model).mean() < 4
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    gray = read_photo(str(tmp_path / "broken.jpg"), (12, 16))
    assert gray.shape == (12, 16, 3) and (gray == 128).all()
    assert read_photo(str(tmp_path / "missing.jpg"), (12, 16)).shape == (12, 16, 3)
