"""Image files for int8 inference: an .npz with 'images' (n x inputs, int8) and, for
evaluation, 'labels' (one per image)."""

from __future__ import annotations

import numpy as np

from prune8_host.errors import FileFormatError

from .npzio import load_arrays


def load_images(path, with_labels: bool):
    arrays = load_arrays(path)
    if "images" not in arrays or (with_labels and "labels" not in arrays):
        need = "'images' and 'labels'" if with_labels else "'images'"
        raise FileFormatError(f"{path}: needs arrays {need}")
    images = arrays["images"]
    if images.dtype != np.int8 or images.ndim != 2:
        raise FileFormatError(f"{path}: 'images' must be 2-D int8 (n x inputs), got "
                              f"{images.dtype} {images.shape}")
    labels = arrays.get("labels") if with_labels else None
    if labels is not None and labels.shape != (len(images),):
        raise FileFormatError(f"{path}: 'labels' must hold one label per image")
    return images, labels
