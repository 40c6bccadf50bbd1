"""trashpole: detectron2 Mask R-CNN for trash cans and poles."""
