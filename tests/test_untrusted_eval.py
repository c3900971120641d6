"""Evaluation inputs from someone else (issue 17): a submission reads nothing outside its folder,
decodes nothing larger than the ground truth, cannot rank a non-finite confidence, and a crashed
worker or a destination overlapping the source gives one clear error. Real files, real processes."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import struct
import threading
import time
import zlib
from typing import Optional

import numpy as np
import pytest
from conftest import label_ids_of, traced_peak, write_file, write_frame

import cityscapes_io as cio
from cityscapes_io.cli import main
from cityscapes_io.png import encode_png

FRAME = "aachen/aachen_000000_000019"
BASE = "aachen_000000_000019"
# instanceIds: void row, road, a car (8 px), a crowd of cars (8 px), a person (4 px).
GT = np.full((6, 10), 7, np.uint16)
GT[0, :] = 0
GT[1:3, 0:4] = 26001
GT[4:6, 6:10] = 26
GT[4:6, 0:2] = 24001


def _gt(tmp_path, frames=(FRAME,)):
    root = str(tmp_path / "gt")
    for frame in frames:
        write_frame(root, "val", frame, GT, photo=False)
    return root


def _zero_png(width: int, height: int, color_type: int = 0) -> bytes:
    """A valid PNG of zeros declaring ``width`` x ``height`` (8-bit gray or RGB), a few KB:
    compressed row by row, never held whole."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    row = bytes(1 + width * (3 if color_type == 2 else 1))
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _with_color_type(data: bytes, color_type: int) -> bytes:
    """A PNG whose IHDR declares another colour type (its checksum kept valid)."""
    ihdr = data[12:25] + bytes([color_type]) + data[26:29]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


# -- panoptic: file_name stays in the prediction folder ---------------------------------------------
SEGMENTS = {7: 1, 26001: 2, 26: 3, 24001: 4}
CATS = {1: 7, 2: 26, 3: 26, 4: 24}


def _panoptic_rgb() -> np.ndarray:
    ids = np.zeros(GT.shape, np.int64)
    for value, seg in SEGMENTS.items():
        ids[GT == value] = seg
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)


def _panoptic_json(folder: str, anns) -> str:
    os.makedirs(os.path.join(folder, "pred"), exist_ok=True)
    path = os.path.join(folder, "pred.json")
    with open(path, "w") as f:
        json.dump({"annotations": [{"image_id": image_id, "file_name": name, "segments_info": [
            {"id": i, "category_id": c} for i, c in CATS.items()]} for image_id, name in anns]}, f)
    return path


def test_panoptic_file_names_stay_inside_the_prediction_folder(tmp_path):
    root = _gt(tmp_path)
    write_file(str(tmp_path), "elsewhere/perfect.png", encode_png(_panoptic_rgb()))
    pred = _panoptic_json(str(tmp_path / "sub"), [(BASE, "../../elsewhere/perfect.png")])
    # An empty prediction folder whose JSON names a PNG beside it scored PQ 100.
    problems = cio.check_predictions(root, pred, task="panoptic")
    assert problems == [f"{tmp_path}/sub/pred.json: annotation of image {BASE}: file_name: path "
                        "'../../elsewhere/perfect.png' leads outside its root (refused)"]
    with pytest.raises(cio.CityscapesIOError, match="leads outside its root"):
        cio.evaluate(root, pred, task="panoptic")
    pred = _panoptic_json(str(tmp_path / "abs"), [(BASE, str(tmp_path / "elsewhere" / "perfect.png"))])
    assert "is absolute" in cio.check_predictions(root, pred, task="panoptic")[0]
    # A link in the prediction folder to a PNG outside it.
    pred = _panoptic_json(str(tmp_path / "link"), [(BASE, "perfect.png")])
    os.symlink(tmp_path / "elsewhere" / "perfect.png", tmp_path / "link" / "pred" / "perfect.png")
    (problem,) = cio.check_predictions(root, pred, task="panoptic")
    assert "file_name: path 'perfect.png' leads through a symbolic link to" in problem and "(refused)" in problem
    # Inside the folder, the same PNG scores as before.
    write_file(str(tmp_path / "in"), "pred/perfect.png", encode_png(_panoptic_rgb()))
    pred = _panoptic_json(str(tmp_path / "in"), [(BASE, "perfect.png")])
    assert cio.evaluate(root, pred, task="panoptic").all["pq"] == 1.0


def test_panoptic_duplicate_image_ids_are_a_problem(tmp_path):
    root = _gt(tmp_path)
    write_file(str(tmp_path / "sub"), "pred/a.png", encode_png(_panoptic_rgb()))
    pred = _panoptic_json(str(tmp_path / "sub"), [(BASE, "a.png"), (BASE, "a.png")])
    assert cio.check_predictions(root, pred, task="panoptic") == [
        f"{tmp_path}/sub/pred.json: duplicate image_id {BASE}: several annotations for one image"]
    with pytest.raises(cio.CityscapesIOError, match=f"duplicate image_id {BASE}"):
        cio.evaluate(root, pred, task="panoptic")


def test_panoptic_png_size_is_checked_before_decoding(tmp_path):
    root = _gt(tmp_path)
    write_file(str(tmp_path / "sub"), "pred/big.png", _zero_png(2048, 2048, color_type=2))  # 16 MB as RGBX
    pred = _panoptic_json(str(tmp_path / "sub"), [(BASE, "big.png")])
    problems = cio.check_predictions(root, pred, task="panoptic")
    assert problems == [f"{tmp_path}/sub/pred/big.png: size 2048x2048, the ground truth {FRAME} is 10x6"]
    assert traced_peak(cio.check_predictions, root, pred, task="panoptic") < 4 * 2**20


def test_an_undecodable_panoptic_png_is_named_in_words(tmp_path):
    root = _gt(tmp_path)
    write_file(str(tmp_path / "sub"), "pred/a.png", _with_color_type(encode_png(_panoptic_rgb()), 5))
    pred = _panoptic_json(str(tmp_path / "sub"), [(BASE, "a.png")])
    assert cio.check_predictions(root, pred, task="panoptic") == [
        f"{tmp_path}/sub/pred/a.png: not an image: no image format recognises its bytes"]


# -- semantic ----------------------------------------------------------------------------------------
def test_semantic_png_size_is_checked_before_decoding(tmp_path):
    root = _gt(tmp_path)
    preds = str(tmp_path / "pred")
    write_file(preds, f"{BASE}_pred.png", _zero_png(4096, 4096))  # 16 MB decoded, a few KB on disk
    assert os.path.getsize(os.path.join(preds, f"{BASE}_pred.png")) < 40_000
    assert cio.check_predictions(root, preds) == [f"{preds}/{BASE}_pred.png: size 4096x4096, the ground truth "
                                                  f"{FRAME} is 10x6"]
    assert traced_peak(cio.check_predictions, root, preds) < 4 * 2**20
    with pytest.raises(cio.CityscapesIOError, match="size 4096x4096"):
        cio.evaluate(root, preds)


def test_semantic_prediction_linked_outside_its_folder_is_refused(tmp_path):
    root = _gt(tmp_path)
    write_file(str(tmp_path), "elsewhere/x.png", encode_png(label_ids_of(GT)))
    preds = str(tmp_path / "pred")
    os.makedirs(preds)
    os.symlink(tmp_path / "elsewhere" / "x.png", os.path.join(preds, f"{BASE}_pred.png"))
    (problem,) = cio.check_predictions(root, preds)
    assert f"{BASE}_pred.png: a symbolic link to {tmp_path}/elsewhere/x.png, outside the root" in problem


# -- instance --------------------------------------------------------------------------------------
PERFECT = [("car.png", GT == 26001, 26, "0.9"), ("person.png", GT == 24001, 24, "0.8")]


def _instance_tree(tmp_path, lines=None, masks=PERFECT, frames=(FRAME,)):
    root = _gt(tmp_path, frames)
    preds = str(tmp_path / "pred")
    for name, mask, _, _ in masks:
        write_file(preds, f"m/{name}", encode_png(mask.astype(np.uint8) * 255))
    if lines is None:
        lines = "".join(f"m/{name} {label} {conf}\n" for name, _, label, conf in masks).encode()
    write_file(preds, f"{BASE}_pred.txt", lines)
    return root, preds


def test_an_instance_txt_linked_outside_is_refused_without_its_content(tmp_path):
    root = _gt(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    preds = tmp_path / "pred"
    preds.mkdir()
    os.symlink(secret, preds / f"{BASE}_pred.txt")
    problems = cio.check_predictions(root, str(preds), task="instance")
    assert len(problems) == 1 and "root:x" not in problems[0] and "daemon" not in problems[0]
    assert f"{BASE}_pred.txt: a symbolic link to {secret}, outside the root" in problems[0]


def test_instance_mask_paths_stay_inside_the_prediction_folder(tmp_path):
    outside = str(tmp_path / "outside.png")
    with open(outside, "wb") as f:
        f.write(encode_png((GT == 26001).astype(np.uint8) * 255))
    lines = (f"../outside.png 26 0.9\n{outside} 26 0.9\nlink.png 26 0.9\nm/car.png 26 0.9\n").encode()
    root, preds = _instance_tree(tmp_path, lines)
    os.symlink(outside, os.path.join(preds, "link.png"))
    problems = cio.check_predictions(root, preds, task="instance")
    txt = f"{preds}/{BASE}_pred.txt"
    assert problems[0] == f"{txt}: line 1: path '../outside.png' leads outside its root (refused)"
    assert problems[1].startswith(f"{txt}: line 2: path '{outside}' is absolute")
    assert problems[2].startswith(f"{txt}: line 3: path 'link.png' leads through a symbolic link to {outside}")
    assert len(problems) == 3


def test_an_instance_txt_with_a_byte_order_mark_is_read(tmp_path):
    root, preds = _instance_tree(tmp_path)
    plain = json.dumps(cio.evaluate(root, preds, task="instance").to_dict())
    path = os.path.join(preds, f"{BASE}_pred.txt")
    with open(path, "rb") as f:
        text = f.read()
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + text)
    assert cio.check_predictions(root, preds, task="instance") == []
    assert json.dumps(cio.evaluate(root, preds, task="instance").to_dict()) == plain


def test_a_nul_byte_in_a_mask_path_is_listed_and_the_check_goes_on(tmp_path, capsys):
    frames = (FRAME, "aachen/aachen_000001_000019")
    root, preds = _instance_tree(tmp_path, b"m/ca\x00r.png 26 0.9\nbad line\nm/person.png 24 0.8\n", frames=frames)
    assert main(["eval", root, preds, "--task", "instance", "--check-only"]) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].endswith("no prediction for frame aachen/aachen_000001_000019")  # the other frame too
    assert lines[1] == f"{preds}/{BASE}_pred.txt: line 1: path 'm/ca\\x00r.png' contains a NUL byte (refused)"
    assert lines[2].startswith(f"{preds}/{BASE}_pred.txt, line 2: expected")
    assert len(lines) == 3 and "3 problem(s)" in out.err


@pytest.mark.parametrize("conf", ["nan", "inf", "-inf", "NaN", "Infinity"])
def test_non_finite_confidences_are_refused(tmp_path, capsys, conf):
    masks = PERFECT + [("fp.png", GT == 7, 24, conf)]
    root, preds = _instance_tree(tmp_path, masks=masks)
    problem = f"{preds}/{BASE}_pred.txt, line 3: confidence '{conf}' is not a finite number"
    assert cio.check_predictions(root, preds, task="instance") == [problem]
    with pytest.raises(cio.CityscapesIOError, match="is not a finite number"):
        cio.evaluate(root, preds, task="instance")
    assert main(["eval", root, preds, "--task", "instance"]) == 1
    assert "not a finite number" in capsys.readouterr().err


def test_non_finite_scores_of_a_prediction_dataset_are_refused(tmp_path):
    root = _gt(tmp_path)
    instances = [cio.Instance.from_mask(GT == 26001, label_id=26, score=0.9),
                 cio.Instance.from_mask(GT == 24001, label_id=24, score=float("nan"))]
    ds = cio.Dataset.from_iterable([cio.Frame.from_arrays(id=FRAME, split="val", instances=instances)])
    (problem,) = cio.check_predictions(root, ds, task="instance")
    assert "score nan is not a finite number" in problem


def test_instance_mask_size_is_checked_before_decoding(tmp_path):
    root, preds = _instance_tree(tmp_path, b"m/big.png 26 0.9\n", masks=[])
    write_file(preds, "m/big.png", _zero_png(4096, 4096))
    assert cio.check_predictions(root, preds, task="instance") == [
        f"{preds}/m/big.png: size 4096x4096, the ground truth is 10x6"]
    assert traced_peak(cio.check_predictions, root, preds, task="instance") < 4 * 2**20


def test_an_undecodable_mask_is_named_in_words(tmp_path):
    root, preds = _instance_tree(tmp_path)
    car = encode_png((GT == 26001).astype(np.uint8) * 255)
    write_file(preds, "m/car.png", _with_color_type(car, 5))  # no such colour type
    write_file(preds, "m/person.png", car[:-30])  # cut inside its image data
    problems = cio.check_predictions(root, preds, task="instance")
    assert problems[0] == f"{preds}/m/car.png: not an image: no image format recognises its bytes"
    assert problems[1].startswith(f"{preds}/m/person.png: truncated PNG")
    assert len(problems) == 2 and "BytesIO" not in "".join(problems)


_CAMERA = ('{"extrinsic": {"baseline": %s, "pitch": 0.04, "roll": 0, "x": 1.7, "y": 0.1, "yaw": -0.01, "z": 1.2}, '
           '"intrinsic": {"fx": %s, "fy": 2265.3, "u0": 1096.9, "v0": 513.1}}')


@pytest.mark.parametrize("camera, reason", [
    (_CAMERA.encode() % (b"NaN", b"2000"), "not valid JSON: NaN is not a JSON number"),
    (_CAMERA.encode() % (b'"0.2"', b"2000"), "camera JSON: extrinsic.baseline must be a finite number, got '0.2'"),
    (b'{"extrinsic": [], "intrinsic": {"fx": 2000}}', "camera JSON: intrinsic.fy must be a finite number, got None"),
    (_CAMERA.encode() % (b"0.2", b"0"), "camera JSON: intrinsic.fx must be positive, got 0"),
    (b'[1, 2]', "camera JSON: intrinsic.fx must be a finite number, got None"),
])
def test_camera_files_of_wrong_types_are_problems(tmp_path, camera, reason):
    root, preds = _instance_tree(tmp_path)
    write_file(root, f"disparity/val/{FRAME}_disparity.png", encode_png(np.full(GT.shape, 300, np.uint16)))
    write_file(root, f"camera/val/{FRAME}_camera.json", camera)
    problem = f"{root}/camera/val/{FRAME}_camera.json: {reason}"
    (found,) = cio.check_predictions(root, preds, task="instance")
    assert found.startswith(problem)
    with pytest.raises(cio.CityscapesIOError) as info:
        cio.evaluate(root, preds, task="instance")
    assert problem in str(info.value)


def test_a_disparity_of_another_size_is_a_problem(tmp_path):
    root, preds = _instance_tree(tmp_path)
    write_file(root, f"disparity/val/{FRAME}_disparity.png", encode_png(np.full((3, 3), 300, np.uint16)))
    write_file(root, f"camera/val/{FRAME}_camera.json", (_CAMERA % (0.2, 2000)).encode())
    problem = f"{root}/disparity/val/{FRAME}_disparity.png: disparity of size 3x3, the ground truth {FRAME} is 10x6"
    assert cio.check_predictions(root, preds, task="instance") == [problem]
    with pytest.raises(cio.CityscapesIOError, match="disparity of size 3x3"):
        cio.evaluate(root, preds, task="instance")
    write_file(root, f"disparity/val/{FRAME}_disparity.png", encode_png(np.full(GT.shape, 300, np.uint16)))
    assert cio.evaluate(root, preds, task="instance").distance_available


# -- a worker killed while it works ----------------------------------------------------------------
def _running(pid: int) -> bool:
    """Whether a worker process has imported numpy (its start-up, which the pool writes to,
    is over: a worker killed before would fail the pool's write instead)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "_multiarray_umath" in f.read()
    except OSError:
        return False


def _kill_a_worker(fifo: str, killed: list, finished: threading.Event, others: frozenset = frozenset(),
                   released: Optional[list] = None) -> None:
    """SIGKILL the first worker of the pool once it runs (``others``: children of this process
    that were there before, left by earlier tests, which are not the pool's). Should the
    evaluation not be over 10 s later, let go any reader left blocked opening ``fifo`` (it reads
    an empty file): a failure, not a hang."""
    deadline = time.monotonic() + 60
    while not killed and not finished.is_set() and time.monotonic() < deadline:
        for child in multiprocessing.active_children():
            if child.pid not in others and _running(child.pid):
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)
                break
        time.sleep(0.02)
    if finished.wait(10):
        return
    while not finished.wait(0.05):
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            if released is not None:
                released.append(True)
        except OSError:
            pass  # no reader


def test_a_crashed_worker_names_the_frames_not_accounted_for(tmp_path, capsys, monkeypatch):
    frames = ("aachen/aachen_000000_000001", "aachen/aachen_000000_000002")
    root = _gt(tmp_path, frames)
    preds = str(tmp_path / "pred")
    os.makedirs(preds)
    # The first frame's prediction is a named pipe: opening it blocks until a writer comes, so
    # that frame is still in a worker (or not started) when a worker is killed.
    fifo = os.path.join(preds, "aachen_000000_000001_pred.png")
    os.mkfifo(fifo)
    write_file(preds, "aachen_000000_000002_pred.png", encode_png(label_ids_of(GT)))
    # The CLI starts processes only where they beat one process (never on 2 frames): here they
    # must start, as `evaluate(workers=2)` starts them.
    monkeypatch.setattr("cityscapes_io.cli.eval.processes_for", lambda workers, frames: workers)
    killed: list = []
    released: list = []
    finished = threading.Event()
    others = frozenset(c.pid for c in multiprocessing.active_children())
    killer = threading.Thread(target=_kill_a_worker, args=(fifo, killed, finished, others, released))
    killer.start()
    try:
        status = main(["eval", root, preds, "-j", "2"])
    finally:
        finished.set()
        killer.join()
    assert killed
    err = capsys.readouterr().err
    assert status == 1 and len(err.splitlines()) == 1
    # Neither frame has a result while the first one's prediction cannot be opened. Should the
    # pool not notice the killed worker within 10 s (seen about once in six CI runs: the first
    # frame then sits in the surviving worker), the killer lets that prediction be opened: the
    # first frame then gets its result (an empty file, a problem) and only the second is named.
    lost = frames if not released else frames[1:]
    assert err.startswith("error: a worker process ended abruptly (killed by a signal or out of memory): "
                          f"{len(lost)} frame(s) not accounted for: {', '.join(lost)}; no result is given")
    assert "Traceback" not in err and "BrokenProcessPool" not in err


# -- export-predictions ------------------------------------------------------------------------------
def _model_output(tmp_path, pred) -> str:
    made = str(tmp_path / "made")
    instances = [cio.Instance.from_mask(pred == v, label_id=int(v), is_crowd=True) for v in np.unique(pred)]
    frame = cio.Frame.from_arrays(id=FRAME, split="val", instances=instances)
    cio.Dataset.from_iterable([frame]).to_train_ids().export(made, "cityscapes", save_train_ids=True)
    return made


def test_export_predictions_errors_name_the_frame_file(tmp_path, capsys):
    pred = label_ids_of(GT)
    pred[0, 0] = 4  # static: no train id, 255 in the model's output
    made = _model_output(tmp_path, pred)
    assert main(["export-predictions", made, str(tmp_path / "out"), "--task", "semantic"]) == 1
    err = capsys.readouterr().err
    assert "Dataset(" not in err
    assert err.startswith(f"error: {made}: 1 frame(s) not exported:")
    assert f"{made}/gtFine/val/{FRAME}_gtFine_" in err and "values with no official label id" in err


@pytest.mark.parametrize("dest", ["same", "inside", "holding"])
def test_export_predictions_never_deletes_its_source(tmp_path, capsys, dest):
    made = _model_output(tmp_path, label_ids_of(GT))
    before = sorted(os.path.relpath(os.path.join(d, f), made) for d, _, fs in os.walk(made) for f in fs)
    out = {"same": made, "inside": os.path.join(made, "gtFine"), "holding": str(tmp_path)}[dest]
    assert main(["export-predictions", made, out, "--task", "semantic", "--overwrite"]) == 2  # refused
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}: ") and ("source" in err), err
    after = sorted(os.path.relpath(os.path.join(d, f), made) for d, _, fs in os.walk(made) for f in fs)
    assert after == before and before
