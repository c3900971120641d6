"""CamVid, in Datumaro's layout: ``<subset>/<id>.<ext>``, ``<subset>annot/<id>.png``,
``<subset>.txt`` (lines ``/<subset>/<id>.<ext> /<subset>annot/<id>.png``) and
``label_colors.txt``.

Masks are paletted PNGs whose palette holds one colour per label (made distinct when the
input's colours collide): tools that expand the palette see the label colours, tools that read
indices see the label ids. CamVid is a semantic format with no instances; so that a round trip
keeps them, the writer also puts the frame's instanceIds (16-bit, the Cityscapes encoding) in
``<subset>annot_instances/<id>.png`` (``save_instances=False`` leaves it out). Other tools
ignore that folder; this reader uses it when its classes agree with the colour mask, and
otherwise reads every class region as one whole-class segment (``is_crowd`` True).

Reading follows Datumaro: the labels come from ``dataset_meta.json``, else ``label_colors.txt``,
else Datumaro's 32-class CamVid default map (:data:`CAMVID_LABELS`); RGB masks are read by
those colours, paletted ones by their palette's colours, gray ones by value. A frame without a
mask (a photo only) is a one-column line in ``<subset>.txt``, as Datumaro writes it; paths with
whitespace are double-quoted, as Datumaro quotes them.

The paths of ``<subset>.txt`` are relative to the dataset's root (the leading ``/`` Datumaro writes
means the root); one that leads outside it is refused, naming the list and the line.
"""
from __future__ import annotations

import posixpath
import warnings
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from .. import png
from ..errors import DatasetNotFoundError, InvalidFileError, LabelMapError, OnError, apply_policy
from ..frame import Frame
from ..sources import MaskSource
from ..instances import class_of, class_of_array, instance_value, split_value
from ..labels import Label, LabelMap, excerpt
from ..mapping import colors_to_ids, distinct_colors, label_color_table, value_lut
from ..names import sort_key
from .base import Reader
from ..storage import Root, check_inside, listdir, resolve_single_root
from .base import Files, Segments, Writer
from . import decode_text, read_dataset_file, read_label_file, resolve_listed, text_lines

__all__ = ["CamvidReader", "CamvidWriter", "CAMVID_LABELS", "camvid_labels", "decode_camvid", "decode_camvid_mask"]

COLORS_FILE = "label_colors.txt"
META_FILE = "dataset_meta.json"
ANNOT = "annot"
INSTANCES = "annot_instances"


#: Datumaro's default CamVid map (the 32 classes of the CamVid release), read for a tree that
#: has neither ``dataset_meta.json`` nor ``label_colors.txt``: ``(name, colour)`` in id order.
CAMVID_LABELS = (
    ("Void", (0, 0, 0)), ("Animal", (64, 128, 64)), ("Archway", (192, 0, 128)),
    ("Bicyclist", (0, 128, 192)), ("Bridge", (0, 128, 64)), ("Building", (128, 0, 0)),
    ("Car", (64, 0, 128)), ("CartLuggagePram", (64, 0, 192)), ("Child", (192, 128, 64)),
    ("Column_Pole", (192, 192, 128)), ("Fence", (64, 64, 128)), ("LaneMkgsDriv", (128, 0, 192)),
    ("LaneMkgsNonDriv", (192, 0, 64)), ("Misc_Text", (128, 128, 64)), ("MotorcycycleScooter", (192, 0, 192)),
    ("OtherMoving", (128, 64, 64)), ("ParkingBlock", (64, 192, 128)), ("Pedestrian", (64, 64, 0)),
    ("Road", (128, 64, 128)), ("RoadShoulder", (128, 128, 192)), ("Sidewalk", (0, 0, 192)),
    ("SignSymbol", (192, 128, 128)), ("Sky", (128, 128, 128)), ("SUVPickupTruck", (64, 128, 192)),
    ("TrafficCone", (0, 0, 64)), ("TrafficLight", (0, 64, 64)), ("Train", (192, 64, 128)),
    ("Tree", (128, 128, 0)), ("Truck_Bus", (192, 128, 192)), ("Tunnel", (64, 0, 64)),
    ("VegetationMisc", (192, 192, 0)), ("Wall", (64, 192, 0)),
)


def camvid_labels() -> LabelMap:
    """The default CamVid label map (:data:`CAMVID_LABELS`, ids 0..31, ``Void`` = 0)."""
    return LabelMap((Label(n, i, c) for i, (n, c) in enumerate(CAMVID_LABELS)), source="camvid")


def decode_camvid(mask_data: bytes, mask_path: str, inst_data: Optional[bytes], inst_path: Optional[str],
                  labels: LabelMap) -> np.ndarray:
    """The instanceIds array of a CamVid frame.

    Parameters
    ----------
    mask_data, mask_path : bytes, str
        The ``<subset>annot/`` mask and its path (for messages).
    inst_data, inst_path : bytes or None, str or None
        The instances sidecar (``<subset>annot_instances/``), when there is one.
    labels : LabelMap
        The dataset's labels, whose colours RGB and paletted masks are read by.

    Returns
    -------
    ndarray
        ``uint16``: the sidecar's instanceIds when its classes agree with the mask (a warning
        says so when they do not), else the class of every pixel (whole-class regions).

    Raises
    ------
    InvalidFileError
        The mask is not a PNG, or holds a colour that no label has (the message names the
        file, a pixel and the colour).
    """
    ids = decode_camvid_mask(mask_data, mask_path, labels).astype(np.uint16, copy=False)
    if inst_data is None:
        return ids
    inst = png.decode_gray(inst_data, inst_path or "instances")
    # The instances are used only where they agree with the mask, the file other tools edit.
    if inst.shape == ids.shape:
        classes = class_of_array(inst)
        if np.array_equal(classes, ids):
            return inst.astype(np.uint16, copy=False)
    warnings.warn(f"{inst_path}: does not match its colour mask; read as classes only")
    return ids


class CamvidSource(MaskSource):
    """A CamVid frame's files: the colour mask, and the instanceIds sidecar when there is one."""

    GT_KINDS = ("mask",)
    EXTRA_KIND = "instances"
    DECODE = staticmethod(decode_camvid)


def decode_camvid_mask(data: bytes, path: str, labels: LabelMap) -> np.ndarray:
    """Label id of every pixel of a CamVid mask: RGB(A) masks by the labels' colours, paletted
    masks by their palette's colours (as tools that expand the palette see them), gray masks
    by value. Labels without colours have VOC's colour of their index (Datumaro's rule)."""
    ctype = png.read_header(data, path).color_type
    what = f"the label map ({labels.source})"
    if ctype in (2, 6):
        return colors_to_ids(png.decode_rgb(data, path), label_color_table(labels), path, what)
    if ctype == 3:
        indices, palette = png.decode_paletted(data, path)
        used = np.unique(indices)
        try:
            mapped = colors_to_ids(palette[used][None, :, :], label_color_table(labels), path, what)[0]
        except InvalidFileError:
            # Name the first pixel of the offending colour, not its place in the palette.
            colors_to_ids(palette[indices], label_color_table(labels), path, what)
            raise
        table = np.zeros(256, np.uint16)
        table[used] = mapped
        return table[indices]
    return png.decode_gray(data, path)


def _camvid_list(root: Root, name: str) -> bool:
    """Whether ``<subset>.txt`` starts with a line of CamVid's form:
    ``/<subset>/<image> /<subset>annot/<mask>`` (or the image alone)."""
    subset = name[: -len(".txt")]
    try:
        head = root.fs.cat_file(check_inside(root.fs, root.path, root.join(name)), start=0, end=4096)
    except (OSError, ValueError):  # UnsafePathError is a ValueError: a link out of the root is no list
        return False
    for _, line in text_lines(head.decode("utf-8-sig", "replace")):
        first = line.split(" /", 1)
        return first[0].lstrip("/").startswith(f"{subset}/") and (
            len(first) == 1 or first[1].startswith(f"{subset}annot/"))
    return False


class CamvidReader(Reader):
    """Lists a CamVid dataset (subsets from ``<subset>.txt``, else ``<subset>annot/`` folders)."""

    format = "camvid"
    EVIDENCE = "<subset>annot/ or <subset>.txt"

    @classmethod
    def detect(cls, root: Root, listing: Mapping[str, str]) -> Optional[str]:
        """A ``<subset>annot/`` folder, or a ``<subset>.txt`` list of CamVid's form (its first
        line read)."""
        annot = sorted(d for d, t in listing.items() if t == "directory" and d.endswith("annot") and len(d) > len("annot"))
        if annot:
            return f"{annot[0]}/"
        for name in sorted(n for n, t in listing.items() if t == "file" and n.endswith(".txt")):
            if name != "label_colors.txt" and _camvid_list(root, name):
                return name
        return None

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error: OnError = "raise"):
        self.root: Root = resolve_single_root(url, storage_options, "CamVid")
        self.roots = [self.root]
        self.on_error = on_error
        top = listdir(self.root, "")
        self.labels = self._read_labels(top)
        self._lists = {n[:-4]: n for n, t in top.items() if t == "file" and n.endswith(".txt") and n != COLORS_FILE}
        subsets = set(self._lists) or {n[: -len(ANNOT)] for n, t in top.items()
                                       if t == "directory" and n.endswith(ANNOT) and len(n) > len(ANNOT)}
        if not subsets:
            raise DatasetNotFoundError(self.root.url, "not a CamVid dataset: no <subset>.txt or <subset>annot/")
        wanted = [split] if isinstance(split, str) else (list(split) if split else None)
        if wanted is not None:
            missing = [s for s in wanted if s not in subsets]
            if missing:
                raise DatasetNotFoundError(self.root.url, f"no subset {', '.join(map(repr, missing))}")
            subsets = set(wanted)
        self._splits = sorted(subsets)

    def _read_labels(self, top: Dict[str, str]) -> LabelMap:
        """Labels as Datumaro finds them: ``dataset_meta.json``, else ``label_colors.txt``, else
        the default CamVid map."""
        for name in (META_FILE, COLORS_FILE):
            labels = read_label_file(self.root, name) if top.get(name) == "file" else None
            if labels is not None:
                return labels
        return camvid_labels()

    def splits(self) -> List[str]:
        return list(self._splits)

    def _pairs(self, split: str) -> Iterator[Tuple[str, Optional[str], Optional[str]]]:
        """``(stem, image, mask)`` of a subset's frames: filesystem paths inside the root (the
        image None when the list does not name one), from ``<subset>.txt``, else from a listing
        of ``<subset>annot/``."""
        if split not in self._lists:
            for path in sorted(self.root.fs.find(self.root.join(f"{split}{ANNOT}"))):
                rel = self.root.relative(check_inside(self.root.fs, self.root.path, path))
                yield posixpath.splitext(rel[len(split) + len(ANNOT) + 1:])[0], None, path
            return
        name = self._lists[split]
        where = self.root.display(name)
        data = read_dataset_file(self.root, name)
        if data is None:
            raise DatasetNotFoundError(where, "list file disappeared or cannot be read")
        prefix = f"{split}/"
        first: Dict[str, str] = {}
        for lineno, line in text_lines(decode_text(data, where)):
            entry = f"line {lineno}"
            image, mask = parse_list_line(line, split, where, entry)
            image_path = self._inside(image, where, entry)
            rel = self.root.relative(image_path)
            stem = posixpath.splitext(rel[len(prefix):] if rel.startswith(prefix) else posixpath.basename(rel))[0]
            if stem in first:  # the frame would be given (and written) twice
                apply_policy(self.on_error, InvalidFileError(where, f"{entry}: lists {stem!r} again "
                                                                    f"(first on {first[stem]})"))
                continue
            first[stem] = entry
            yield stem, image_path, None if mask is None else self._inside(mask, where, entry)

    def _inside(self, rel: str, where: str, entry: str) -> str:
        """The filesystem path of a path of a list line (``/`` at its start means the root, as
        Datumaro writes it), refused when it leads outside the root."""
        return resolve_listed(self.root, rel[1:] if rel.startswith("/") else rel, where, entry)

    def _listing(self, folder: str) -> Dict[str, str]:
        """``{stem: path}`` of the files under a folder, from one listing."""
        out: Dict[str, str] = {}
        try:
            for p in self.root.fs.find(self.root.join(folder)):
                out[posixpath.splitext(self.root.relative(p)[len(folder) + 1:])[0]] = p
        except FileNotFoundError:
            pass
        return out

    def iter_frames(self, split: str) -> Iterator[Frame]:
        images = self._listing(split)
        image_paths = set(images.values())
        instances = self._listing(f"{split}{INSTANCES}")
        for stem, image, mask in sorted(self._pairs(split), key=lambda p: sort_key(p[0])):
            files = {}
            if mask:
                files["mask"] = (self.root.fs, mask)
            if image is not None and image in image_paths:
                files["image"] = (self.root.fs, image)
            elif stem in images:
                files["image"] = (self.root.fs, check_inside(self.root.fs, self.root.path, images[stem]))
            if mask and stem in instances:
                files["instances"] = (self.root.fs, check_inside(self.root.fs, self.root.path, instances[stem]))
            yield Frame(stem, split, self.labels, CamvidSource(files, self.labels), on_error=self.on_error)



def parse_list_line(line: str, split: str, where: str, entry: str) -> Tuple[str, Optional[str]]:
    """``(image, mask)`` paths of one ``<subset>.txt`` line, as written (nothing resolved:
    see :meth:`CamvidReader._inside`); ``mask`` is None on a one-column line (an image without
    a mask).

    Lines are ``/<subset>/<id>.<ext> /<subset>annot/<id>.png``; Datumaro puts both paths in
    double quotes when one has whitespace, and this library's older output wrote such paths
    unquoted (the mask path is then found by its ``/<subset>annot/`` prefix). Errors are
    ``InvalidFileError(where, "<entry>: ...")``.
    """
    line = line.strip()
    if '"' in line:
        parts = line.split('"')
        if len(parts) == 5 and not parts[0].strip() and not parts[2].strip() and not parts[4].strip():
            image, mask = parts[1], parts[3]
        elif len(parts) == 3 and not parts[0].strip() and not parts[2].strip():
            image, mask = parts[1], ""
        else:
            raise InvalidFileError(where, f"{entry}: unbalanced or misplaced quotes: {excerpt(line)!r}")
    else:
        cut = -1
        for marker in (f" /{split}{ANNOT}/", f" {split}{ANNOT}/"):
            cut = line.find(marker)
            if cut >= 0:
                break
        if cut >= 0:
            image, mask = line[:cut], line[cut + 1:]
        else:
            fields = line.split()
            if len(fields) > 2:
                raise InvalidFileError(where, f"{entry}: expected '<image> [<mask>]', got {excerpt(line)!r}")
            image, mask = fields[0], (fields[1] if len(fields) > 1 else "")
    return image.strip(), (mask.strip() or None)


def format_list_line(image: str, mask: Optional[str]) -> str:
    """One ``<subset>.txt`` line as Datumaro writes it: ``/<image> /<mask>``, or ``/<image>``
    alone for an image without a mask; paths with whitespace in double quotes."""
    paths = [f"/{image}"] + ([f"/{mask}"] if mask else [])
    if any(c.isspace() for p in paths for c in p):
        paths = [f'"{p}"' for p in paths]
    return " ".join(paths) + "\n"


class CamvidWriter(Writer):
    """Writes CamVid (see the module docstring)."""

    format = "camvid"
    ENCODES_AHEAD = True

    def __init__(self, url, *, save_instances: bool = True, **options):
        self.save_instances = bool(save_instances)
        super().__init__(url, **options)

    def frame_files(self, frame: Frame, seg: Optional[Segments]) -> Files:
        files = []
        split = frame.split or "default"
        photo = self.photo(frame, None if seg is None else seg.ids.shape) if self.save_media else None
        if photo is not None:
            files.append((f"{split}/{frame.id}{photo[1]}", photo[0]))
        if seg is not None:
            inst, values = seg.ids, seg.values
            palette = self._color_table
            pos = self._position
            unknown = sorted({class_of(v) for v in values} - set(pos))
            if unknown:
                raise InvalidFileError(frame.id, f"label id {unknown[0]} is not in the output label map")
            # A paletted PNG: colour readers see the label colours, index readers the label index
            # (the label's line in label_colors.txt: its id, unless the map has gaps).
            cls = value_lut(values, lambda v: pos[class_of(v)])[inst]
            files.append((f"{split}{ANNOT}/{frame.id}.png", png.encode_label_png(cls, palette=palette)))
            if self.save_instances:
                if not self._dense:
                    inst = value_lut(values, lambda v: instance_value(pos[class_of(v)], split_value(v)[1]),
                                     np.uint16)[inst]
                files.append((f"{split}{INSTANCES}/{frame.id}.png",
                              png.encode_label_png(inst.astype(np.uint16, copy=False))))
        return files

    def index_info(self, frame: Frame) -> tuple:
        # <subset>.txt names the photo path, written or not, and the mask when there is one.
        return (self.photo_ext(frame) or self.image_ext or frame.image_ext or ".png", frame.has_annotations)

    def planned_files(self, frame: Frame) -> List[str]:
        split = frame.split or "default"
        files = []
        if frame.has_annotations:
            files.append(f"{split}{ANNOT}/{frame.id}.png")
            if self.save_instances:
                files.append(f"{split}{INSTANCES}/{frame.id}.png")
        ext = self.photo_ext(frame) if self.save_media else None
        if ext:
            files.append(f"{split}/{frame.id}{ext}")
        return files

    def setup(self, labels: LabelMap) -> None:
        # label_colors.txt numbers labels by line: a map with gaps (the train ids' 255) is
        # written in id order, each label at its line's index.
        self._dense = labels.is_dense
        ordered = sorted((l for l in labels if l.id >= 0), key=lambda l: l.id)
        ordered += [l for l in labels if l.id < 0]
        self._position = {l.id: i for i, l in enumerate(ordered) if l.id >= 0}
        if len(ordered) > 256:
            raise LabelMapError(labels.source, f"{len(ordered)} labels: CamVid masks hold at most 256")
        colors = distinct_colors(ordered)
        self._color_table = np.zeros((256, 3), np.uint8)
        self._color_table[: len(colors)] = colors
        self._out_labels = LabelMap((Label(l.name, i, c) for i, (l, c) in enumerate(zip(ordered, colors))),
                                    source=labels.source)

    def index_files(self) -> Files:
        files = []
        for subset, ids in self.subsets.items():
            lines = []
            for i in ids:
                info = self.infos.get((subset, i), ())
                ext = info[0] if len(info) > 0 else ".png"
                has_mask = info[1] if len(info) > 1 else True
                lines.append(format_list_line(f"{subset}/{i}{ext}", f"{subset}{ANNOT}/{i}.png" if has_mask else None))
            files.append((f"{subset}.txt", "".join(lines).encode("utf-8")))
        files.append((COLORS_FILE, self._out_labels.to_label_colors().encode("utf-8")))
        return files
