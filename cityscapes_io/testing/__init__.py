"""Tools for testing code that reads Cityscapes: :func:`generate` writes a deterministic
synthetic dataset (local, in a zip, on an object store), with the release's other parts when
asked (:data:`PART_FOLDERS`), :func:`make_frame` draws one frame's polygons and label images in
memory (:mod:`cityscapes_io.testing.synthetic`)."""
from .synthetic import PART_FOLDERS, generate, make_frame

__all__ = ["generate", "make_frame", "PART_FOLDERS"]
