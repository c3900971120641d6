"""Untrusted input, the write side (issue 17): the one guard between writing commands and their
inputs, resume that checks the destination belongs to its job, crashed workers, photos copied
without decoding, a full temporary folder, an S3 archive whose endpoint goes away."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.storage.sinks import open_sink
from cityscapes_io.writing import JOB_FILE
from cityscapes_io.storage import resolve_root
from cityscapes_io.testing import generate

from conftest import read_tree




# -- one guard: open_sink refuses a destination that overlaps a source --------------------------------
def test_open_sink_refuses_a_source_before_touching_anything(tree, tmp_path):
    src = resolve_root(tree)
    before = read_tree(tree)
    for dst, existing, words in ((tree, "keep", "is the source"), ("file://" + tree + "/", "refuse", "is the source"),
                                 (str(tmp_path), "keep", "holds the source"),
                                 (str(tmp_path), "replace", "holds the source"),
                                 (tree + "/gtFine", "replace", "inside the source"),
                                 (tree + ".zip", "replace", None)):
        if words is None:
            open_sink(dst, existing=existing, sources=[src]).abort()  # beside the source: fine
            continue
        with pytest.raises(cio.CityscapesIOError, match=words) as info:
            open_sink(dst, existing=existing, sources=[src])
        assert str(info.value).startswith(dst) and tree in str(info.value)
    assert read_tree(tree) == before
    # A new folder inside the source destroys nothing: allowed (without replacing).
    sink = open_sink(tree + "/converted", sources=[src])
    sink.put("a.txt", b"x")
    sink.close()
    assert open(os.path.join(tree, "converted", "a.txt"), "rb").read() == b"x"


# -- the project folder is an input of project export -------------------------------------------------
def test_project_export_never_deletes_the_project(tree, tmp_path, capsys):
    proj = str(tmp_path / "p" / "proj")
    assert main(["project", "create", "-o", proj]) == 0
    assert main(["project", "import", "-p", proj, "-f", "cityscapes", tree]) == 0
    before = read_tree(proj)
    for out, extra, words in ((proj, ["--overwrite"], "is the source"), (proj, [], "is the source"),
                              (str(tmp_path / "p"), ["--overwrite"], "holds the source"),
                              (proj + "/sub", ["--overwrite"], "inside the source")):
        os.makedirs(proj + "/sub", exist_ok=True)
        with open(proj + "/sub/keep.txt", "w") as f:
            f.write("mine")
        status = main(["project", "export", "-p", proj, "-o", out, "-f", "voc", "-q", *extra])
        err = capsys.readouterr().err
        assert status == 2 and err.startswith(f"error: {out}: ") and words in err and proj in err, err
        assert read_tree(proj) == dict(before, **{"sub/keep.txt": b"mine"})
    # A new folder inside the project folder destroys nothing: allowed.
    assert main(["project", "export", "-p", proj, "-o", proj + "/out", "-f", "voc", "-q"]) == 0
    assert os.path.isfile(os.path.join(proj, "project.json"))


# -- resume: the destination must hold the same job -----------------------------------------------------
@pytest.fixture
def two_sources(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    generate(a, splits={"train": 3}, size=(64, 32), seed=1)
    generate(b, splits={"train": 2, "val": 2}, size=(64, 32), seed=2)
    return a, b


def test_resume_accepts_the_same_job_however_its_source_is_spelled(two_sources, tmp_path, monkeypatch):
    # A VOC source: its labels come from its labelmap.txt, whose path is spelled as the root is.
    a = str(tmp_path / "voc")
    cio.convert(two_sources[0], a, format="voc")
    dst = str(tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    assert main(["convert", "voc", dst, "-f", "camvid", "-q"]) == 0
    os.remove(os.path.join(dst, "train.txt"))  # as if interrupted before its index
    for spelling in (a, a + "/", f"file://{a}"):
        assert main(["convert", spelling, dst, "-f", "camvid", "--resume", "-q"]) == 0, spelling
    assert len(cio.open(dst, format="camvid")) == 3


def test_resume_refuses_another_format_or_source_or_options(two_sources, tmp_path, capsys):
    a, b = two_sources
    dst = str(tmp_path / "out")
    cio.convert(a, dst, format="voc", save_media=True, shard=(0, 2))  # an unfinished job: half the frames
    before = read_tree(dst)
    labels = str(tmp_path / "label_colors.txt")
    with open(labels, "w") as f:
        f.write("0 0 0 background\n128 64 128 road\n0 0 142 car\n")
    record = json.loads(before[JOB_FILE])
    assert record["format"] == "voc" and record["sources"] == ["file://" + a]
    assert record["options"] == {"save_media": True}
    cases = [(dict(src=a, format="cityscapes", save_media=True), "format voc there, cityscapes now"),
             (dict(src=b, format="voc", save_media=True), f"sources file://{a} there, file://{b} now"),
             (dict(src=a, format="voc"), "option save_media True there, not given now"),
             (dict(src=a, format="voc", save_media=True, image_ext=".jpg"), "option image_ext not given there"),
             (dict(src=a, format="voc", save_media=True, label_map=labels), "output labels 35 labels")]
    for kwargs, words in cases:
        src = kwargs.pop("src")
        for how in ({"resume": True}, {"shard": (1, 2)}, {"finalize": True}):
            with pytest.raises(cio.CityscapesIOError, match="holds the output of another job") as info:
                cio.convert(src, dst, **kwargs, **how)
            assert info.value.path == dst and words in info.value.reason, info.value.reason
            assert read_tree(dst) == before  # nothing written, nothing removed
    # The CLI: one line, exit 2 (refused, nothing done); the same job resumes and completes.
    assert main(["convert", a, dst, "-f", "cityscapes", "--resume", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {dst}: holds the output of another job (format voc there, cityscapes now")
    assert main(["convert", a, dst, "-f", "voc", "--save-media", "--resume", "-q"]) == 0
    ref = str(tmp_path / "ref")
    cio.convert(a, ref, format="voc", save_media=True)
    assert read_tree(dst) == read_tree(ref)


def test_resume_into_another_datasets_finished_conversion_is_refused(two_sources, tmp_path):
    a, b = two_sources
    dst = str(tmp_path / "out")
    cio.convert(b, dst, format="voc", save_media=True)  # finished: the record stays with the output
    before = read_tree(dst)
    with pytest.raises(cio.CityscapesIOError, match="holds the output of another job"):
        cio.convert(a, dst, format="voc", save_media=True, resume=True)
    assert read_tree(dst) == before
    assert cio.convert(b, dst, format="voc", save_media=True, resume=True).resumed == 4  # its own job: fine
    assert read_tree(dst) == before
    report = cio.convert(a, dst, format="voc", save_media=True, overwrite=True)  # replaced: a new job
    assert report.written == 3 and json.loads(read_tree(dst)[JOB_FILE])["sources"] == ["file://" + a]
    assert cio.open(dst, format="voc").splits() == ["train"] and len(cio.open(dst, format="voc")) == 3


def test_job_record_reads_the_same_however_options_are_spelled(two_sources, tmp_path):
    a, _ = two_sources
    cio.convert(a, str(tmp_path / "x"), format="voc", save_media=False, image_ext=None)
    assert main(["convert", a, str(tmp_path / "y"), "-f", "voc", "-q"]) == 0
    assert read_tree(str(tmp_path / "x")) == read_tree(str(tmp_path / "y"))
    assert cio.convert("file://" + a + "/", str(tmp_path / "x"), format="voc", resume=True).resumed == 3


def test_a_broken_job_record_is_named(two_sources, tmp_path):
    a, _ = two_sources
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / JOB_FILE).write_text('{"something": "else"}')
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.convert(a, str(dst), format="voc", resume=True)
    assert info.value.path == str(dst / JOB_FILE) and "not a job record" in info.value.reason


# -- a worker process that dies ------------------------------------------------------------------------

def _pool_workers(pid: int) -> list:
    """Pids of the process pool's workers started by process ``pid`` (children running spawn_main)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the pool's workers in /proc")
def test_a_worker_that_dies_is_one_line_naming_the_frames(tmp_path):
    """A worker killed with SIGKILL (as the OOM killer ends it) once the conversion is under way:
    one line, naming the frames no worker reported, saying that --resume continues; exit 1, no
    traceback. (Killed while the pool is still starting its processes, CPython 3.11's own pool
    threads may print a traceback of theirs besides: a race inside concurrent.futures.)"""
    src, dst = str(tmp_path / "cs"), str(tmp_path / "out")
    generate(src, splits={"train": 40}, size=(128, 64), seed=3)
    ids = [f.id for f in cio.open(src)]
    proc = subprocess.Popen([sys.executable, "-m", "cityscapes_io", "convert", src, dst, "-f", "voc", "--save-media",
                             "-j", "2", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _pool_workers(proc.pid)
            started = os.path.isdir(os.path.join(dst, "SegmentationClass")) and os.listdir(
                os.path.join(dst, "SegmentationClass"))
            if len(workers) == 2 and started:  # both workers up, a frame written
                os.kill(workers[0], signal.SIGKILL)
                break
            time.sleep(0.002)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith(f"error: {dst}: a worker process died") and "--resume" in lines[0], lines[0]
    assert "frames were accounted for: " in lines[0] and any(fid in lines[0] for fid in ids), lines[0]
    assert main(["convert", src, dst, "-f", "voc", "--save-media", "--resume", "-q"]) == 0
    assert len(cio.open(dst, format="voc")) == 40


# -- photos copied without decoding are checked on the way ---------------------------------------------
FORMATS = ["cityscapes", "voc", "camvid", "coco_instances", "coco_panoptic", "wds"]


@pytest.fixture
def bad_photos(tmp_path):
    """Four frames: one photo cut to a third, one a text file named .png, two fine."""
    src = str(tmp_path / "cs")
    generate(src, splits={"train": 4}, size=(64, 32), seed=6)
    frames = list(cio.open(src))
    cut, text = frames[1].files["image"], frames[2].files["image"]
    with open(cut, "rb") as f:
        data = f.read()
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 3])
    with open(text, "w") as f:
        f.write("this is not a photo\n")
    return src, frames[1].id, cut, frames[2].id, text


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_media_reports_a_cut_or_foreign_photo(bad_photos, tmp_path, fmt):
    src, cut_id, cut, text_id, text = bad_photos
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.convert(src, str(tmp_path / "raise"), format=fmt, save_media=True)
    assert info.value.path == cut and "PNG" in info.value.reason, info.value
    report = cio.convert(src, str(tmp_path / "skip"), format=fmt, save_media=True, on_error="skip")
    skipped = {fid: reason for _, fid, reason in report.skipped}
    assert set(skipped) == {cut_id, text_id} and cut in skipped[cut_id] and text in skipped[text_id]
    assert report.written == 2


def test_a_cut_photo_inside_a_zip_names_the_archive(bad_photos, tmp_path):
    from conftest import zip_dir

    src, cut_id, cut, *_ = bad_photos
    archive = zip_dir(src, str(tmp_path / "cs.zip"))
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.convert(archive, str(tmp_path / "out"), format="voc", save_media=True)
    assert info.value.path == f"{archive}/{os.path.relpath(cut, src)}", info.value


def test_save_media_check_does_not_decode(bad_photos, tmp_path):
    """The check reads no pixels: a photo whose pixel data is corrupt but whose chunks are sound
    is copied (decoding it is the reader's business), as the issue asks for a cheap check."""
    import zlib

    src, *_ = bad_photos
    good = list(cio.open(src))[0].files["image"]
    with open(good, "rb") as f:
        data = bytearray(f.read())
    at = data.index(b"IDAT")
    n = int.from_bytes(data[at - 4:at], "big")
    data[at + 4:at + 4 + n] = bytes(n)  # zeroed compressed data...
    data[at + 4 + n:at + 8 + n] = zlib.crc32(bytes(data[at:at + 4 + n])).to_bytes(4, "big")  # ...with a valid CRC
    with open(good, "wb") as f:
        f.write(bytes(data))
    report = cio.convert(src, str(tmp_path / "out"), format="voc", save_media=True, on_error="skip")
    assert list(cio.open(src))[0].id not in {fid for _, fid, _ in report.skipped}


# -- a full temporary folder is named -------------------------------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs with 8 KiB left (root only; skipped where mount is not allowed)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        with open(mnt / "filler", "wb") as f:
            f.write(bytes(56 * 1024))
        yield str(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("fmt", ["coco_instances", "wds"])  # the index record spool; tar shards built aside
def test_a_full_temporary_folder_is_named(small_tmpfs, tmp_path, fmt):
    src, dst = str(tmp_path / "cs"), str(tmp_path / "out")
    generate(src, splits={"train": 12}, size=(128, 64), seed=4)  # ~28 KB of COCO records
    r = subprocess.run([sys.executable, "-m", "cityscapes_io", "convert", src, dst, "-f", fmt, "-q"],
                       env=dict(os.environ, TMPDIR=small_tmpfs), capture_output=True, text=True, timeout=120)
    assert r.returncode == 4, r.stderr  # a storage error
    assert r.stderr.startswith(f"error: {small_tmpfs}: ") and "No space left on device" in r.stderr, r.stderr
    assert "temporary folder" in r.stderr and "TMPDIR" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(os.path.join(dst, "annotations"))


# -- a .zip on S3 whose endpoint goes away ---------------------------------------------------------------
def test_zip_on_s3_whose_endpoint_goes_away_ends_in_bounded_time(s3, tmp_path, capsys):
    """The endpoint answers nothing any more (every request dropped) while the archive is being
    written: the conversion ends with the storage error within a bounded time, exit 4 from the
    CLI, and nothing is sent afterwards (no upload retried when the file is collected)."""
    import copy
    import gc

    from faultproxy import FaultProxy

    fs, opts, bucket = s3
    src = str(tmp_path / "cs")
    generate(src, splits={"train": 4}, size=(64, 32), seed=7)
    proxy = FaultProxy(opts["client_kwargs"]["endpoint_url"], seed=0).start()
    try:
        via = copy.deepcopy(opts)
        via["client_kwargs"]["endpoint_url"] = proxy.url
        via["config_kwargs"] = {"retries": {"total_max_attempts": 1, "mode": "standard"}}

        def vanish(n: int) -> None:
            if n == 2:
                proxy.configure(force=lambda method, target: "drop")

        start = time.monotonic()
        with pytest.raises(cio.StorageError) as info:
            cio.convert(src, f"s3://{bucket}/out.zip", format="voc", save_media=True, dst_storage_options=via,
                        progress=vanish)
        assert time.monotonic() - start < 60
        assert info.value.path == f"s3://{bucket}/out.zip" and "cannot finish the archive" in info.value.reason
        sent = proxy.requests
        gc.collect()
        time.sleep(0.5)
        assert proxy.requests == sent  # nothing left to upload
        fs.invalidate_cache()
        assert not fs.exists(f"{bucket}/out.zip")
    finally:
        proxy.stop()


# The multipart path: an archive larger than the S3 file's block size (5 MiB, s3fs's smallest part) is
# uploaded in parts while the zip is written, so the endpoint can go away between two parts.
BLOCK = 5 * 2**20


@pytest.fixture(scope="module")
def big_src(tmp_path_factory):
    """Six frames at 2048 x 1024 with photos (about 2 MB each, one content written six times):
    a VOC archive of more than 12 MB with ``save_media``, three parts of 5 MiB."""
    src = str(tmp_path_factory.mktemp("big") / "cs")
    generate(src, splits={"train": 6}, size=(2048, 1024), seed=7, distinct=1)
    return src


def _vanishing_after_first_part(proxy) -> None:
    """The endpoint answers the first part of a multipart upload, then nothing any more."""
    seen = {"part": False}

    def force(method: str, target: str):
        if seen["part"]:
            return "drop"
        seen["part"] = method == "PUT" and "partNumber=" in target
        return None

    proxy.configure(force=force)


def _proxied(opts: dict, proxy) -> dict:
    import copy

    via = copy.deepcopy(opts)
    via["client_kwargs"]["endpoint_url"] = proxy.url
    via["default_block_size"] = BLOCK
    via["config_kwargs"] = {"retries": {"total_max_attempts": 1, "mode": "standard"}}  # s3fs's own retries stay
    return via


def test_zip_on_s3_whose_endpoint_goes_away_between_parts_ends_in_bounded_time(s3, big_src):
    """The CLI, with the archive uploaded in parts and the endpoint gone after the first one:
    exit 4 with one line naming the member and the endpoint's failure, in bounded time; the
    multipart upload is aborted and nothing is sent after that (before the fix the process
    hung at exit in ``S3File.__del__`` retrying the upload)."""
    from faultproxy import FaultProxy

    fs, opts, bucket = s3
    with FaultProxy(opts["client_kwargs"]["endpoint_url"]) as proxy:
        _vanishing_after_first_part(proxy)
        start = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "cityscapes_io", "convert", big_src, f"s3://{bucket}/out.zip",
                            "-f", "voc", "--save-media", "-q", "--dst-storage-options",
                            json.dumps(_proxied(opts, proxy))], capture_output=True, text=True, timeout=60)
        assert time.monotonic() - start < 30
        log = [(method, target, kind) for _, method, target, kind in proxy.log]
    assert r.returncode == 4, r.stderr
    assert r.stderr.startswith(f"error: s3://{bucket}/out.zip/") and r.stderr.count("\n") == 1, r.stderr
    assert "cannot write: Could not connect to the endpoint URL" in r.stderr and "Traceback" not in r.stderr
    assert any(m == "PUT" and "partNumber=1&" in t and k is None for m, t, k in log)  # the multipart path
    aborts = [i for i, (m, t, k) in enumerate(log) if m == "DELETE" and "uploadId=" in t]
    assert aborts, log  # the upload was given up ...
    assert all(m == "DELETE" for m, _, _ in log[aborts[0]:]), log  # ... and nothing was uploaded after that
    assert not any(m == "POST" and "uploadId=" in t for m, t, _ in log)  # never completed
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/out.zip")


@pytest.mark.parametrize("where", ["start of the upload", "second part"])
def test_zip_on_s3_is_abandoned_for_good_after_a_failed_write(s3, big_src, where):
    """With ``on_error="skip"`` the frame whose write failed is reported, and the endpoint comes
    back at once: the archive, which lacks that member's bytes, must not be completed (before
    the fix: a corrupt archive committed, exit 0); the error names the endpoint's failure (not
    "File not in write mode" when the upload could not even start); every later write and the
    close fail at once, and nothing is sent when the file is collected."""
    import gc

    from faultproxy import FaultProxy

    fs, opts, bucket = s3
    with FaultProxy(opts["client_kwargs"]["endpoint_url"]) as proxy:
        if where == "start of the upload":
            proxy.configure(force=lambda method, target: "drop" if target.endswith("?uploads") else None)
        else:
            _vanishing_after_first_part(proxy)
        skipped = []

        def back(exc) -> None:
            skipped.append(str(exc))
            proxy.configure(force=None)

        with pytest.raises(cio.StorageError) as info:
            cio.convert(big_src, f"s3://{bucket}/out.zip", format="voc", save_media=True, on_error=back,
                        dst_storage_options=_proxied(opts, proxy))
        sent = proxy.requests
        gc.collect()
        time.sleep(0.5)
        assert proxy.requests == sent  # nothing left to upload
        log = [(method, target) for _, method, target, _ in proxy.log]
    assert "Could not connect to the endpoint URL" in skipped[0] and "File not in write mode" not in skipped[0]
    assert all("the archive was abandoned" in s for s in skipped[1:])
    assert "the archive was abandoned" in info.value.reason and "Could not connect" in info.value.reason
    assert not any(m == "POST" and "uploadId=" in t for m, t in log)  # never completed
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/out.zip")
