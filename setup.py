"""The project's metadata is declarative (setup.cfg). This file declares what cannot be: the
optional C extensions, the PNG unfilter (cityscapes_io/_png.c) and the pixel-pair counter of
evaluation (cityscapes_io/_count.c). They are optional: where they do not compile (no C
compiler, no Python headers) the installation goes on and the library decodes PNGs with Pillow
and counts with numpy."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("cityscapes_io._png", ["cityscapes_io/_png.c"], optional=True),
                   Extension("cityscapes_io._count", ["cityscapes_io/_count.c"], optional=True)])
