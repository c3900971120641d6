"""Issue 18, "a CLI that talks like a tool": progress lines on every long command (drawn on a real
pseudo-terminal), one-line warnings and -q, exit statuses that tell a refusal from failed frames,
one problem a line, the source format in project info, paths as given, and -j that never loses."""
from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import warnings

import numpy as np
import pytest

import cityscapes_io as cio
from cityscapes_io.cli import EXIT_ERROR, EXIT_REFUSED, build_parser, main
from cityscapes_io.errors import RefusedError
from cityscapes_io.evaluation.common import processes_for, run_frames
from cityscapes_io.png import encode_png
from cityscapes_io.progress import Progress

from conftest import write_frame


@pytest.fixture
def synth(tmp_path):
    """Five small frames: train 3, val 2."""
    from cityscapes_io.testing import generate

    root = str(tmp_path / "Cityscapes")
    generate(root, splits={"train": 3, "val": 2}, size=(64, 32), seed=3)
    return root


def _predictions(gt: str, dst: str, n: int = 0) -> str:
    """The ground truth's val labelIds as semantic predictions (all but the first ``n``)."""
    os.makedirs(dst)
    found = sorted(os.path.join(dirpath, name) for dirpath, _, files in os.walk(os.path.join(gt, "gtFine", "val"))
                   for name in files if name.endswith("_labelIds.png"))
    for path in found[n:]:
        shutil.copy(path, dst)
    return dst


def on_terminal(monkeypatch, argv):
    """``main(argv)`` with stderr a real pseudo-terminal; its status and everything drawn there."""
    import termios

    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # bytes as written (no \n -> \r\n)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    chunks = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal's other side closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    stream = open(slave, "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        status = main(argv)
    finally:
        monkeypatch.undo()
        stream.close()
        reader.join(10)
        os.close(master)
    return status, b"".join(chunks).decode()


def drawn(text: str, label: str):
    """The frame counts a progress line labelled ``label`` showed, in order, and its totals."""
    found = re.findall(rf"\r{re.escape(label)} \[[#.]+\] (\d+)/(\d+) frames", text)
    return list(dict.fromkeys(int(done) for done, _ in found)), {int(total) for _, total in found}


# -- progress ---------------------------------------------------------------------------------------
def test_tar_shards_advance_frame_by_frame(synth, tmp_path, monkeypatch):
    # Before: the frames of a shard came out when the shard was complete: the line stayed at the
    # first frame (and its ETA, the whole shard's time per frame) until the next shard.
    status, text = on_terminal(monkeypatch, ["convert", synth, str(tmp_path / "w"), "-f", "wds",
                                             "--frames-per-shard", "3"])
    assert status == 0, text
    assert drawn(text, "wds") == ([1, 2, 3, 4, 5], {5})


def test_frames_that_come_in_a_burst_are_drawn_up_to_the_last():
    # A worker's whole tar shard (or chunk) is accounted for at once, after it took its time:
    # the line went to the first frame of the burst, with an ETA of the whole time per frame,
    # and the calls for the rest came within the redraw interval, so stayed undrawn.
    import io

    stream = io.StringIO()
    bar = Progress(300, label="wds", stream=stream, enabled=True, interval=3600)
    for done in range(1, 101):
        bar(done)
    shown = [int(m) for m in re.findall(r"\] (\d+)/300 frames", stream.getvalue())]
    assert shown[0] == 1 and shown[-1] in (99, 100) and len(shown) <= 51


def test_eval_and_check_only_show_a_progress_line(synth, tmp_path, monkeypatch):
    preds = _predictions(synth, str(tmp_path / "pred"))
    status, text = on_terminal(monkeypatch, ["eval", synth, preds])
    assert status == 0, text
    assert drawn(text, "semantic") == ([1, 2], {2})
    status, text = on_terminal(monkeypatch, ["eval", synth, preds, "--check-only"])
    assert status == 0, text
    assert drawn(text, "check") == ([1, 2], {2})
    assert "no problems" in text
    status, text = on_terminal(monkeypatch, ["eval", synth, preds, "--check-only", "-q"])
    assert status == 0 and drawn(text, "check") == ([], set())


def test_export_predictions_shows_a_progress_line(synth, tmp_path, monkeypatch):
    status, text = on_terminal(monkeypatch, ["export-predictions", synth, str(tmp_path / "sub"), "--split", "train"])
    assert status == 0, text
    assert drawn(text, "semantic predictions") == ([1, 2, 3], {3})
    assert sum(n.endswith("_pred.png") for _, _, ns in os.walk(tmp_path / "sub") for n in ns) == 3


def test_no_progress_line_off_a_terminal(synth, tmp_path, capsys):
    preds = _predictions(synth, str(tmp_path / "pred"))
    assert main(["eval", synth, preds, "--check-only"]) == 0
    assert "frames" not in capsys.readouterr().err


# -- warnings -----------------------------------------------------------------------------------------
def _colormap(tmp_path) -> str:
    cmap = tmp_path / "mycolormap.txt"
    cmap.write_text("# label_colors\n0 0 255 sky\n255 0 0 person\n")
    return str(cmap)


def test_a_warning_is_one_line_and_q_counts_it(synth, tmp_path, capsys):
    cmap = _colormap(tmp_path)
    assert main(["convert", synth, str(tmp_path / "a"), "-f", "cityscapes", "--label-map", cmap]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 2 and "written as background: bicycle, building" in lines[0], err
    assert "polygons files not written" in lines[1]
    assert "UserWarning" not in err and ".py:" not in err and "warnings.warn" not in err
    assert main(["convert", synth, str(tmp_path / "b"), "-f", "cityscapes", "--label-map", cmap, "-q",
                 "--image-ext", "jpg"]) == 0
    err = capsys.readouterr().err
    assert err == "3 warnings not shown (-q)\n"


def test_a_warning_clears_the_progress_line_first(synth, tmp_path, monkeypatch):
    status, text = on_terminal(monkeypatch, ["convert", synth, str(tmp_path / "a"), "-f", "cityscapes",
                                             "--label-map", _colormap(tmp_path)])
    assert status == 0
    assert re.search(r"\r\x1b\[Kwarning: \S+: labels not in the output label map \(.*\) were written as background",
                     text), text


def test_every_command_takes_q():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        if name == "project":
            for action, leaf in sub._subparsers._group_actions[0].choices.items():
                assert "-q" in leaf._option_string_actions, f"project {action}"
            continue
        assert "-q" in sub._option_string_actions, name


def _warns_per_frame(frame):
    warnings.warn(f"{frame.id}: seen in a worker")
    return frame.id


def test_warnings_of_worker_processes_come_back_in_order(synth):
    # Before: printed by the worker in Python's format (a file and line of this test), out of order.
    frames = list(cio.open(synth))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = list(run_frames(_warns_per_frame, frames, [()] * len(frames), workers=2))
    assert ids == [f.id for f in frames]
    assert [str(w.message) for w in caught] == [f"{f.id}: seen in a worker" for f in frames]


# -- exit statuses and the command line's spelling -------------------------------------------------------
def test_refusals_exit_2_and_say_the_flag(synth, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["convert", synth, out, "-f", "voc", "-q"]) == 0
    capsys.readouterr()
    for argv, words in (([synth, out, "-f", "voc"], "destination is not empty"),
                        ([synth, out, "-f", "cityscapes", "--resume"], "holds the output of another job"),
                        ([synth, out, "-f", "voc", "--shard", "3/2"], "shard 3/2"),
                        ([synth, synth, "-f", "voc", "--overwrite"], "destination is the source")):
        assert main(["convert", *argv]) == EXIT_REFUSED, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and "=True" not in err, err
    assert main(["convert", synth, out, "-f", "voc"]) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "pass --overwrite to replace it, or --resume to continue" in err, err
    archive = str(tmp_path / "out.zip")
    assert main(["convert", synth, archive, "-f", "voc", "-q"]) == 0
    assert main(["convert", synth, archive, "-f", "voc", "-q"]) == EXIT_REFUSED
    assert "archive exists already: pass --overwrite to replace it" in capsys.readouterr().err
    assert main(["export-predictions", synth, out]) == EXIT_REFUSED
    # A label-map file that does not exist, and synthetic into a non-empty folder: refused too.
    assert main(["convert", synth, str(tmp_path / "lm"), "-f", "cityscapes", "--label-map",
                 str(tmp_path / "nope.txt")]) == EXIT_REFUSED
    assert "label map file not found" in capsys.readouterr().err
    assert main(["synthetic", out, "--frames", "1"]) == EXIT_REFUSED
    assert "destination is not empty" in capsys.readouterr().err
    # The API keeps its keyword.
    with pytest.raises(RefusedError, match=r"pass overwrite=True \(--overwrite\)"):
        cio.convert(synth, out, format="voc")


def test_failed_frames_exit_1(synth, tmp_path, capsys):
    broken = str(tmp_path / "broken")
    shutil.copytree(synth, broken)
    victim = next(os.path.join(d, n) for d, _, ns in os.walk(os.path.join(broken, "gtFine")) for n in sorted(ns)
                  if n.endswith("_instanceIds.png"))
    with open(victim, "wb") as f:
        f.write(b"not a png")
    assert main(["convert", broken, str(tmp_path / "o"), "-f", "voc", "--on-error", "skip", "-q"]) == EXIT_ERROR
    assert "1 skipped" in capsys.readouterr().err


def test_exit_statuses_are_in_every_help(capsys):
    for argv in (["--help"], ["convert", "--help"], ["eval", "--help"], ["project", "info", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "refused, nothing done" in out and "frames\n       failed" in out, argv


# -- one problem a line ------------------------------------------------------------------------------------
def test_eval_refusal_lists_one_problem_a_line_count_first(synth, tmp_path, capsys):
    preds = _predictions(synth, str(tmp_path / "pred"), n=2)  # no prediction at all
    write_file_bytes = encode_png(np.zeros((32, 64), np.uint8))
    for k in range(3):
        with open(os.path.join(preds, f"nowhere_00000{k}_000001_pred.png"), "wb") as f:
            f.write(write_file_bytes)
    assert main(["eval", synth, preds]) == EXIT_ERROR
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"error: {preds}: 5 problem(s) with the predictions:", lines
    assert len(lines) == 6 and all(line.startswith("  ") and ": " in line for line in lines[1:]), lines
    assert sum("no prediction for frame" in line for line in lines) == 2


def test_export_refusal_lists_one_frame_a_line(tmp_path, capsys):
    root = str(tmp_path / "pred")
    inst = np.full((24, 32), 1, np.uint16)  # road
    inst[:4] = 0  # background, which the official table does not know
    for k in range(3):
        write_frame(root, "val", f"aachen/aachen_00000{k}_000019", inst, photo=False)
    with open(os.path.join(root, "label_colors.txt"), "w") as f:
        f.write("0 0 0 background\n128 64 128 road\n")
    assert main(["export-predictions", root, str(tmp_path / "sub")]) == EXIT_ERROR
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("3 frame(s) not exported:") and len(lines) == 4, lines
    assert all(line.startswith("  ") and "aachen_00000" in line for line in lines[1:]), lines


# -- project info, paths as given, -j --------------------------------------------------------------------
def test_project_info_says_the_source_format(synth, tmp_path, capsys):
    project = str(tmp_path / "p")
    assert main(["project", "create", "-o", project]) == 0
    assert main(["project", "import", "-p", project, "-f", "cityscapes", synth]) == 0
    assert main(["project", "transform", "-p", project, "--train-ids"]) == 0
    capsys.readouterr()
    assert main(["project", "info", "-p", project]) == 0
    out = capsys.readouterr().out
    assert "format:  cityscapes\n" in out and "view" not in out, out
    assert main(["info", synth, "--train-ids", "--json"]) == 0
    assert '"format": "cityscapes"' in capsys.readouterr().out


def test_check_only_prints_paths_as_given(synth, tmp_path, capsys, monkeypatch):
    shutil.move(synth, tmp_path / "gt")
    _predictions(str(tmp_path / "gt"), str(tmp_path / "pred"), n=2)
    with open(tmp_path / "pred" / "nowhere_000000_000001_pred.png", "wb") as f:
        f.write(encode_png(np.zeros((32, 64), np.uint8)))
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "gt", "pred", "--check-only"]) == EXIT_ERROR
    captured = capsys.readouterr()
    assert str(tmp_path) not in captured.out + captured.err
    lines = captured.out.splitlines()
    assert lines[0] == "pred/nowhere_000000_000001_pred.png: matches no ground-truth frame", lines
    assert all(line.startswith("gt/gtFine/val/") for line in lines[1:]) and len(lines) == 3, lines
    assert captured.err.startswith("3 problem(s) with the predictions:")
    assert main(["eval", "gt", "pred"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert str(tmp_path) not in err and "\n  gt/gtFine/val/" in err


def test_j_never_starts_processes_that_cannot_pay(synth, tmp_path, capsys):
    # Two threads already work on two frames at once: two processes only add their start-up.
    assert processes_for(2, 100) == 1 and processes_for(1, 10_000) == 1
    assert processes_for(64, 10) == 1  # too few frames for any process's start-up
    preds = _predictions(synth, str(tmp_path / "pred"))
    assert main(["eval", synth, preds, "-j", "2"]) == 0
    two = capsys.readouterr().out
    assert main(["eval", synth, preds]) == 0
    assert capsys.readouterr().out == two
    assert main(["eval", synth, preds, "-j", "0"]) == EXIT_REFUSED
