"""The project's metadata is declarative (setup.cfg). This file declares the one thing that
cannot be: the optional C extension that unfilters PNG rows (cityscapes_io/_png.c). It is
optional: where it does not compile (no C compiler, no Python headers) the installation goes on
and the library decodes PNGs with Pillow."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("cityscapes_io._png", ["cityscapes_io/_png.c"], optional=True)])
