"""Where a frame's other parts are: the release's folders beside ``gtFine/`` and ``leftImg8bit/``.

Every part of the release is keyed by the frame's ``<city>_<seq>_<frame>`` id in a top folder of
its own (one official zip package each): ``rightImg8bit/``, ``disparity/``, ``camera/``,
``leftImg8bit_foggy/``, ``gtBboxCityPersons/``, ``leftImg8bit_sequence/``, ... (see
:func:`cityscapes_io.names.is_part_folder`). Opening a dataset notes which of those folders the
roots have (from the top listing it reads anyway); a part's ``<folder>/<split>/<city>/`` is
listed only when a frame first asks for that part, and the last few listings are kept, so that
iterating a city lists each of its part folders once.

:class:`PartFolders` is that index, one per dataset; :class:`FrameParts` its view for one frame
(what :class:`~cityscapes_io.Frame`'s ``disparity()``, ``camera()``, ``image(key)``,
``snippet()``, ... read through); :class:`SequenceFrame` one neighbour of an annotated frame in
the ``_sequence`` folders. Each holds locations and no bytes, and pickles without its listings.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Executor, Future
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Protocol, Sequence, Set, Tuple

import numpy as np

from . import png
from .errors import DatasetNotFoundError
from .names import (IMAGE_DIR, SEQUENCE_SUFFIX, photo_file_word, split_photo_ext, frame_dir, is_photo_folder, parse_frame_id,
                    part_suffix, safe_relpath)
from .parts import (Camera, Person, decode_disparity, depth, image_file_suffix, parse_camera, parse_image_key,
                    parse_persons, parse_timestamp, parse_vehicle)
from .storage import Root, is_remote, listdir, read_file

__all__ = ["PartFolders", "PartStore", "FrameParts", "SequenceFrame", "PART_NAMES", "DEFAULT_IMAGE_KEY"]

#: What begins the kind of a part file a frame reads (:meth:`FrameParts.watch`).
PART_KIND = "part:"
#: The photo a frame's ``image()`` is by default.
DEFAULT_IMAGE_KEY = IMAGE_DIR
#: Parts by the names ``Frame`` methods and ``--parts`` use, with their folders.
PART_NAMES = ("disparity", "camera", "vehicle", "timestamp", "gtBboxCityPersons", "gtBbox3d")

#: Where one file is: ``(root, path relative to the root)`` for :class:`PartFolders`; any pair
#: whose second item ends with ``/<file name>`` for another :class:`PartStore`.
Location = Tuple[Any, str]


class PartStore(Protocol):
    """What :class:`FrameParts` reads through: :class:`PartFolders` (a dataset's roots), or the
    members of a tar shard's sample (:mod:`cityscapes_io.formats.wds`)."""

    def names(self) -> List[str]:
        """The part folders present, sorted."""

    def photo_folders(self) -> List[str]:
        """The photo folders present."""

    def listing(self, folder: str, split: str, city: str) -> Mapping[str, Location]:
        """``{file name: location}`` of ``<folder>/<split>/<city>/``."""

    def read(self, location: Location) -> bytes:
        """The bytes of a file :meth:`listing` gave."""

    def shown(self, location: Location) -> str:
        """How messages name a file :meth:`listing` gave."""


class PartFolders:
    """The part folders of a dataset's roots, and their listings as frames need them.

    Parameters
    ----------
    folders : mapping of str to list of (Root, str)
        ``{folder name: [(root, base)]}``: where each part folder is (``base``: its path in the
        root, ``leftImg8bit`` or ``imgsFine/leftImg8bit`` for the photos of Datumaro's first
        layout).
    on_error : "raise", "skip" or callable
        Unused here (listing errors are raised to the caller), kept with the index.
    """

    #: Listings kept (``<folder>/<split>/<city>/``): a few per part a loop reads.
    LISTINGS = 32

    def __init__(self, folders: Mapping[str, Sequence[Tuple[Root, str]]]):
        self.folders: Dict[str, List[Tuple[Root, str]]] = {k: list(v) for k, v in folders.items() if v}
        self._listings: "OrderedDict[Tuple[str, str, str], Dict[str, Location]]" = OrderedDict()
        self._lock = threading.Lock()

    def names(self) -> List[str]:
        """The part folders present, sorted."""
        return sorted(self.folders)

    def photo_folders(self) -> List[str]:
        """The photo folders present (``leftImg8bit``, ``rightImg8bit``, ``leftImg8bit_foggy``, ...)."""
        return [f for f in self.names() if is_photo_folder(f)]

    def listing(self, folder: str, split: str, city: str) -> Dict[str, Location]:
        """``{file name: location}`` of ``<folder>/<split>/<city>/`` over every root that has the
        folder (the first root holding a name wins); empty when none has it. Listed once while
        it stays among the last :attr:`LISTINGS` listings."""
        key = (folder, split, city)
        with self._lock:
            found = self._listings.get(key)
            if found is not None:
                self._listings.move_to_end(key)
                return found
        found = {}
        for root, base in self.folders.get(folder, ()):
            rel = f"{base}/{split}/{city}" if city else f"{base}/{split}"
            entries = listdir(root, rel)
            if is_remote(root.fs):  # ours is kept instead: the filesystem's listing cache would grow
                root.fs.invalidate_cache(root.join(rel))
            for name, typ in entries.items():
                if typ == "file":
                    found.setdefault(name, (root, f"{rel}/{name}"))
        with self._lock:
            self._listings[key] = found
            while len(self._listings) > self.LISTINGS:
                self._listings.popitem(last=False)
        return found

    def read(self, location: Location) -> bytes:
        """The bytes of a file :meth:`listing` gave."""
        root, rel = location
        return read_file(root.fs, root.join(rel))

    def shown(self, location: Location) -> str:
        """How messages name a file :meth:`listing` gave."""
        root, rel = location
        return root.display(rel)

    def __getstate__(self):
        return {"folders": self.folders}

    def __setstate__(self, state) -> None:
        PartFolders.__init__(self, state["folders"])

    def __repr__(self) -> str:
        return f"PartFolders({', '.join(self.names())})"


class FrameParts:
    """One frame's view of the part folders: the files named after its id.

    Parameters
    ----------
    folders : PartStore
    split : str
        The split the frame was read from (a renamed split keeps reading from there).
    frame_id : str
        ``city/base`` (``aachen/aachen_000000_000019``).
    image_key : str
        The photo key the frame's own photo (``Frame.image()``) was chosen as.
    """

    def __init__(self, folders: PartStore, split: str, frame_id: str, image_key: str = DEFAULT_IMAGE_KEY):
        self.folders = folders
        self.split = split
        self.frame_id = frame_id
        self.image_key = image_key
        self.city, self.base = frame_dir(frame_id)
        # The frame's own files read (or fetched ahead) while it is held, by location path.
        self._bytes: Dict[str, bytes] = {}
        self._pending: Dict[str, "Future[bytes]"] = {}
        self._watch: Optional[Callable[[str], None]] = None

    # -- finding files -----------------------------------------------------------------------
    def files(self, folder: str, base: Optional[str] = None) -> Dict[str, Location]:
        """``{file name: location}`` of the files of frame ``base`` (default this one) in
        ``folder``: those named ``<base>_…``."""
        prefix = (self.base if base is None else base) + "_"
        return {n: loc for n, loc in self.folders.listing(folder, self.split, self.city).items()
                if n.startswith(prefix)}

    def find(self, folder: str, base: Optional[str] = None) -> Optional[Location]:
        """The file of a one-file part (``disparity``, ``camera``, ...; or its ``_sequence``
        folder with another frame's ``base``), None when absent."""
        name = (self.base if base is None else base) + part_suffix(folder)
        return self.folders.listing(folder, self.split, self.city).get(name)

    def photo(self, key: str, base: Optional[str] = None, folder: Optional[str] = None) -> Optional[Location]:
        """The file of photo ``key`` (any image extension), None when absent. ``folder``: look in
        another folder than the key's (its ``_sequence`` folder)."""
        key_folder, _ = parse_image_key(key)
        stem = (self.base if base is None else base) + image_file_suffix(key)
        for name, loc in self.files(folder or key_folder, base).items():
            got, ext = split_photo_ext(name)
            if got == stem and ext.lower() in png.IMAGE_EXTS:
                return loc
        return None

    def image_keys(self) -> List[str]:
        """The photo keys of the frame's files in the photo folders, sorted."""
        keys = set()
        for folder in self.folders.photo_folders():
            marker = f"{self.base}_{photo_file_word(folder)}"
            for name in self.files(folder):
                stem, ext = split_photo_ext(name)
                if ext.lower() not in png.IMAGE_EXTS or not stem.startswith(marker):
                    continue
                rest = stem[len(marker):]
                if not rest:
                    keys.add(folder)
                elif rest.startswith("_") and len(rest) > 1:
                    keys.add(f"{folder}@{rest[1:]}")
        return sorted(keys)

    def has(self, part: str) -> bool:
        """Whether the frame has ``part``: a part name of :data:`PART_NAMES`, a photo key, or a
        photo folder (any of its variants)."""
        if part in PART_NAMES:
            return self.find(part) is not None
        if "@" in part:
            return self.photo(part) is not None
        if is_photo_folder(part):
            return any(k == part or k.startswith(part + "@") for k in self.image_keys())
        if part.endswith(SEQUENCE_SUFFIX):
            return bool(self.sequence_files(part))
        raise ValueError(f"not a part: {part!r}")

    def present(self) -> Set[str]:
        """The parts the frame has, by name: those of :data:`PART_NAMES`, photo folders (any of
        their variants; the frame's own photo's folder too) and ``_sequence`` folders (files of
        its default snippet)."""
        have = {name for name in PART_NAMES if self.find(name) is not None}
        have.update(key.split("@", 1)[0] for key in self.image_keys())
        have.update(folder for folder in self.sequence_folders() if self.sequence_files(folder))
        return have

    # -- reading -----------------------------------------------------------------------------
    def read(self, location: Location, folder: Optional[str] = None) -> bytes:
        """The bytes of a file. With ``folder``, one of this frame's own files (``<base>_…`` in
        that part folder): kept while the frame is held, taken from a fetch ahead when there is
        one, and its kind told to the watcher (see :meth:`watch`)."""
        name = location[1].rsplit("/", 1)[-1]
        if folder is None or not name.startswith(self.base + "_"):
            return self.folders.read(location)
        key = location[1]
        data = self._bytes.get(key)
        if data is not None:
            return data
        if self._watch is not None:
            self._watch(f"{PART_KIND}{folder}:{name[len(self.base):]}")
        fut = self._pending.pop(key, None)
        if fut is not None:
            try:
                data = fut.result()
            except Exception:  # noqa: BLE001 - a failed fetch ahead is read again, and reported from there
                data = None
        if data is None:
            data = self.folders.read(location)
        self._bytes[key] = data
        return data

    def watch(self, callback: Optional[Callable[[str], None]]) -> None:
        """Call ``callback(kind)`` whenever one of the frame's own part files is read: the kind
        is ``"part:<folder>:<what follows the id>"`` (``part:disparity:_disparity.png``), which
        :meth:`fetch_ahead` takes for the next frames (see :func:`cityscapes_io.parallel.read_ahead`)."""
        self._watch = callback

    def fetch_ahead(self, kinds: Iterable[str], pool: Executor) -> None:
        """Start reading, in ``pool``, this frame's files of the part kinds among ``kinds`` (others
        are ignored); those read or being read already are not read again."""
        for kind in kinds:
            if not kind.startswith(PART_KIND):
                continue
            folder, _, suffix = kind[len(PART_KIND):].partition(":")
            loc = self.folders.listing(folder, self.split, self.city).get(self.base + suffix)
            if loc is None or loc[1] in self._bytes or loc[1] in self._pending:
                continue
            self._pending[loc[1]] = pool.submit(self.folders.read, loc)

    def release(self) -> None:
        """Drop the bytes kept and the fetches ahead."""
        self._bytes.clear()
        self._pending.clear()

    def fresh(self) -> "FrameParts":
        """The same view holding no bytes."""
        return FrameParts(self.folders, self.split, self.frame_id, self.image_key)

    def __getstate__(self):
        return {"folders": self.folders, "split": self.split, "frame_id": self.frame_id,
                "image_key": self.image_key}

    def __setstate__(self, state) -> None:
        FrameParts.__init__(self, **state)

    def shown(self, location: Location) -> str:
        """How messages name a file."""
        return self.folders.shown(location)

    def image(self, key: str) -> Optional[np.ndarray]:
        """Photo ``key`` decoded (uint8, uint16 for 16-bit PNGs), None when absent."""
        loc = self.photo(key)
        return None if loc is None else png.decode_photo(self.read(loc, parse_image_key(key)[0]), self.shown(loc))

    def disparity(self) -> Optional[np.ndarray]:
        loc = self.find("disparity")
        return None if loc is None else decode_disparity(self.read(loc, "disparity"), self.shown(loc))

    def camera(self) -> Optional[Camera]:
        loc = self.find("camera")
        return None if loc is None else parse_camera(self.read(loc, "camera"), self.shown(loc))

    def vehicle(self) -> Optional[Dict[str, float]]:
        loc = self.find("vehicle")
        return None if loc is None else parse_vehicle(self.read(loc, "vehicle"), self.shown(loc))

    def timestamp(self) -> Optional[int]:
        loc = self.find("timestamp")
        return None if loc is None else parse_timestamp(self.read(loc, "timestamp"), self.shown(loc))

    def persons(self) -> Optional[List[Person]]:
        loc = self.find("gtBboxCityPersons")
        return None if loc is None else parse_persons(self.read(loc, "gtBboxCityPersons"), self.shown(loc))

    def boxes3d(self) -> Any:
        loc = self.find("gtBbox3d")
        if loc is None:
            return None
        from .boxes3d import parse_boxes3d

        return parse_boxes3d(self.read(loc, "gtBbox3d"), self.shown(loc))

    # -- sequences ----------------------------------------------------------------------------
    def sequence_folders(self) -> List[str]:
        return [f for f in self.folders.names() if f.endswith(SEQUENCE_SUFFIX)]

    def snippet_numbers(self, before: int, after: int, step: int) -> List[int]:
        """The frame numbers of a snippet around this frame (see :meth:`snippet`)."""
        for name, value in (("before", before), ("after", after)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"step must be a positive integer, got {step!r}")
        number = parse_frame_id(self.frame_id).frame
        if number is None:
            raise ValueError(f"frame {self.frame_id!r}: its id does not follow <city>_<seq>_<frame>, "
                             f"so it has no sequence")
        back = [number - k for k in range(step, before + 1, step)][::-1]
        return [n for n in back if n >= 0] + [number] + [number + k for k in range(step, after + 1, step)]

    def snippet(self, before: int = 19, after: int = 10, step: int = 1) -> List["SequenceFrame"]:
        """The frames of the ``_sequence`` folders around this one (see ``Frame.snippet``)."""
        numbers = self.snippet_numbers(before, after, step)
        stem = self.base[: -len("000000")]  # <city>_<seq>_
        end = len(stem) + 6
        present = set()
        for folder in self.sequence_folders():
            for fname in self.folders.listing(folder, self.split, self.city):
                if fname.startswith(stem) and fname[len(stem):end].isdigit() and fname[end:end + 1] == "_":
                    present.add(int(fname[len(stem):end]))
        return [SequenceFrame(self, n, f"{stem}{n:06d}") for n in numbers if n in present]

    def sequence_files(self, folder: str, before: int = 19, after: int = 10) -> Dict[str, Location]:
        """The files of ``folder`` (a ``_sequence`` folder) of the default snippet around this
        frame (frame numbers ``n - before`` to ``n + after``)."""
        wanted = {f"{self.base[:-6]}{n:06d}" for n in self.snippet_numbers(before, after, 1)}
        return {n: loc for n, loc in self.folders.listing(folder, self.split, self.city).items()
                if n[: len(self.base)] in wanted and n[len(self.base):len(self.base) + 1] == "_"}

    # -- copying -----------------------------------------------------------------------------
    def selected_files(self, parts: Sequence[str]) -> Iterator[Tuple[str, str, Location]]:
        """``(folder, file name, location)`` of every file of the selected parts: part names,
        photo folders (all their variants), photo keys, ``_sequence`` folders (the files of the
        default snippet) or ``"all"`` (every part folder). The frame's own photo (its key) is
        left out: writers copy it as the photo."""
        chosen = self.photo(self.image_key)
        names = self.folders.names() if "all" in parts else list(dict.fromkeys(parts))
        seen = set()
        for part in names:
            if "@" in part:
                folder = parse_image_key(part)[0]
                loc = self.photo(part)
                found = {} if loc is None else {loc[1].rsplit("/", 1)[-1]: loc}
            elif part.endswith(SEQUENCE_SUFFIX):
                folder, found = part, self.sequence_files(part)
            elif part in PART_NAMES:
                folder = part
                loc = self.find(part)
                found = {} if loc is None else {loc[1].rsplit("/", 1)[-1]: loc}
            elif is_photo_folder(part):
                folder, found = part, self.files(part)
            else:
                raise ValueError(f"not a part: {part!r}")
            for fname, loc in sorted(found.items()):
                if loc == chosen or (folder, fname) in seen:
                    continue
                seen.add((folder, fname))
                yield folder, fname, loc

    def __repr__(self) -> str:
        return f"FrameParts({self.split}/{self.frame_id})"


def part_relpath(folder: str, split: str, frame_id: str, name: str) -> str:
    """Where a part's file goes in a Cityscapes tree: ``<folder>/<split>/<city>/<name>``."""
    city, _ = frame_dir(frame_id)
    return safe_relpath(f"{folder}/{split}/{city}/{name}" if city else f"{folder}/{split}/{name}")


class SequenceFrame:
    """One frame of the ``_sequence`` folders around an annotated frame: lazy, like a frame.

    Attributes
    ----------
    number : int
        Its frame number (the annotated frame's is 19 in the train and val snippets).
    id : str
        ``<city>_<seq>_<number>``.
    """

    def __init__(self, parts: FrameParts, number: int, base: str):
        self._parts = parts
        self.number = number
        self.id = base

    def image(self, key: str = DEFAULT_IMAGE_KEY) -> Optional[np.ndarray]:
        """The photo ``key`` of this frame from ``<key folder>_sequence/`` (``leftImg8bit``,
        ``rightImg8bit``), None when absent."""
        folder = parse_image_key(key)[0] + SEQUENCE_SUFFIX
        loc = self._parts.photo(key, self.id, folder)
        return None if loc is None else png.decode_photo(self._parts.read(loc), self._parts.shown(loc))

    def _one(self, part: str) -> Optional[Location]:
        return self._parts.find(part + SEQUENCE_SUFFIX, self.id)

    def timestamp(self) -> Optional[int]:
        loc = self._one("timestamp")
        return None if loc is None else parse_timestamp(self._parts.read(loc), self._parts.shown(loc))

    def vehicle(self) -> Optional[Dict[str, float]]:
        loc = self._one("vehicle")
        return None if loc is None else parse_vehicle(self._parts.read(loc), self._parts.shown(loc))

    def disparity(self) -> Optional[np.ndarray]:
        loc = self._one("disparity")
        return None if loc is None else decode_disparity(self._parts.read(loc), self._parts.shown(loc))

    def files(self) -> Dict[str, str]:
        """``{folder: URL}`` of this frame's files in the ``_sequence`` folders."""
        out = {}
        for folder in self._parts.sequence_folders():
            for loc in self._parts.files(folder, self.id).values():
                out[folder] = self._parts.shown(loc)
        return out

    def __repr__(self) -> str:
        return f"SequenceFrame({self.id})"


def camera_depth(disparity: Optional[np.ndarray], camera: Optional[Camera]) -> Optional[np.ndarray]:
    """Depth from a disparity map and its camera; None when either is missing."""
    if disparity is None or camera is None:
        return None
    return depth(disparity, camera)


def missing_key(key: str, folders: PartFolders, where: str) -> DatasetNotFoundError:
    """The error for a photo key whose folder no root has."""
    folder = parse_image_key(key)[0]
    present = ", ".join(folders.photo_folders()) or "none"
    return DatasetNotFoundError(where, f"no {folder}/ folder for photo key {key!r} (photo folders: {present})")
