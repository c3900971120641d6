"""The command line, in process (main([...])) and as the installed console script."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.cli import main


def test_info_on_the_sample(capsys):
    assert main(["info", cio.sample_path()]) == 0
    out = capsys.readouterr().out
    assert "frames:  6" in out and "train: 4 frames in 2 cities" in out and "bad-honnef: 1" in out
    assert "labels:  35 from cityscapes" in out
    assert main(["info", cio.sample_path(), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == 6 and info["splits"]["val"]["cities"] == {"aachen": 1, "bad-honnef": 1}


def test_info_error_names_the_path(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing" in err


def test_convert_both_spellings(tmp_path, capsys):
    src = cio.sample_path()
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["convert", src, a, "-f", "voc", "--save-media"]) == 0
    assert main(["convert", "-if", "cityscapes", "-i", src, "-f", "voc", "-o", b, "--", "--save-media"]) == 0
    for root in (a, b):
        assert len(os.listdir(os.path.join(root, "JPEGImages", "aachen"))) == 3
    for fa, fb in zip(cio.open(a, format="voc"), cio.open(b, format="voc")):
        assert np.array_equal(fa.label_ids(), fb.label_ids())
    assert "6 frames read, 6 written, 0 skipped" in capsys.readouterr().out


def test_convert_options_after_double_dash(tmp_path):
    out = str(tmp_path / "cs")
    assert main(["convert", "-i", cio.sample_path(), "-f", "cityscapes", "-o", out, "--",
                 "--save-media", "--save-dataset-meta", "--image-ext", ".jpg"]) == 0
    assert os.path.exists(os.path.join(out, "dataset_meta.json"))
    frame = next(iter(cio.open(out)))
    assert frame.path("image").endswith(".jpg")


def test_convert_usage_errors(tmp_path, capsys):
    assert main(["convert", cio.sample_path(), str(tmp_path / "x")]) == 2
    assert "-f" in capsys.readouterr().err


def test_synthetic_command(tmp_path):
    out = str(tmp_path / "syn")
    assert main(["synthetic", out, "--frames", "2", "--splits", "train,val", "--size", "64x32"]) == 0
    ds = cio.open(out)
    assert ds.splits() == ["train", "val"] and ds.count() == 4


def test_console_script_and_module(tmp_path):
    exe = shutil.which("cityscapes-io", path=os.path.dirname(sys.executable))
    assert exe, "the console script is installed beside the interpreter"
    out = str(tmp_path / "voc")
    run = subprocess.run([exe, "convert", cio.sample_path(), out, "-f", "voc", "--save-media"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert os.path.exists(os.path.join(out, "labelmap.txt"))
    run = subprocess.run([sys.executable, "-m", "cityscapes_io", "info", out + "-missing"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3 and run.stderr.startswith("error: ")


# -- the format page's example sessions, with `datum` replaced by `cityscapes-io` ---------------
@pytest.fixture
def synth(tmp_path):
    from cityscapes_io.testing import generate

    root = str(tmp_path / "Cityscapes")
    generate(root, splits={"train": 3, "val": 2}, size=(96, 48), seed=7)
    return root


def test_example_1_project_to_voc(synth, tmp_path, capsys, monkeypatch):
    project, dataset = str(tmp_path / "project"), str(tmp_path / "dataset")
    assert main(["project", "create", "-o", project]) == 0
    assert main(["project", "import", "-p", project, "-f", "cityscapes", synth]) == 0
    assert main(["stats", "-p", project]) == 0
    out = capsys.readouterr().out
    assert "frames: 5" in out and "car" in out
    assert main(["project", "export", "-p", project, "-o", dataset, "-f", "voc", "--", "--save-media"]) == 0
    for a, b in zip(cio.open(synth), cio.open(dataset, format="voc")):
        assert np.array_equal(a.label_ids(), b.label_ids()) and b.image() is not None
    # `datum project create` with no -o works in the current folder
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["project", "create"]) == 0 and (here / "project.json").exists()
    assert main(["project", "import", synth, "-f", "cityscapes"]) == 0
    assert main(["project", "info"]) == 0
    assert "source Cityscapes" in capsys.readouterr().out


def test_export_to_cityscapes_with_label_map(synth, tmp_path, capsys):
    project, out = str(tmp_path / "p"), str(tmp_path / "out")
    cmap = tmp_path / "mycolormap.txt"
    cmap.write_text("# label_colors\n0 0 255 sky\n255 0 0 person\n")
    assert main(["project", "create", "-o", project]) == 0
    assert main(["project", "import", "-p", project, "-f", "cityscapes", synth]) == 0
    assert main(["project", "export", "-p", project, "-f", "cityscapes", "-o", out, "--",
                 "--label-map", str(cmap), "--save-media"]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "labels not in the output label map" in err and "background" in err, err
    back = cio.open(out)
    assert back.labels.names == ["background", "sky", "person"]
    out2 = str(tmp_path / "out2")
    assert main(["convert", "-if", "voc", "-i", _voc(synth, tmp_path), "-f", "cityscapes", "-o", out2,
                 "--", "--save-media", "--label-map", "cityscapes"]) == 0
    assert len(cio.open(out2).labels) == 35


def _voc(src, tmp_path):
    out = str(tmp_path / "voc")
    cio.convert(src, out, format="voc", save_media=True)
    return out


def test_recorded_operations_and_flags(synth, tmp_path, capsys):
    project, out = str(tmp_path / "p"), str(tmp_path / "out")
    assert main(["project", "create", "-o", project]) == 0
    assert main(["project", "import", "-p", project, synth]) == 0
    assert main(["project", "filter", "-p", project, "--split", "train", "--with-label", "car"]) == 0
    assert main(["project", "transform", "-p", project, "--remap", "car:vehicle", "--remap", "bicycle:",
                 "--rename-split", "train:training"]) == 0
    ops = json.load(open(os.path.join(project, "project.json")))["operations"]
    assert [o["op"] for o in ops] == ["filter", "remap_labels", "rename_splits"]
    assert main(["project", "export", "-p", project, "-f", "cityscapes", "-o", out]) == 0
    back = cio.open(out)
    assert back.splits() == ["training"] and "vehicle" in [n for n in back.labels.names]
    assert "bicycle" not in back.labels.names
    # the same as flags on convert
    out2 = str(tmp_path / "out2")
    assert main(["convert", synth, out2, "-f", "cityscapes", "--split", "train", "--with-label", "car",
                 "--remap", "car:vehicle", "--remap", "bicycle:", "--rename-split", "train:training"]) == 0
    for a, b in zip(cio.open(out), cio.open(out2)):
        assert a.id == b.id and np.array_equal(a.instance_ids(), b.instance_ids())
    out3 = str(tmp_path / "train-ids")
    assert main(["convert", synth, out3, "-f", "cityscapes", "--train-ids", "--id", "aachen/*"]) == 0
    t = cio.open(out3)
    assert t.labels.source.endswith("dataset_meta.json") and all(f.city == "aachen" for f in t)


def test_info_stats_json_and_merge(synth, tmp_path, capsys):
    assert main(["info", synth, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["splits"]["train"]["files"] == {"image": 3, "instanceIds": 3, "labelIds": 3, "color": 3,
                                                "polygons": 3}
    assert main(["stats", synth, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    car = stats["splits"]["train"]["labels"]["car"]
    ds = cio.open(synth, split="train")
    assert car["pixels"] == sum(int((f.label_ids() == 26).sum()) for f in ds)
    assert car["instances"] == sum(1 for f in ds for i in f.instances() if i.label_id == 26 and not i.is_crowd)
    assert stats["splits"]["train"]["image_sizes"] == {"96x48": 3}
    out = str(tmp_path / "merged")
    assert main(["merge", synth, synth, "-o", out, "-f", "voc"]) == 1  # duplicate ids
    assert "duplicate frame id" in capsys.readouterr().err
    assert main(["merge", synth, synth, "-o", out, "-f", "voc", "--on-duplicate", "rename"]) == 0
    assert cio.open(out, format="voc").count() == 10


def test_progress_bar_only_on_a_terminal():
    import io

    from cityscapes_io.progress import Progress

    stream = io.StringIO()
    bar = Progress(10, label="voc", stream=stream, interval=0)
    for i in range(1, 11):
        bar(i)
    bar.close()
    assert stream.getvalue() == ""  # StringIO is not a terminal
    bar = Progress(10, label="voc", stream=stream, enabled=True, interval=0)
    bar(5)
    assert "5/10 frames" in stream.getvalue() and "/s" in stream.getvalue() and "left" in stream.getvalue()


def test_validate_command(tmp_path, capsys):
    from conftest import write_file, write_frame

    root = str(tmp_path / "ds")
    write_frame(root, "train", "a/a_000000_000001")
    assert main(["validate", root]) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().out
    write_file(root, "gtFine/train/a/README.txt", b"notes")
    assert main(["validate", root]) == 0 and main(["validate", root, "--strict"]) == 1
    capsys.readouterr()
    write_file(root, "gtFine/train/a/a_000000_000002_gtFine_instanceIds.png", b"not a png")
    assert main(["validate", root, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    codes = {p["code"] for p in report["problems"]}
    assert {"corrupt-png", "unknown-file", "missing-photo"} <= codes and report["error"] >= 1
    bad = next(p for p in report["problems"] if p["code"] == "corrupt-png")
    assert bad["path"].endswith("a_000000_000002_gtFine_instanceIds.png")


def test_show_command(synth, tmp_path, capsys):
    from PIL import Image

    frame = next(iter(cio.open(synth)))
    out = str(tmp_path / "frame.png")
    assert main(["show", synth, frame.id, "-o", out]) == 0
    img = Image.open(out)
    assert img.mode == "RGB" and img.width > 96 and img.height >= 48  # photo plus legend
    assert main(["show", synth, "nope/nope_000000_000000", "-o", out]) == 3
    assert "no such frame" in capsys.readouterr().err


def test_merge_sources_of_different_formats(synth, tmp_path):
    voc = _voc(synth, tmp_path)
    out = str(tmp_path / "merged")
    assert main(["merge", voc, cio.sample_path(), "-if", "voc", "-if", "cityscapes", "-o", out, "-f", "cityscapes",
                 "--on-duplicate", "rename", "-q"]) == 0
    merged = cio.open(out)
    assert merged.count() == 5 + 6
    assert main(["merge", voc, cio.sample_path(), "-if", "voc", "-if", "voc", "-if", "voc", "-o", out,
                 "-f", "voc"]) == 2
