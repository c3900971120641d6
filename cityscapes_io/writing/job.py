"""Which conversion a destination belongs to: the job record kept with a folder's output
(resume, shards and finalize check it), and the guards before anything is written."""
from __future__ import annotations

import hashlib
import inspect
import json
from typing import Any, Dict, List

from fsspec.core import url_to_fs

from .. import jsonfile
from ..errors import InvalidFileError, RefusedError
from ..formats.base import Writer, parse_parts
from ..storage import root_locations
from ..storage.sinks import refuse_sources, written_in_one_go

__all__ = ["JOB_FILE", "job_record", "claim_destination", "claimed", "refuse_overwriting_source",
           "options_for_workers", "refuse_in_parts"]


#: The record of the conversion a folder destination holds, kept with its output (resume,
#: shards and finalize check it; readers list no frame from it).
JOB_FILE = ".cityscapes-io-job.json"


def job_record(ds, w: Writer, options: Dict[str, Any]) -> Dict[str, Any]:
    """What decides the bytes a conversion writes: the output format, the sources (places, not
    URL spellings), the output labels and the writer options (``label_map`` is recorded by the
    labels it resolved to)."""
    assert w.labels is not None
    labels = hashlib.sha256(repr(list(w.labels)).encode("utf-8")).hexdigest()[:16]
    defaults = _defaults(type(w))
    return {"cityscapes_io_job": 1, "format": w.format,
            "sources": [f"{proto}://{path}" for root in ds.reader.roots for proto, path in root_locations(root)],
            "labels": f"{len(w.labels)} labels, sha256 {labels}",  # (not their file: its URL's spelling varies)
            "options": {k: _plain(v) for k, v in sorted(_spelled_alike(options).items())
                        if k not in ("label_map", "overwrite") and not (k in defaults and defaults[k] == v)}}


def _spelled_alike(options: Dict[str, Any]) -> Dict[str, Any]:
    """The options with one spelling per value: ``parts="disparity,camera"``, ``["disparity",
    "camera"]`` and ``("disparity", "camera")`` are one selection (an empty one is no option)."""
    out = dict(options)
    if "parts" in out:
        out["parts"] = list(parse_parts(out["parts"])) or None
    return out


def _defaults(cls: type) -> Dict[str, Any]:
    """The default values of a writer class's options (an option given at its default is not
    recorded, so a job reads the same however its options were spelled)."""
    out: Dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for name, param in inspect.signature(init).parameters.items():
            if param.default is not inspect.Parameter.empty:
                out[name] = param.default
    return out


def _plain(value: Any) -> Any:
    """An option's value as JSON can hold it (its repr when it is not a plain value)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return repr(value)


def claim_destination(w: Writer, job: Dict[str, Any], *, fresh: bool) -> None:
    """Record ``job`` in the destination (``fresh``: an empty one, as it is on a first run), or
    check that the job recorded there is this one (resume, shards, finalize). A destination
    holding no record (written by hand, or by an earlier version) is taken as it is. A record
    that differs is refused, saying what differs, before anything is written."""
    data = (json.dumps(job, indent=2, sort_keys=True) + "\n").encode("utf-8")
    if not fresh:
        found = w.dest.read(JOB_FILE)
        if found is not None:
            differs = _differences(w.dest.path(JOB_FILE), found, job)
            if not differs:
                return
            raise RefusedError(w.dest.url, f"holds the output of another job ({'; '.join(differs)}): "
                               f"pass overwrite=True (--overwrite) to replace it, or choose another destination")
    w.dest.put(JOB_FILE, data)


def _differences(path: str, found: bytes, job: Dict[str, Any]) -> List[str]:
    try:
        there = jsonfile.loads(found, path)
    except InvalidFileError:
        there = None
    if not isinstance(there, dict) or there.get("cityscapes_io_job") != 1:
        raise RefusedError(path, "not a job record of cityscapes_io: the destination's record cannot be "
                           "checked; pass overwrite=True (--overwrite) to replace the destination")
    out = []
    for key, what in (("format", "format"), ("sources", "sources"), ("labels", "output labels")):
        if there.get(key) != job[key]:
            out.append(f"{what} {_shown(there.get(key))} there, {_shown(job[key])} now")
    old, new = there.get("options") or {}, job["options"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            out.append(f"option {key} {_shown(old.get(key, 'not given'))} there, {_shown(new.get(key, 'not given'))} now")
    return out


def _shown(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def claimed(w: Writer, job: Dict[str, Any], *, fresh: bool) -> None:
    """:func:`claim_destination`, the writer aborted when it fails."""
    try:
        claim_destination(w, job, fresh=fresh)
    except BaseException:
        w.abort()
        raise


def refuse_overwriting_source(ds, url, storage_options=None, *, replacing: bool = False) -> None:
    """Refuse a destination that is a source of ``ds``, holds one, or lies inside one and is
    to be replaced: :func:`cityscapes_io.storage.sinks.refuse_sources`, the guard every writer's sink
    goes through, for callers that check before opening one."""
    try:
        fs, path = url_to_fs(str(url), **(storage_options or {}))
    except (ImportError, ValueError, TypeError, OSError):
        return  # the destination cannot be opened at all: the sink says why
    refuse_sources(str(url), fs, path, ds.reader.roots, "replace" if replacing else "keep")


def options_for_workers(w: Writer, options: Dict[str, Any]) -> Dict[str, Any]:
    """Writer options for the writers of other processes: the labels the parent resolved (its
    destination is open already, so theirs keep what is there)."""
    opts = dict(options, label_map=w.labels)
    opts.pop("overwrite", None)
    return opts


def refuse_in_parts(w: Writer, asked: str) -> None:
    """Refuse to write ``w``'s destination in parts (``asked``: ``"workers"``, ``"shard,
    resume or workers"``, ...) when it is one archive, written in one go by one process
    (:func:`~cityscapes_io.storage.sinks.written_in_one_go`); the writer is abandoned first."""
    refused = written_in_one_go(w.dest, asked)
    if refused is not None:
        w.abort()
        raise refused
