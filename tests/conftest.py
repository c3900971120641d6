"""Shared fixtures: hand-made Cityscapes trees from numpy arrays, zip archives, and a real S3
protocol server (moto's server mode) on 127.0.0.1 with s3fs, and a record of the files a test
really opens (an audit hook), for the tests of reads outside a dataset's root."""
from __future__ import annotations

import importlib.machinery
import os
import posixpath
import socket
import sys
import zipfile


def _use_the_installed_package() -> None:
    """Test the package as installed. ``python -m pytest`` puts the checkout first on
    ``sys.path``, and the checkout's package has no compiled extensions: ``pip install .`` builds
    them into the installed copy (an editable install builds them in the checkout, and is found
    through the checkout anyway). When a copy installed elsewhere is found, the tests import it,
    and so do the Pythons they start (``PYTHONSAFEPATH``: no current folder on their path)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != root]
    spec = importlib.machinery.PathFinder.find_spec("cityscapes_io", rest)
    if spec is not None and spec.origin and not os.path.abspath(spec.origin).startswith(root + os.sep):
        sys.path[:] = rest
        os.environ["PYTHONSAFEPATH"] = "1"


_use_the_installed_package()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cityscapes_io.png import encode_png  # noqa: E402

# A hand-made instanceIds array exercising every rule of the encoding.
SEMANTIC = np.full((24, 32), 7, dtype=np.uint16)  # road (stuff)
SEMANTIC[0:3, :] = 0  # void
SEMANTIC[5:9, 2:7] = 26000  # car, instance number 0
SEMANTIC[10:12, 10:20] = 26003  # car 3 (no 26004: gaps are normal)
SEMANTIC[14:17, 1:4] = 26005  # car 5
SEMANTIC[3:5, 20:26] = 26  # a crowd of cars
SEMANTIC[18:22, 25:30] = 24001  # person 1


def label_ids_of(inst: np.ndarray) -> np.ndarray:
    inst = inst.astype(np.uint32)
    return np.where(inst >= 1000, inst // 1000, inst).astype(np.uint8)


def write_file(root: str, rel: str, data: bytes) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def write_frame(root: str, split: str, frame_id: str, inst=SEMANTIC, *, photo=True, gt=True, label_ids=True,
                image_ext=".png"):
    """Write one frame of a Cityscapes tree under ``root`` from an instanceIds array."""
    h, w = inst.shape
    if gt:
        write_file(root, f"gtFine/{split}/{frame_id}_gtFine_instanceIds.png", encode_png(inst))
        if label_ids:
            write_file(root, f"gtFine/{split}/{frame_id}_gtFine_labelIds.png", encode_png(label_ids_of(inst)))
    if photo:
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[..., 0] = np.arange(w, dtype=np.uint8)[None, :]
        rgb[..., 1] = np.arange(h, dtype=np.uint8)[:, None]
        if image_ext == ".png":
            data = encode_png(rgb)
        else:
            import io

            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format={".jpg": "JPEG", ".bmp": "BMP"}[image_ext])
            data = buf.getvalue()
        write_file(root, f"leftImg8bit/{split}/{frame_id}_leftImg8bit{image_ext}", data)


def read_tree(root: str) -> dict:
    """Every file under ``root``: ``{relative path with "/": bytes}`` (to compare outputs)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, root).replace(os.sep, "/")] = f.read()
    return out


def zip_dir(src: str, dest: str, *, prefix: str = "", only: str = "") -> str:
    """Zip the files of ``src`` (optionally only those under ``only``) into ``dest``."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zf:
        for dirpath, _, files in os.walk(src):
            for name in sorted(files):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, src).replace(os.sep, "/")
                if only and not rel.startswith(only):
                    continue
                zf.write(full, posixpath.join(prefix, rel) if prefix else rel)
    return dest


#: (split, id) of the ``tree`` fixture's frames in the order a reader must give them.
TREE_ORDER = [
    ("train", "aachen/aachen_000002_000007"),
    ("train", "aachen/aachen_000002_000100"),
    ("train", "aachen/aachen_000010_000019"),
    ("train", "bad-honnef/bad-honnef_000001_000042"),
    ("val", "muhlheim-ruhr/muhlheim-ruhr_000000_000005"),
    ("val", "stuttgart_00/stuttgart_00_000000_000001"),
]


@pytest.fixture
def tree(tmp_path):
    """A small tree: two splits, hyphenated and underscored cities, frames missing a side."""
    root = str(tmp_path / "cityscapes")
    write_frame(root, "train", "bad-honnef/bad-honnef_000001_000042")
    write_frame(root, "train", "aachen/aachen_000010_000019")
    write_frame(root, "train", "aachen/aachen_000002_000100")
    write_frame(root, "train", "aachen/aachen_000002_000007", photo=False)  # ground truth only
    write_frame(root, "val", "stuttgart_00/stuttgart_00_000000_000001", gt=False)  # photo only
    write_frame(root, "val", "muhlheim-ruhr/muhlheim-ruhr_000000_000005")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 protocol server (moto's server mode) on 127.0.0.1, on a free port."""
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    for var, val in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                     ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(var, val)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, request):
    """``(fs, storage_options, bucket)``: a fresh bucket on the local S3 server."""
    import s3fs

    opts = {"key": "testing", "secret": "testing",
            "client_kwargs": {"endpoint_url": s3_server, "region_name": "eu-west-1"}}
    fs = s3fs.S3FileSystem(**opts)
    bucket = "b-" + request.node.name.lower().replace("_", "-")[:40].strip("-") + "-" + str(_free_port())
    fs.mkdir(bucket)
    yield fs, opts, bucket
    fs.invalidate_cache()


def upload_dir(fs, local: str, dest: str) -> None:
    for dirpath, _, files in os.walk(local):
        for name in files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, local).replace(os.sep, "/")
            with open(full, "rb") as f:
                fs.pipe_file(f"{dest}/{rel}", f.read())
    fs.invalidate_cache()


#: The python of an environment where the official cityscapesScripts run (opt-in oracle tests).
CITYSCAPESSCRIPTS = os.environ.get("CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON")
needs_cityscapesscripts = pytest.mark.skipif(
    not CITYSCAPESSCRIPTS,
    reason="opt-in: set CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON (README, Development)")


def traced_peak(fn, *args, **kwargs) -> int:
    """Peak bytes numpy and Python allocate while ``fn(*args, **kwargs)`` runs (tracemalloc);
    a first untimed call keeps imports and first-use tables out of the measure."""
    import tracemalloc

    fn(*args, **kwargs)
    tracemalloc.start()
    try:
        fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- the files a test opens (audit hooks cannot be removed: one for the process, switched on by
# the fixture) ------------------------------------------------------------------------------------
_OPENED: list = []
_WATCHING: list = []


def _audit(event, args):
    if _WATCHING and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def opened():
    """The files opened while the test runs, as the interpreter opened them (``open`` audit
    events: the real opens, not a mock); clear it to start counting afresh."""
    _OPENED.clear()
    _WATCHING.append(True)
    yield _OPENED
    _WATCHING.clear()
    _OPENED.clear()
