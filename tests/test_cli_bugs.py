"""Regression tests for the command-line bugs of issue 9: each failed before its fix.

In process through ``main([...])``; a real process where one is needed (Ctrl-C, a hidden
backend). Data is built at test time.
"""
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.errors import DatasetNotFoundError, StorageError
from cityscapes_io import formats

from conftest import zip_dir


def detect_format(*args, **kwargs):
    return formats.detect_format(*args, **kwargs)


def format_names():
    return formats.format_names()


def resolve_format(name):
    return formats.resolve_format(name)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from cityscapes_io.testing import generate

    root = str(tmp_path_factory.mktemp("synth") / "Cityscapes")
    generate(root, splits={"train": 3, "val": 2}, size=(96, 48), seed=7)
    return root


@pytest.fixture(scope="module")
def voc(synth, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("voc") / "voc")
    cio.convert(synth, out, format="voc", save_media=True)
    return out


@pytest.fixture(scope="module")
def camvid(synth, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("camvid") / "camvid")
    cio.convert(synth, out, format="camvid", save_media=True)
    return out


def _labels(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return [n.split(":", 1)[1] for n in json.loads(capsys.readouterr().out)["labels"]["names"]]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


# -- 1. --remap with a comma-separated list --------------------------------------------------------
def test_remap_takes_a_comma_separated_list(synth, capsys):
    names = _labels(capsys, ["info", synth, "-q", "--remap", "car:vehicle,truck:vehicle"])
    assert "vehicle" in names and "car" not in names and "truck" not in names
    assert not any("," in n or ":" in n for n in names)
    # repeated flags and lists combine; 'bicycle:' inside a list still drops the label
    names = _labels(capsys, ["info", synth, "-q", "--remap", "car:vehicle", "--remap", "truck:vehicle,bicycle:"])
    assert "vehicle" in names and "bicycle" not in names and "truck" not in names
    assert main(["info", synth, "-q", "--remap", "car:vehicle,car:truck"]) == 2
    assert "twice" in capsys.readouterr().err


# -- 2. --city that matches nothing ----------------------------------------------------------------
def test_unknown_city_is_an_error_like_an_unknown_split(synth, tmp_path, capsys):
    assert main(["info", synth, "--split", "nope"]) == 3
    capsys.readouterr()
    assert main(["info", synth, "-q", "--city", "nowhere"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err and "aachen" in err and "bad-honnef" in err
    # a city of another split only
    city = next(f.city for f in cio.open(synth, split="train"))
    other = {f.city for f in cio.open(synth, split="val")}
    if city not in other:
        assert main(["info", synth, "--split", "val", "--city", city]) == 3
        assert city in capsys.readouterr().err
    out = str(tmp_path / "out")
    assert main(["convert", synth, out, "-f", "voc", "--city", "nowhere"]) == 3
    assert "nowhere" in capsys.readouterr().err and not os.path.exists(out)
    assert main(["info", synth, "--city", city, "--json"]) == 0  # a known city still works
    assert set(json.loads(capsys.readouterr().out)["splits"]["train"]["cities"]) == {city}


def test_unknown_city_recorded_in_a_project_and_given_to_validate(synth, voc, tmp_path, capsys):
    project = str(tmp_path / "p")
    assert main(["project", "create", "-o", project]) == 0
    assert main(["project", "import", "-p", project, "-f", "cityscapes", synth]) == 0
    assert main(["project", "filter", "-p", project, "--city", "nowhere"]) == 0
    capsys.readouterr()
    out = str(tmp_path / "out")
    assert main(["project", "export", "-p", project, "-f", "voc", "-o", out]) == 3
    assert "nowhere" in capsys.readouterr().err and not os.path.exists(out)
    assert main(["validate", synth, "--city", "nowhere"]) == 3
    assert "nowhere" in capsys.readouterr().err
    # formats without city folders: the cities of the frame ids
    assert main(["info", voc, "-if", "voc", "--city", "nowhere"]) == 3
    assert "aachen" in capsys.readouterr().err
    # the API path, ds.filter(cities=...) through recorded operations
    from cityscapes_io.project import apply_operations

    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        apply_operations(cio.open(synth), [{"op": "filter", "cities": ["nowhere"]}])


# -- 3. --image-ext without --save-media -----------------------------------------------------------
def test_image_ext_without_save_media_warns(synth, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["convert", synth, out, "-f", "voc", "--image-ext", ".jpg"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--image-ext" in warnings[0] and "--save-media" in warnings[0]
    assert not os.path.exists(os.path.join(out, "JPEGImages"))
    out2 = str(tmp_path / "out2")
    assert main(["convert", synth, out2, "-f", "voc", "--save-media", "--image-ext", ".jpg", "-q"]) == 0
    assert "warning" not in capsys.readouterr().err


# -- 4. one format registry for the API and the command line ---------------------------------------
def test_format_names_of_the_api_work_on_the_command_line(synth, voc, tmp_path, capsys):
    assert {"cityscapes", "voc", "camvid", "voc_segmentation", "pascal_voc"} <= set(format_names())
    assert resolve_format("Pascal_VOC") == "voc" and resolve_format("voc_segmentation") == "voc"
    out = str(tmp_path / "out")
    assert main(["convert", synth, out, "-f", "pascal_voc", "-q"]) == 0
    assert cio.open(out, format="voc").count() == 5
    assert main(["info", voc, "-if", "voc_segmentation", "-q"]) == 0
    assert "format:  voc" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["-f", "-if"])
def test_a_wrong_format_gets_one_line_with_the_choices(synth, tmp_path, capsys, flag):
    argv = ["convert", synth, str(tmp_path / "out"), "-f", "voc", "-q"] + [flag, "xyz"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err
    assert err.startswith("error: unknown format 'xyz'; choose from: ")
    assert all(name in err for name in format_names())
    assert main(["merge", synth, synth, "-if", "nope", "-f", "voc", "-o", str(tmp_path / "m")]) == 2
    assert "unknown format 'nope'" in capsys.readouterr().err


# -- 5. input format detected ----------------------------------------------------------------------
def _on_a_terminal(argv):
    """Run the console script with its stderr on a pseudo-terminal; ``(returncode, stderr)``."""
    import pty

    exe = shutil.which("cityscapes-io", path=os.path.dirname(sys.executable))
    master, slave = pty.openpty()
    try:
        run = subprocess.run([exe] + argv, stdout=subprocess.DEVNULL, stderr=slave, timeout=120)
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal is closed once everything is read
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return run.returncode, b"".join(chunks).decode().replace("\r\n", "\n")


def test_input_format_is_detected_and_said(synth, voc, camvid, tmp_path, capsys):
    for root, fmt in ((synth, "cityscapes"), (voc, "voc"), (camvid, "camvid")):
        assert detect_format(root) == fmt
        assert main(["info", root]) == 0
        captured = capsys.readouterr()
        assert f"format:  {fmt}" in captured.out
        assert captured.err == ""  # not a terminal: stderr holds only problems
    code, err = _on_a_terminal(["info", voc])
    assert code == 0 and err.splitlines() == [f"input format: voc (detected: SegmentationClass/ in {voc}; "
                                              "-if to choose)"]
    code, err = _on_a_terminal(["info", voc, "-q"])
    assert code == 0 and err == ""
    out = str(tmp_path / "from-voc")
    assert main(["convert", voc, out, "-f", "cityscapes", "-q"]) == 0  # no -if
    assert cio.open(out).count() == 5


def test_detection_in_a_zip_with_a_wrapping_folder_and_camvid_lists(synth, tmp_path, capsys):
    archive = zip_dir(synth, str(tmp_path / "cs.zip"), prefix="Cityscapes")
    assert detect_format(archive) == "cityscapes"
    assert main(["info", archive, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 5
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("/train/0001TP_006690.png /trainannot/0001TP_006690.png\n")
    assert detect_format(str(lists)) == "camvid"
    (lists / "train.txt").write_text("some notes\n")
    with pytest.raises(DatasetNotFoundError, match="cannot tell the format"):
        detect_format(str(lists))
    assert main(["info", str(lists)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "-if" in err


def test_a_folder_inside_the_tree_gets_a_hint(synth, capsys):
    for inner in ("gtFine", "gtFine/val", "leftImg8bit"):
        assert main(["info", os.path.join(synth, inner)]) == 3
        err = capsys.readouterr().err
        assert f"give the folder that holds gtFine/ and leftImg8bit/: {synth}" in err, err
    assert main(["info", os.path.join(synth, "gtFine"), "-if", "cityscapes"]) == 3
    assert f"leftImg8bit/: {synth}" in capsys.readouterr().err


def test_show_a_frame_id_without_its_city_folder_gets_a_hint(synth, tmp_path, capsys):
    frame = next(iter(cio.open(synth)))
    bare = frame.id.split("/", 1)[1]
    assert main(["show", synth, bare, "-o", str(tmp_path / "f.png")]) == 3
    err = capsys.readouterr().err
    assert f"include the city folder: {frame.id}" in err
    assert main(["show", synth, "nope_000000_000000", "-o", str(tmp_path / "f.png")]) == 3
    assert "no such frame" in capsys.readouterr().err


# -- 6. projects -----------------------------------------------------------------------------------
def test_project_export_without_o_picks_datumaros_default(synth, tmp_path, capsys, monkeypatch):
    project = str(tmp_path / "p")
    assert main(["project", "create", "-o", project]) == 0
    assert main(["project", "import", "-p", project, synth]) == 0
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    capsys.readouterr()
    assert main(["project", "export", "-p", project, "-f", "voc"]) == 0
    assert f"exported to {here / 'export-voc'}" in capsys.readouterr().out
    assert cio.open(str(here / "export-voc"), format="voc").count() == 5
    assert main(["project", "export", "-p", project, "-f", "voc"]) == 0  # the next free name
    assert f"exported to {here / 'export-voc.1'}" in capsys.readouterr().out
    # a run that continues an output must name it: the default is a new folder each time
    assert main(["project", "export", "-p", project, "-f", "voc", "--resume"]) == 2
    assert "-o DST" in capsys.readouterr().err and not (here / "export-voc.2").exists()


def test_importing_the_same_source_twice_is_refused(synth, tmp_path, capsys, monkeypatch):
    project = str(tmp_path / "p")
    assert main(["project", "create", "-o", project]) == 0
    assert main(["project", "import", "-p", project, synth]) == 0
    monkeypatch.chdir(os.path.dirname(synth))
    capsys.readouterr()
    for spelling in (synth, synth + "/", os.path.basename(synth)):
        assert main(["project", "import", "-p", project, "-f", "cityscapes", spelling]) == 1
        err = capsys.readouterr().err
        assert "imported already" in err and err.count("\n") == 1
    assert len(json.load(open(os.path.join(project, "project.json")))["sources"]) == 1


def test_a_project_folder_moves_with_its_data(tmp_path, capsys):
    from cityscapes_io.testing import generate

    work = tmp_path / "work"
    generate(str(work / "data" / "Cityscapes"), splits={"val": 2}, size=(64, 32), seed=1)
    project = str(work / "project")
    assert main(["project", "create", "-o", project]) == 0
    assert main(["project", "import", "-p", project, str(work / "data" / "Cityscapes")]) == 0
    stored = json.load(open(os.path.join(project, "project.json")))["sources"][0]["url"]
    assert stored == os.path.join("..", "data", "Cityscapes")
    moved = tmp_path / "moved"
    shutil.move(str(work), str(moved))
    capsys.readouterr()
    assert main(["stats", "-p", str(moved / "project"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 2
    # project.json written with absolute paths (earlier versions) still loads
    old = tmp_path / "old"
    old.mkdir()
    (old / "project.json").write_text(json.dumps({
        "cityscapes_io_project": 1, "operations": [], "merge": {"on_duplicate": "error"},
        "sources": [{"name": "cs", "url": str(moved / "data" / "Cityscapes"), "format": "cityscapes",
                     "storage_options": None}]}))
    assert main(["stats", "-p", str(old), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 2


def test_duplicate_ids_are_found_before_anything_is_written(synth, tmp_path, capsys):
    copy = str(tmp_path / "copy" / "Cityscapes")
    shutil.copytree(synth, copy)
    project, out = str(tmp_path / "p"), str(tmp_path / "out")
    assert main(["project", "create", "-o", project]) == 0
    assert main(["project", "import", "-p", project, synth]) == 0
    assert main(["project", "import", "-p", project, copy]) == 0
    capsys.readouterr()
    assert main(["project", "export", "-p", project, "-f", "voc", "-o", out]) == 1
    assert "duplicate frame id" in capsys.readouterr().err
    assert not os.path.exists(out)
    assert main(["merge", synth, copy, "-f", "voc", "-o", out]) == 1
    assert "duplicate frame id" in capsys.readouterr().err
    assert not os.path.exists(out)
    assert main(["merge", synth, copy, "-f", "voc", "-o", out, "-q", "--on-duplicate", "rename"]) == 0
    assert cio.open(out, format="voc").count() == 10


# -- 7. storage errors -----------------------------------------------------------------------------
def test_a_missing_backend_says_what_to_install(capsys):
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401

        pytest.skip("gcsfs is installed")
    except ImportError:
        pass
    assert main(["info", "gcs://bucket/Cityscapes", "-if", "cityscapes"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: gcs://bucket/Cityscapes: ") and "gcsfs" in err
    with pytest.raises(StorageError):
        main(["--debug", "info", "gcs://bucket/Cityscapes", "-if", "cityscapes"])


def test_s3_without_s3fs_names_the_extra():
    code = ("import sys; sys.modules['s3fs'] = None\n"
            "from cityscapes_io.cli import main\n"
            "sys.exit(main(['info', 's3://bucket/Cityscapes']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 4, run.stderr
    assert "pip install 'cityscapes-io[s3]'" in run.stderr
    assert "Traceback" not in run.stderr and run.stderr.startswith("error: s3://bucket/Cityscapes: ")


def test_an_unreachable_s3_destination_is_one_line(tmp_path, capsys):
    pytest.importorskip("s3fs")
    opts = {"key": "k", "secret": "s", "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{_closed_port()}"}}
    status = main(["convert", cio.sample_path(), "s3://bucket/out", "-f", "voc", "-q",
                   "--dst-storage-options", json.dumps(opts)])
    err = capsys.readouterr().err
    assert status == 4, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: s3://bucket/out"), err
    assert "Traceback" not in err


def test_a_local_destination_that_cannot_be_made_is_one_line(synth, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["convert", synth, str(blocker / "out"), "-f", "voc", "-q"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(blocker) in err


# -- 8. Ctrl-C -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """Enough frames that a conversion is still running when it is interrupted."""
    root = str(tmp_path_factory.mktemp("big") / "syn")
    assert main(["synthetic", root, "--frames", "300", "--size", "512x256", "--distinct", "2"]) == 0
    return root


def _interrupt(argv, out, cwd):
    """Run the console script, send Ctrl-C (SIGINT to its process group, as a terminal does)
    once the first frames are written, and return ``(returncode, stdout, stderr)``."""
    exe = shutil.which("cityscapes-io", path=os.path.dirname(sys.executable))
    proc = subprocess.Popen([exe] + argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if len(glob.glob(os.path.join(out, "SegmentationClass", "*", "*.png"))) >= 2:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the conversion ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, stdout, stderr


def test_ctrl_c_says_how_many_frames_and_resume_continues(big, tmp_path):
    out = str(tmp_path / "out")
    argv = ["convert", big, out, "-f", "voc", "--save-media"]
    code, _, err = _interrupt(argv, out, str(tmp_path))
    assert code == 130, err
    assert "Traceback" not in err
    assert "interrupted after" in err and "frames" in err and "--resume" in err
    run = subprocess.run([shutil.which("cityscapes-io", path=os.path.dirname(sys.executable))] + argv
                         + ["--resume"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "already complete" in run.stdout
    assert cio.open(out, format="voc").count() == 300


def test_ctrl_c_under_two_workers_prints_no_traceback(big, tmp_path):
    out = str(tmp_path / "out")
    code, _, err = _interrupt(["convert", big, out, "-f", "voc", "--save-media", "-j", "2"], out, str(tmp_path))
    assert "Traceback" not in err, err
    assert code == 130 and "interrupted after" in err and "--resume" in err


# -- 9. --finalize ---------------------------------------------------------------------------------
def test_finalize_says_frames_indexed_not_written(synth, tmp_path, capsys):
    out = str(tmp_path / "out")
    for shard in ("0/2", "1/2"):
        assert main(["convert", synth, out, "-f", "voc", "--shard", shard]) == 0
    capsys.readouterr()
    assert main(["convert", synth, out, "-f", "voc", "--finalize"]) == 0
    text = capsys.readouterr().out
    assert "5 frames indexed, 0 missing" in text and "written" not in text
    assert cio.open(out, format="voc").count() == 5


# -- 10. --overwrite -------------------------------------------------------------------------------
def test_overwrite_flag_is_accepted_by_the_writing_commands():
    from cityscapes_io.cli import build_parser

    parser = build_parser()
    for argv in (["convert", "a", "b", "-f", "voc", "--overwrite"],
                 ["merge", "a", "b", "-o", "c", "-f", "voc", "--overwrite"],
                 ["project", "export", "-f", "voc", "--overwrite"]):
        assert parser.parse_args(argv).overwrite is True


def test_overwrite_replaces_the_dataset_at_the_destination(synth, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["convert", synth, out, "-f", "voc", "-q"]) == 0
    assert main(["convert", synth, out, "-f", "voc", "-q", "--split", "val", "--overwrite"]) == 0
    back = cio.open(out, format="voc")
    assert back.splits() == ["val"] and back.count() == 2
