"""Our VOC and CamVid output read back through Datumaro itself (installed in a separate
environment: set CITYSCAPES_IO_DATUMARO_PYTHON to that environment's python; skipped otherwise).

Datumaro maps mask colours back to labels and, for VOC, reads only the segments numbered in
SegmentationObject: every pixel outside the background must come back with its class."""
import json
import os
import subprocess

import numpy as np
import pytest

import cityscapes_io as cio

DATUMARO_PYTHON = os.environ.get("CITYSCAPES_IO_DATUMARO_PYTHON")
pytestmark = pytest.mark.skipif(not DATUMARO_PYTHON, reason="set CITYSCAPES_IO_DATUMARO_PYTHON to a python with datumaro")

READ = r"""
import json, sys, numpy as np, datumaro as dm
ds = dm.Dataset.import_from(sys.argv[1], sys.argv[2])
out = {}
for item in ds:
    masks = [a for a in item.annotations if a.type == dm.AnnotationType.mask]
    h, w = masks[0].image.shape
    cls = np.full((h, w), -1, np.int32)
    for m in masks:
        cls[m.image.astype(bool)] = m.label
    np.save(sys.argv[3] + "/" + item.id.replace("/", "__") + ".npy", cls)
    out[item.id] = item.subset
print(json.dumps(out))
"""


@pytest.mark.parametrize("fmt, dm_fmt", [("voc", "voc_segmentation"), ("camvid", "camvid")])
def test_datumaro_reads_our_output(tmp_path, fmt, dm_fmt):
    out = str(tmp_path / fmt)
    cio.convert(cio.sample_path(), out, format=fmt, save_media=True)
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    run = subprocess.run([DATUMARO_PYTHON, "-c", READ, out, dm_fmt, str(arrays)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    subsets = json.loads(run.stdout.strip().splitlines()[-1])
    ours = cio.open(cio.sample_path())
    assert sorted(subsets) == sorted(f.id for f in ours)
    for frame in ours:
        assert subsets[frame.id] == frame.split
        theirs = np.load(arrays / (frame.id.replace("/", "__") + ".npy"))
        lab = frame.label_ids().astype(np.int32)
        covered = theirs >= 0
        assert np.array_equal(theirs[covered], lab[covered])  # every class read back exactly
        assert set(np.unique(lab[~covered])) <= {0}  # only VOC's background (object 0) is not a mask
