"""Timings of trashpole's parts on generated inputs; each module has ``run(out_dir, ...) -> dict``."""
