"""Faults: S3 errors and dropped connections (through a fault-injecting proxy in front of the
moto S3 server), a conversion killed with SIGKILL and resumed, and a destination that refuses
writes (permission denied, file size limit as the out-of-space stand-in).

What must hold: data read through faults equals the direct read, or the failure is reported
(a frame in ``Report.skipped`` with a reason naming the object, or a clear error) -- never a
silent loss; a killed conversion never leaves a truncated file under a final name, and resuming
it gives output byte-identical to an uninterrupted run.
"""
from __future__ import annotations

import copy
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from PIL import Image

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.errors import CityscapesIOError
from cityscapes_io.storage.sinks import TMP_PREFIX
from cityscapes_io.writing import JOB_FILE
from cityscapes_io.testing import generate

from conftest import read_tree, upload_dir
from faultproxy import FaultProxy

pytest.importorskip("s3fs")

#: botocore's retries bounded. ``total_max_attempts`` counts the first attempt; botocore's
#: ``max_attempts`` counts retries only (it becomes ``total_max_attempts = max_attempts + 1``).
#: s3fs has no storage option for its own retry loop (``S3FileSystem.retries = 5`` is a class
#: attribute; a ``retries=`` storage option reaches aiobotocore's AioSession as a TypeError):
#: it retries SlowDown and connection/payload errors 5 times on top of botocore's attempts.
TIGHT = {"retries": {"total_max_attempts": 2, "mode": "standard"}}
NO_RETRY = {"retries": {"total_max_attempts": 1, "mode": "standard"}}
VOC_FILES = ("SegmentationClass/{id}.png", "SegmentationObject/{id}.png", "JPEGImages/{id}.png")
INDEX_FILES = ("labelmap.txt", "ImageSets/Segmentation/train.txt")


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """6 frames, 64x32, on local disk, and their ids in iteration order."""
    root = str(tmp_path_factory.mktemp("faults-small") / "cs")
    generate(root, splits={"train": 6}, size=(64, 32), seed=5)
    return root, [f.id for f in cio.open(root)]


@pytest.fixture(scope="module")
def small_ref(small, tmp_path_factory):
    """{relative path: bytes} of a faultless VOC conversion of ``small``."""
    out = str(tmp_path_factory.mktemp("faults-small-ref") / "voc")
    cio.convert(small[0], out, format="voc", save_media=True)
    return read_tree(out)


@pytest.fixture(scope="module")
def s3env(s3_server, small):
    """``(fs, direct storage options, bucket)`` with ``small`` uploaded under ``<bucket>/ds``."""
    import s3fs

    opts = {"key": "testing", "secret": "testing",
            "client_kwargs": {"endpoint_url": s3_server, "region_name": "eu-west-1"}}
    fs = s3fs.S3FileSystem(**opts)
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    upload_dir(fs, small[0], f"{bucket}/ds")
    return fs, opts, bucket


@pytest.fixture
def proxy(s3_server):
    """A fault-injecting proxy in front of the S3 server (no faults until configured)."""
    p = FaultProxy(s3_server, seed=0).start()
    yield p
    p.stop()
    assert not p.errors, p.errors


def via(proxy: FaultProxy, opts: dict, config_kwargs=None) -> dict:
    """Storage options reaching S3 through ``proxy``."""
    out = copy.deepcopy(opts)
    out["client_kwargs"]["endpoint_url"] = proxy.url
    if config_kwargs is not None:
        out["config_kwargs"] = copy.deepcopy(config_kwargs)  # botocore edits the retries dict
    return out




def s3_tree(fs, prefix: str) -> dict:
    fs.invalidate_cache()
    try:
        keys = fs.find(prefix)
    except FileNotFoundError:
        return {}
    return {k[len(prefix) + 1:]: fs.cat_file(k) for k in keys}


def object_get(key_part: str):
    """A ``match``/``force`` predicate: GET of an object whose key contains ``key_part``."""
    return lambda method, target: method == "GET" and "list-type=" not in target and key_part in target


def frame_files(frame_id: str):
    return [p.format(id=frame_id) for p in VOC_FILES]


def check_report_against(report, ids, tree, ref, *, skipped_leave_nothing=True):
    """The report accounts for every frame, each skipped frame has a reason, every frame the
    report calls written is there byte for byte, and the index lists exactly those."""
    assert report.read == len(ids)
    assert report.read == report.written + len(report.skipped)
    skipped = {fid: reason for _, fid, reason in report.skipped}
    assert all(reason.strip() for reason in skipped.values())
    written = [i for i in ids if i not in skipped]
    assert len(written) == report.written
    for fid in written:
        for rel in frame_files(fid):
            assert rel in tree, f"report says {fid} written, but {rel} is missing"
            assert tree[rel] == ref[rel], f"{rel} differs from the faultless run"
    if skipped_leave_nothing:
        for fid in skipped:
            assert not [rel for rel in frame_files(fid) if rel in tree], f"skipped {fid} left files"
    if written:
        assert tree["ImageSets/Segmentation/train.txt"].decode().split() == written
    assert tree["labelmap.txt"] == ref["labelmap.txt"]
    return skipped


# -- the proxy itself ------------------------------------------------------------------------------
def test_proxy_is_transparent(s3env, proxy, small):
    """Without faults the proxy changes nothing: reads equal the direct read; a chunked upload
    with ``Expect: 100-continue`` goes through."""
    import http.client

    fs, opts, bucket = s3env
    direct = cio.open(f"s3://{bucket}/ds", storage_options=opts)
    proxied = cio.open(f"s3://{bucket}/ds", storage_options=via(proxy, opts))
    n = 0
    for a, b in zip(direct, proxied):
        assert a.id == b.id
        assert np.array_equal(a.image(), b.image()) and np.array_equal(a.instance_ids(), b.instance_ids())
        n += 1
    assert n == len(small[1]) and proxy.requests > n and proxy.faults == 0

    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        payload = [b"x" * 1000, b"y" * 17, b"z"]
        conn.request("PUT", f"/{bucket}/chunked.bin", body=iter(payload), encode_chunked=True,
                     headers={"Expect": "100-continue", "x-amz-acl": "public-read"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200 and resp.getheader("Connection") == "close"
    finally:
        conn.close()
    assert proxy.chunked == 1
    fs.invalidate_cache()
    assert fs.cat_file(f"{bucket}/chunked.bin") == b"".join(payload)

    # a deterministic schedule: fail, pass, fail, pass... with S3's XML error body
    proxy.configure(schedule=["503", None])
    statuses = []
    for _ in range(4):
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            conn.request("GET", f"/{bucket}/chunked.bin")
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        statuses.append(resp.status)
        assert b"<Code>SlowDown</Code>" in body if resp.status == 503 else body == b"".join(payload)
    assert statuses == [503, 200, 503, 200] and proxy.by_kind["503"] == 2


# -- reading through faults --------------------------------------------------------------------
def test_read_with_random_faults(s3env, proxy, small):
    """25% of requests fail (500, 503, dropped connection, truncated body): with s3fs/botocore's
    default retries every frame reads equal to the direct read, or its error names the object."""
    fs, opts, bucket = s3env
    proxy.configure(rate=0.25, kinds=("500", "503", "drop", "truncate"), seed=1)
    direct = cio.open(f"s3://{bucket}/ds", storage_options=opts)
    proxied = cio.open(f"s3://{bucket}/ds", storage_options=via(proxy, opts))
    equal, failed = [], {}
    for a, b in zip(direct, proxied):
        assert a.id == b.id
        try:
            image, ids, insts = b.image(), b.instance_ids(), b.instances()
        except CityscapesIOError as exc:
            failed[b.id] = exc
            assert b.id.rsplit("/", 1)[1] in str(exc.path), exc
            continue
        assert np.array_equal(a.image(), image) and np.array_equal(a.instance_ids(), ids)
        assert [(i.value, i.area, i.bbox) for i in a.instances()] == [(i.value, i.area, i.bbox) for i in insts]
        equal.append(b.id)
    assert sorted(equal + list(failed)) == sorted(small[1])  # every frame accounted for
    assert proxy.faults > 0, "the schedule injected nothing: the test proves nothing"


def test_convert_from_s3_with_faults_reports_every_frame(s3env, proxy, small, small_ref, tmp_path):
    """Random 500/503 on object reads with bounded retries, and one photo that always fails:
    that frame is skipped with a reason naming the object; every other frame is written
    identical to a faultless run or skipped with a reason."""
    fs, opts, bucket = s3env
    victim = small[1][1]
    photo = f"leftImg8bit/train/{victim}_leftImg8bit.png"
    proxy.configure(rate=0.2, kinds=("500", "503"), seed=3, match=object_get(f"/{bucket}/ds/"),
                    force=lambda m, t: "500" if object_get(photo)(m, t) else None)
    out = str(tmp_path / "voc")
    report = cio.convert(f"s3://{bucket}/ds", out, storage_options=via(proxy, opts, TIGHT), format="voc",
                         save_media=True, on_error="skip")
    skipped = check_report_against(report, small[1], read_tree(out), small_ref)
    assert victim in skipped and photo in skipped[victim], report.summary()
    assert proxy.by_kind["500"] >= 2  # the prefetch and the read of the victim's photo


@pytest.mark.parametrize("kind", ["500", "drop"])
def test_total_outage_fails_fast(s3env, proxy, kind):
    """Every request fails: opening and reading raises, within bounded time and requests."""
    fs, opts, bucket = s3env
    proxy.configure(rate=1.0, kinds=(kind,))
    start = time.monotonic()
    with pytest.raises(Exception):
        for frame in cio.open(f"s3://{bucket}/ds", storage_options=via(proxy, opts, TIGHT)):
            frame.instances()
            frame.image()
    assert time.monotonic() - start < 20
    assert 0 < proxy.requests < 40


@pytest.mark.parametrize("kind", ["500", "drop"])
def test_total_outage_error_names_the_dataset(s3env, proxy, kind):
    fs, opts, bucket = s3env
    proxy.configure(rate=1.0, kinds=(kind,))
    with pytest.raises(Exception) as info:
        for frame in cio.open(f"s3://{bucket}/ds", storage_options=via(proxy, opts, TIGHT)):
            frame.instances()
            frame.image()
    assert isinstance(info.value, (CityscapesIOError, OSError)), repr(info.value)
    assert f"{bucket}/ds" in str(info.value), str(info.value)


def test_unreadable_objects_are_named(s3env, proxy, small, tmp_path):
    """Listings work but every object GET fails (500): raise names the first frame's object;
    skip lists every frame with its reason and writes no frame file."""
    fs, opts, bucket = s3env
    proxy.configure(force=lambda m, t: "500" if object_get(f"/{bucket}/ds/")(m, t) else None)
    so = via(proxy, opts, NO_RETRY)
    with pytest.raises(CityscapesIOError) as info:
        cio.convert(f"s3://{bucket}/ds", str(tmp_path / "a"), storage_options=so, format="voc", save_media=True)
    assert small[1][0] in info.value.path and "cannot read" in info.value.reason
    assert not os.path.exists(tmp_path / "a" / "labelmap.txt")
    report = cio.convert(f"s3://{bucket}/ds", str(tmp_path / "b"), storage_options=so, format="voc",
                         save_media=True, on_error="skip")
    assert report.read == 6 and report.written == 0 and len(report.skipped) == 6
    assert all(fid in reason and "cannot read" in reason for _, fid, reason in report.skipped)
    assert set(read_tree(str(tmp_path / "b"))) <= {*INDEX_FILES, JOB_FILE}  # and the job's record


def test_listing_failure_is_never_a_silent_loss(s3env, proxy, small, tmp_path):
    """A city folder whose listing fails: ``convert`` (even with on_error="skip") stops with an
    error naming the folder and writes no index files; ``open(on_error=callable)`` hands the
    error to the callable, naming the folder, for every frame it cannot yield."""
    fs, opts, bucket = s3env
    city = "bad-honnef"
    proxy.configure(force=lambda m, t: "500" if "list-type=" in t and f"%2F{city}%2F" in t else None)
    so = via(proxy, opts, NO_RETRY)
    out = tmp_path / "voc"
    with pytest.raises(CityscapesIOError) as info:
        cio.convert(f"s3://{bucket}/ds", str(out), storage_options=so, format="voc", save_media=True,
                    on_error="skip")
    assert f"train/{city}" in str(info.value) and "cannot list" in str(info.value)
    assert not (out / "labelmap.txt").exists() and not (out / "ImageSets").exists()

    errors = []
    got = [f.id for f in cio.open(f"s3://{bucket}/ds", storage_options=so, on_error=errors.append)]
    lost = [i for i in small[1] if i not in got]
    assert lost and all(i.startswith(city + "/") for i in lost)
    assert errors and all(f"train/{city}" in str(e) for e in errors)


# -- writing through faults --------------------------------------------------------------------
def test_write_with_random_faults(s3env, proxy, small, small_ref):
    """20% of requests to the destination fail (500, 503, dropped before or after forwarding):
    the conversion completes through retries and equals a faultless run object by object, or
    reports the frames it could not write -- never an object missing for a frame called written."""
    fs, opts, bucket = s3env
    proxy.configure(rate=0.2, kinds=("500", "503", "drop", "drop_after"), seed=11)
    dst = f"{bucket}/w-{uuid.uuid4().hex[:6]}"
    report = cio.convert(small[0], f"s3://{dst}", dst_storage_options=via(proxy, opts), format="voc",
                         save_media=True, on_error="skip")
    tree = s3_tree(fs, dst)
    check_report_against(report, small[1], tree, small_ref, skipped_leave_nothing=False)
    if report.ok:
        assert tree == small_ref
    assert proxy.faults > 0


def test_write_failure_is_reported_and_resume_repairs(s3env, proxy, small, small_ref):
    """One object PUT always fails: its frame is reported (the reason names the object), and a
    resumed run without faults completes the output to equal a faultless run. A failing index
    file PUT raises an error naming it."""
    fs, opts, bucket = s3env
    victim = small[1][2]
    key = f"JPEGImages/{victim}.png"
    proxy.configure(force=lambda m, t: "500" if m == "PUT" and t.endswith(key) else None)
    dst = f"{bucket}/r-{uuid.uuid4().hex[:6]}"
    report = cio.convert(small[0], f"s3://{dst}", dst_storage_options=via(proxy, opts, NO_RETRY), format="voc",
                         save_media=True, on_error="skip")
    skipped = check_report_against(report, small[1], s3_tree(fs, dst), small_ref, skipped_leave_nothing=False)
    assert list(skipped) == [victim] and f"{dst}/{key}" in skipped[victim]
    again = cio.convert(small[0], f"s3://{dst}", dst_storage_options=opts, format="voc", save_media=True,
                        resume=True)
    assert again.ok and again.resumed == 5 and again.written == 6
    assert s3_tree(fs, dst) == small_ref

    proxy.configure(force=lambda m, t: "500" if m == "PUT" and t.endswith("/labelmap.txt") else None)
    dst2 = f"{bucket}/i-{uuid.uuid4().hex[:6]}"
    with pytest.raises(CityscapesIOError) as info:
        cio.convert(small[0], f"s3://{dst2}", dst_storage_options=via(proxy, opts, NO_RETRY), format="voc",
                    save_media=True)
    assert info.value.path == f"{dst2}/labelmap.txt" and "cannot write" in info.value.reason


@pytest.mark.parametrize("side", ["read", "write"])
def test_dropped_connection_on_one_object_is_reported(s3env, proxy, small, side, tmp_path):
    fs, opts, bucket = s3env
    victim = small[1][3]
    if side == "read":
        key = f"ds/leftImg8bit/train/{victim}_leftImg8bit.png"
        proxy.configure(force=lambda m, t: "drop" if object_get(key)(m, t) else None)
        report = cio.convert(f"s3://{bucket}/ds", str(tmp_path / "o"), storage_options=via(proxy, opts, NO_RETRY),
                             format="voc", save_media=True, on_error="skip")
    else:
        key = f"JPEGImages/{victim}.png"
        proxy.configure(force=lambda m, t: "drop" if m == "PUT" and t.endswith(key) else None)
        report = cio.convert(small[0], f"s3://{bucket}/d-{uuid.uuid4().hex[:6]}",
                             dst_storage_options=via(proxy, opts, NO_RETRY), format="voc", save_media=True,
                             on_error="skip")
    assert [fid for _, fid, _ in report.skipped] == [victim]
    assert key in report.skipped[0][2]


# -- kill -9 and resume (local) ----------------------------------------------------------------
KILL_CHILD = (
    "import sys, time, cityscapes_io\n"
    # A 4 ms pause per frame keeps the run long enough for the parent to catch it in flight.
    "cityscapes_io.convert(sys.argv[1], sys.argv[2], format='voc', save_media=True,\n"
    "                      progress=lambda n: time.sleep(0.004))\n"
)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """30 frames, 256x128, and a faultless VOC conversion of them ({rel: bytes})."""
    base = tmp_path_factory.mktemp("faults-big")
    src = str(base / "cs")
    generate(src, splits={"train": 30}, size=(256, 128), seed=9)
    cio.convert(src, str(base / "ref"), format="voc", save_media=True)
    return src, read_tree(str(base / "ref"))


def split_names(root: str):
    """(final files {rel: path}, temporaries [path]) under root."""
    final, tmp = {}, []
    for dirpath, _, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            if name.startswith(TMP_PREFIX):
                tmp.append(full)
            else:
                final[os.path.relpath(full, root).replace(os.sep, "/")] = full
    return final, tmp


def assert_complete(rel: str, path: str, ref: dict) -> None:
    with open(path, "rb") as f:
        data = f.read()
    assert rel in ref, f"unexpected file {rel}"
    assert data == ref[rel], f"{rel} under its final name is not the complete file ({len(data)} bytes)"
    if rel.endswith(".png"):
        Image.open(io.BytesIO(data)).load()  # decodes to the end


def test_kill_and_resume_equals_uninterrupted(big, tmp_path):
    """SIGKILL at four seeded points (one in each quarter of the run): every file under a final
    name, seen while the run goes and right after the kill, is complete (equal to the reference
    bytes and decodable); ``--resume`` removes the temporaries and the result is byte-identical to
    an uninterrupted run."""
    src, ref = big
    rng = random.Random(20261124)
    per_frame = sum(1 for rel in ref if rel not in INDEX_FILES)
    interrupted, notes = 0, []
    for round_ in range(4):
        dst = str(tmp_path / f"run{round_}")
        # one kill point in each quarter of the run (frames' files, the index files excluded)
        quarter = (per_frame - 10) // 4
        threshold = rng.randint(round_ * quarter + 1, (round_ + 1) * quarter)
        log = open(tmp_path / f"run{round_}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-c", KILL_CHILD, src, dst], stdout=log, stderr=log)
        try:
            seen = set()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                final, _ = split_names(dst) if os.path.isdir(dst) else ({}, [])
                for rel in final.keys() - seen:  # every file, as soon as it appears, is complete
                    assert_complete(rel, final[rel], ref)
                seen |= final.keys()
                if len(final) >= threshold or proc.poll() is not None:
                    break
                time.sleep(0.0005)
            alive = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            log.close()
        assert proc.returncode in (0, -signal.SIGKILL), (tmp_path / f"run{round_}.log").read_text()
        final, tmp = split_names(dst)
        for rel, path in final.items():
            assert_complete(rel, path, ref)
        if alive and "labelmap.txt" not in final:
            interrupted += 1
        notes.append(f"round {round_}: threshold {threshold}, {len(final)} files at kill, alive={alive}, "
                     f"{len(tmp)} temporaries left")
        if round_ == 0 and final:
            # What a kill inside a write leaves (a kill rarely lands there: writes take microseconds):
            # a partial file under a temporary name beside its final name. Resume must remove it.
            rel = sorted(r for r in ref if r.startswith("JPEGImages/"))[-1]
            planted = os.path.join(dst, os.path.dirname(rel), f"{TMP_PREFIX}{uuid.uuid4().hex}")
            os.makedirs(os.path.dirname(planted), exist_ok=True)
            with open(planted, "wb") as f:
                f.write(ref[rel][: len(ref[rel]) // 3])
        assert main(["convert", src, dst, "-f", "voc", "--save-media", "--resume", "-q"]) == 0
        final, tmp = split_names(dst)
        assert not tmp, f"resume left temporaries: {tmp}"
        assert read_tree(dst) == ref
    print("\n".join(notes))
    assert interrupted >= 1, notes


# -- destination refusing writes (local) -------------------------------------------------------
CHILD = (
    "import resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "limit = int(sys.argv[1])\n"
    "if limit:\n"
    "    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "from cityscapes_io.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def run_cli(args, *, fsize: int = 0, unprivileged: bool = False, timeout: float = 60):
    """Run the CLI in a child process, optionally with RLIMIT_FSIZE and without root's power to
    ignore file permissions (root keeps its uid but loses CAP_DAC_OVERRIDE and friends)."""
    cmd = [sys.executable, "-c", CHILD, str(fsize), *args]
    if unprivileged and os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *cmd]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def can_drop_root(tmp_path_factory):
    """Skip unless a child can be denied writing to a 0o555 folder (root needs setpriv)."""
    if os.geteuid() != 0:
        return
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: chmod cannot deny root")
    ro = tmp_path_factory.mktemp("ro-probe")
    os.chmod(ro, 0o555)
    probe = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", sys.executable,
                            "-c", f"open({str(ro / 'x')!r}, 'w')"], capture_output=True, text=True, timeout=30)
    os.chmod(ro, 0o755)
    if probe.returncode == 0:
        pytest.skip("setpriv could not drop CAP_DAC_OVERRIDE here")


def assert_no_index_and_complete(dst: str, ref: dict) -> dict:
    final, tmp = split_names(dst)
    assert not [rel for rel in final if rel in INDEX_FILES or rel.startswith("ImageSets")], final.keys()
    for rel, path in final.items():
        assert_complete(rel, path, ref)
    assert not tmp, f"temporaries left: {tmp}"
    return final


def test_destination_under_a_regular_file(small, tmp_path, capsys):
    """Root ignores chmod, but not a file where a folder must be: a clear error naming the path."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    dst = str(blocker / "out")
    with pytest.raises(CityscapesIOError) as info:
        cio.convert(small[0], dst, format="voc", save_media=True)
    assert dst in str(info.value) and "Not a directory" in str(info.value)
    assert main(["convert", small[0], dst, "-f", "voc", "--save-media", "-q"]) == 4  # storage errors exit 4
    err = capsys.readouterr().err
    assert err.startswith(f"error: {dst}: ") and "Not a directory" in err
    assert blocker.read_text() == "not a folder"


def test_destination_read_only(small, small_ref, tmp_path, can_drop_root):
    """A real EACCES (root without CAP_DAC_OVERRIDE): the destination folder 0o555, then only
    its JPEGImages folder. Exit 4 (storage) with ``error: <path>: <reason>``, no index files, nothing
    truncated under a final name, no temporaries."""
    dst = tmp_path / "ro"
    dst.mkdir()
    os.chmod(dst, 0o555)
    try:
        r = run_cli(["convert", small[0], str(dst), "-f", "voc", "--save-media", "-q"], unprivileged=True)
    finally:
        os.chmod(dst, 0o755)
    assert r.returncode == 4, r.stderr  # storage errors exit 4
    assert r.stderr.startswith(f"error: {dst}/") and "Permission denied" in r.stderr, r.stderr
    assert os.listdir(dst) == []

    dst2 = tmp_path / "ro2"
    (dst2 / "JPEGImages").mkdir(parents=True)
    os.chmod(dst2 / "JPEGImages", 0o555)
    try:
        r = run_cli(["convert", small[0], str(dst2), "-f", "voc", "--save-media", "-q", "--resume"],  # keep JPEGImages/
                    unprivileged=True)
    finally:
        os.chmod(dst2 / "JPEGImages", 0o755)
    assert r.returncode == 4, r.stderr  # storage errors exit 4
    assert r.stderr.startswith(f"error: {dst2}/JPEGImages/") and "Permission denied" in r.stderr, r.stderr
    assert_no_index_and_complete(str(dst2), small_ref)


def test_index_files_cannot_be_written(small, small_ref, tmp_path):
    """The index set cannot be written (``ImageSets`` is a file): a clear error, and no index
    file written without the others."""
    dst = tmp_path / "idx"
    dst.mkdir()
    (dst / "ImageSets").write_text("in the way")
    with pytest.raises(CityscapesIOError) as info:  # resume: the destination's contents are kept
        cio.convert(small[0], str(dst), format="voc", save_media=True, resume=True)
    assert "ImageSets" in str(info.value) and "cannot write the index files" in str(info.value)
    final, tmp = split_names(str(dst))
    assert "labelmap.txt" not in final and not tmp
    for rel, path in final.items():
        if rel != "ImageSets":
            assert_complete(rel, path, small_ref)


def test_out_of_space_file_size_limit(big, tmp_path):
    """RLIMIT_FSIZE below a photo's size makes writes fail with EFBIG ("File too large"), a real
    OS error standing in for a full disk: exit 4 naming the file, no index files, nothing
    truncated under a final name; ``--on-error skip`` lists every frame; resume completes."""
    src, ref = big
    limit = 16 * 1024
    assert min(len(v) for k, v in ref.items() if k.startswith("JPEGImages/")) > limit
    dst = str(tmp_path / "full")
    r = run_cli(["convert", src, dst, "-f", "voc", "--save-media", "-q"], fsize=limit)
    assert r.returncode == 4, r.stderr  # storage errors exit 4
    assert r.stderr.startswith(f"error: {dst}/JPEGImages/") and "File too large" in r.stderr, r.stderr
    assert_no_index_and_complete(dst, ref)

    dst2 = str(tmp_path / "full-skip")
    r = run_cli(["convert", src, dst2, "-f", "voc", "--save-media", "--on-error", "skip", "-q"], fsize=limit)
    assert r.returncode == 1  # frames skipped
    assert "30 frames read, 0 written, 30 skipped" in r.stderr, r.stderr
    assert r.stderr.count("cannot write: File too large") == 30
    final, tmp = split_names(dst2)
    assert not tmp and "ImageSets/Segmentation/train.txt" not in final
    for rel, path in final.items():
        assert_complete(rel, path, ref)

    assert main(["convert", src, dst, "-f", "voc", "--save-media", "--resume", "-q"]) == 0
    assert read_tree(dst) == ref
