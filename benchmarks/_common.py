"""Helpers shared by the benchmarks of this folder (``bench_*.py``) and ``run_all.py``.

- fresh measured subprocesses, spawned by a small ``python -S`` launcher so that the child's
  ``ru_maxrss`` is its own (on Linux a process inherits the peak RSS of the process that forked
  it; the launcher bounds that to a few MiB);
- child scripts that time one step and report their own peak RSS (``timed_child``);
- alternating repeats (ours first on even rounds, second on odd ones);
- a local S3 server (moto's server mode) run as a separate process on 127.0.0.1;
- synthetic data made once per parameter set (a marker file *beside* the root, not inside it,
  so that uploading or converting the root sees only the dataset);
- machine context, markdown tables and verdicts; ``--size`` parsing; a work folder, temporary
  unless given.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import argparse

HERE = os.path.dirname(os.path.abspath(__file__))

# Spawns the measured interpreter and waits for it; exits with its status (see module doc).
LAUNCHER = ("import os, sys; "
            "pid = os.posix_spawn(sys.executable, [sys.executable] + sys.argv[1:], os.environ); "
            "sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))")

# Child prelude: peak-RSS helpers available to every child script.
CHILD_PRELUDE = r"""
import json, os, resource, sys, time


def vm_hwm_kib(pid="self"):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def usage(who=resource.RUSAGE_SELF):
    ru = resource.getrusage(who)
    return ru.ru_maxrss, ru.ru_utime + ru.ru_stime
"""


# The package imports its public names on first use (a fast command-line start): a child that
# imported it loads them all before the timed step, so that imports are never timed.
_LOAD_PUBLIC_NAMES = ("if 'cityscapes_io' in sys.modules:\n"
                      "    for _name in sys.modules['cityscapes_io'].__all__:\n"
                      "        getattr(sys.modules['cityscapes_io'], _name)\n")


def timed_child(setup: str, timed: str, result: str = "", after: str = "") -> str:
    """Code of a child that times one step and prints one JSON line.

    In order: ``CHILD_PRELUDE``; ``setup`` (arguments, imports); the peak RSS so far
    (``baseline_kib``) and the CPU time; ``timed``, between two ``time.perf_counter()`` calls;
    ``after``; the peak RSS (``peak_kib``, ``ru_maxrss``) and the CPU time again. The JSON line
    holds ``seconds``, ``cpu_s``, ``baseline_kib``, ``peak_kib``, ``hwm_kib`` (``VmHWM``) and the
    entries of ``result``, a fragment of a dict display (``'"read": report.read'``). ``setup``,
    ``timed`` and ``after`` are top-level statements (not indented)."""
    def block(code: str) -> str:
        code = code.strip("\n")
        return code + "\n" if code else ""

    return (CHILD_PRELUDE + block(setup)
            + _LOAD_PUBLIC_NAMES
            + "base_kib, cpu0 = usage()\n"
              "t0 = time.perf_counter()\n"
            + block(timed)
            + "t1 = time.perf_counter()\n"
            + block(after)
            + "peak_kib, cpu1 = usage()\n"
              'print(json.dumps({"seconds": t1 - t0, "cpu_s": cpu1 - cpu0, "baseline_kib": base_kib, '
              '"peak_kib": peak_kib, "hwm_kib": vm_hwm_kib()'
            + (", " + result.strip().rstrip(",") if result.strip() else "") + "}))\n")


# Runs ``func(*argv)`` of a benchmark module in a fresh interpreter and prints its JSON result.
_CHILD_FUNC = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import importlib
mod = importlib.import_module(sys.argv[2])
print(json.dumps(getattr(mod, sys.argv[3])(*sys.argv[4:])))
"""


class ChildError(RuntimeError):
    pass


def run_child(code: str, *argv: str, via_launcher: bool = True, python: Optional[str] = None,
              timeout: Optional[float] = None, env: Optional[Dict[str, str]] = None,
              cwd: Optional[str] = None) -> Dict:
    """Run ``python -c code argv...`` in a fresh interpreter and return the JSON object printed
    on its last stdout line."""
    exe = python or sys.executable
    cmd = [exe, "-c", code, *argv]
    if via_launcher and hasattr(os, "posix_spawn") and hasattr(os, "waitstatus_to_exitcode"):
        cmd = [exe, "-S", "-c", LAUNCHER] + cmd[1:]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout, env=env, cwd=cwd)
    if proc.returncode != 0:
        raise ChildError(f"benchmark child failed ({proc.returncode}): {' '.join(map(str, argv))[:300]}\n"
                         f"{proc.stderr[-4000:]}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise ChildError(f"benchmark child printed nothing: {' '.join(map(str, argv))[:300]}\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def run_func(module: str, func: str, *args: object, via_launcher: bool = True) -> Dict:
    """``module.func(*args)`` (a module of this folder) in a fresh interpreter; its JSON result."""
    return run_child(_CHILD_FUNC, HERE, module, func, *[str(a) for a in args], via_launcher=via_launcher)


def alternate(runs: Sequence[Tuple[str, Callable[[], object]]], repeat: int) -> Dict[str, List[object]]:
    """Run each callable ``repeat`` times, in an order reversed from one round to the next."""
    out: Dict[str, List[object]] = {name: [] for name, _ in runs}
    for i in range(repeat):
        for name, fn in (runs if i % 2 == 0 else list(reversed(runs))):
            out[name].append(fn())
    return out


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------
def official_parser(frames: int = 20, repeat: int = 3) -> "argparse.ArgumentParser":
    """The arguments of a run against an official script on a synthetic split: ``--frames``,
    ``--distinct``, ``--repeat``, ``--size``, ``--official-python`` (default: the env var of the
    opt-in tests) and ``--workdir``; a script adds its own."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=frames)
    ap.add_argument("--distinct", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=repeat)
    ap.add_argument("--size", default="2048x1024")
    ap.add_argument("--official-python", default=os.environ.get("CITYSCAPES_IO_CITYSCAPESSCRIPTS_PYTHON"))
    ap.add_argument("--workdir")
    ap.add_argument("--json", help="write the best times (seconds per run) to this JSON file")
    return ap


def parse_official(ap: "argparse.ArgumentParser") -> Tuple["argparse.Namespace", Tuple[int, int], Dict[str, str]]:
    """The arguments of :func:`official_parser`, the frame size, and the machine (printed)."""
    args = ap.parse_args()
    return args, parse_size(args.size, ap), print_machine()


def parse_size(text: str, parser: Optional["argparse.ArgumentParser"] = None) -> Tuple[int, int]:
    """``WIDTHxHEIGHT`` -> (width, height); a wrong one ends the program (through
    ``parser.error`` when ``parser`` is given)."""
    try:
        w, h = (int(s) for s in text.lower().split("x"))
        assert w > 0 and h > 0
    except (ValueError, AssertionError):
        if parser is not None:
            parser.error(f"--size {text!r}: expected WIDTHxHEIGHT")
        raise SystemExit(f"size {text!r}: expected WIDTHxHEIGHT") from None
    return w, h


def make_split(root: str, frames: int, size: Tuple[int, int], distinct: int, photos: bool = True) -> float:
    """Write ``frames`` synthetic train frames under ``root`` unless a matching tree is there
    already (marker ``root + '.params.json'``); returns the seconds spent (0 when reused)."""
    from cityscapes_io.testing import generate

    params = {"frames": frames, "size": list(size), "distinct": distinct, "seed": 0, "photos": photos}
    marker = root.rstrip("/") + ".params.json"
    if os.path.exists(marker) and os.path.isdir(root):
        with open(marker) as fh:
            if json.load(fh) == params:
                return 0.0
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    generate(root, splits={"train": frames}, size=size, seed=0, photos=photos, distinct=distinct)
    with open(marker, "w") as fh:
        json.dump(params, fh)
    return time.perf_counter() - start


def tree_size(root: str) -> Tuple[int, int]:
    files = total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            files += 1
            total += os.path.getsize(os.path.join(dirpath, name))
    return files, total


# ------------------------------------------------------------------------------------------------
# Local S3 server
# ------------------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto's S3 server in its own process on 127.0.0.1 (its CPU does not share our GIL).

    Use as a context manager; ``endpoint`` is its URL, ``pid`` its process id. Stopped by its
    PID (terminate, then kill after 10 s)."""

    def __init__(self, port: Optional[int] = None, python: Optional[str] = None, log: Optional[str] = None):
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.python = python or sys.executable
        self.log = log
        self.proc: Optional[subprocess.Popen] = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> "MotoServer":
        import urllib.error
        import urllib.request

        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen([self.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            if self.log:
                out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with status {self.proc.returncode} (port {self.port})")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=2) as resp:
                    resp.read()
                return self
            except urllib.error.HTTPError:  # it answers (an error status is an answer)
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not answer on {self.endpoint} within {timeout:.0f} s")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def cpu_seconds(self) -> Optional[float]:
        return process_cpu_seconds(self.pid)

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def s3_options(endpoint: str) -> Dict:
    return {"key": "testing", "secret": "testing",
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "eu-west-1"}}


def process_cpu_seconds(pid) -> Optional[float]:
    """utime + stime of a process from /proc (Linux), None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def machine() -> Dict[str, str]:
    import numpy as np
    import PIL
    import fsspec

    import cityscapes_io

    info = {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu count": f"{os.cpu_count()} (usable: {usable_cpus()})",
        "memory": _mem_total(),
        "cityscapes_io": getattr(cityscapes_io, "__version__", "?"),
        "numpy": np.__version__,
        "Pillow": PIL.__version__,
        "fsspec": fsspec.__version__,
    }
    for mod in ("s3fs", "moto", "imageio"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            pass
    info["load average (1/5/15 min)"] = load_average()
    return info


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where there is one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 0


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_total() -> str:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "?"


def print_machine(info: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    info = info or machine()
    print("## Machine")
    for k, v in info.items():
        print(f"- {k}: {v}")
    print()
    return info


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], align: Optional[str] = None) -> str:
    """``align``: one letter per column, ``l`` or ``r`` (default all ``l``)."""
    align = (align or "").ljust(len(header), "l")
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in align[:len(header)]) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(x) if x not in (None, "") else "—" for x in r) + " |")
    return "\n".join(out)


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def write_json(path: Optional[str], obj) -> None:
    """Machine-readable results for ``run_all.py`` (rows: metric, value, target, result)."""
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)
    os.replace(tmp, path)


@contextlib.contextmanager
def workdir(path: Optional[str], prefix: str) -> Iterator[str]:
    """``path`` (created, kept) or a temporary folder removed at the end."""
    import tempfile

    if path:
        os.makedirs(path, exist_ok=True)
        yield path
        return
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def against_official(runs: Sequence[Tuple[str, Callable[[], Dict]]], repeat: int, frames: int,
                     size: Tuple[int, int], target: float, info: Dict[str, str],
                     json_path: Optional[str] = None) -> None:
    """Warm up, run ``runs`` alternated ``repeat`` times, and print their table (best time per
    frame, median peak RSS, speed against the run named ``official`` when there is one) and the
    verdict of ``ours w1`` against ``target``."""
    for _, run in runs:  # warm-up
        run()
    got = alternate(runs, repeat)
    best = {name: min(r["seconds"] for r in results) for name, results in got.items()}
    if json_path:
        write_json(json_path, {"frames": frames, "best_s": best})
    rss = {name: sorted(r["peak_kib"] for r in results)[len(results) // 2] for name, results in got.items()}
    rows = [[f"{name}, {frames} frames {size[0]}x{size[1]}", f"{best[name] / frames * 1000:.0f} ms/frame",
             f"{rss[name] / 1024:.0f} MiB", f"{best['official'] / best[name]:.1f}x" if "official" in best else "-"]
            for name in best]
    print(markdown_table(["run", "time", "peak RSS", "speed vs official"], rows))
    if "official" in best:
        ratio = best["official"] / best["ours w1"]
        print(f"\none process: {ratio:.1f}x the official script (target >= {target:.0f}x): {verdict(ratio >= target)}")
    print(f"load average at end: {load_average()}; cpus {info.get('cpu count', '')}")
