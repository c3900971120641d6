"""The command line starts without the library's heavy dependencies (issue 20): ``--version`` and
``--help`` import no numpy, imageio, Pillow or fsspec, and no command's module; ``import
cityscapes_io`` alone imports none of them either, while every public name still resolves.
What is imported is checked in a fresh interpreter (this process has imported everything
already); how long it takes is not checked here (machines are noisy)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import cityscapes_io as cio
from cityscapes_io.cli import COMMANDS, build_parser, main
from cityscapes_io.decoder import ENV_PURE_PYTHON, describe

HEAVY = ("numpy", "imageio", "PIL", "fsspec")


def _fresh(code: str, env=None) -> dict:
    """Run ``code`` in a new interpreter; it ends by printing a JSON object, returned."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def _loaded_after(argv) -> dict:
    """The modules loaded by ``main(argv)`` in a fresh interpreter (top-level names, and this
    package's command modules), with its exit status and output."""
    code = f"""
import contextlib, io, json, sys
from cityscapes_io.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        status = main({argv!r})
    except SystemExit as exc:
        status = exc.code
mods = sorted({{m.split(".")[0] for m in sys.modules}} | {{m for m in sys.modules if m.startswith("cityscapes_io.")}})
print(json.dumps({{"status": status, "out": out.getvalue(), "modules": mods}}))
"""
    return _fresh(code)


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_help_import_nothing_heavy_and_no_command(argv):
    got = _loaded_after(argv)
    assert got["status"] == 0
    assert [m for m in HEAVY if m in got["modules"]] == []
    modules = {f"cityscapes_io.cli.{c.module}" for c in COMMANDS}
    assert modules.isdisjoint(got["modules"])


def test_a_command_help_imports_that_command_only():
    got = _loaded_after(["stats", "--help"])
    assert got["status"] == 0 and "--json" in got["out"]
    loaded = {c.module for c in COMMANDS if f"cityscapes_io.cli.{c.module}" in got["modules"]}
    assert loaded == {"stats"}


def test_version_names_the_decoder():
    run = subprocess.run([sys.executable, "-m", "cityscapes_io", "--version"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and run.stderr == ""
    assert run.stdout == f"cityscapes-io {cio.__version__} (PNG decoder: {describe()})\n"


def test_version_names_the_decoder_in_use():
    """The line says the decoder of the process that prints it: forcing the pure-Python path
    shows there."""
    env = {**os.environ, ENV_PURE_PYTHON: "1"}
    run = subprocess.run([sys.executable, "-m", "cityscapes_io", "--version"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 0
    assert run.stdout == (f"cityscapes-io {cio.__version__} (PNG decoder: Pillow (pure-Python path: forced by "
                          f"{ENV_PURE_PYTHON}=1))\n")


def test_import_alone_is_light_and_every_public_name_resolves():
    code = """
import json, sys
import cityscapes_io
heavy = [m for m in ("numpy", "imageio", "PIL", "fsspec") if m in sys.modules]
import cityscapes_io.convert, cityscapes_io.prepare  # the submodules named like functions, imported first
from cityscapes_io import open, convert, prepare, Frame, InvalidFileError
names = {name: getattr(getattr(cityscapes_io, name), "__module__", None) for name in cityscapes_io.__all__}
print(json.dumps({
    "heavy": heavy, "names": names,
    "convert": cityscapes_io.convert is sys.modules["cityscapes_io.convert"].convert is convert,
    "prepare": cityscapes_io.prepare is sys.modules["cityscapes_io.prepare"].prepare is prepare,
    "open": cityscapes_io.open(cityscapes_io.sample_path()).count(),
    "submodules": [cityscapes_io.png.__name__, cityscapes_io.formats.__name__, cityscapes_io.frame.Frame is Frame],
    "error": issubclass(InvalidFileError, cityscapes_io.CityscapesIOError),
    "dir": sorted(set(cityscapes_io.__all__) - set(dir(cityscapes_io))),
}))
"""
    got = _fresh(code)
    assert got["heavy"] == []
    assert got["names"] == {name: getattr(getattr(cio, name), "__module__", None) for name in cio.__all__}
    assert all(module and module.startswith("cityscapes_io") for module in got["names"].values())
    assert got["convert"] and got["prepare"] and got["open"] == 6 and got["error"] and got["dir"] == []
    assert got["submodules"] == ["cityscapes_io.png", "cityscapes_io.formats", True]


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        cio.no_such_name  # noqa: B018
    assert not hasattr(cio, "no_such_name")


def _helps():
    for command in COMMANDS:
        yield [command.name, "--help"]
    for action in ("create", "import", "filter", "transform", "info", "export"):
        yield ["project", action, "--help"]


@pytest.mark.parametrize("argv", list(_helps()), ids=" ".join)
def test_every_command_help_works(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cityscapes-io " + " ".join(argv[:-1])) and "exit status:" in out


def test_help_lists_every_command_with_its_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for command in COMMANDS:
        assert f"{command.name} {command.help}" in out, command.name
    # The full parser lists the same commands, with the same help lines.
    full = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert [(a.dest, a.help) for a in full._choices_actions] == [(c.name, c.help) for c in COMMANDS]


def test_an_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["nope"])
    assert exc.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_info_names_the_decoder(capsys):
    assert main(["info", cio.sample_path()]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("format:") and lines[2] == f"PNG decoder: {describe()}"
    assert main(["info", cio.sample_path(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["png_decoder"] == describe()


def test_the_program_keeps_freed_memory_unless_told_not_to():
    """`cityscapes-io` (not the library) asks glibc's malloc to keep freed blocks for the next
    frame; CITYSCAPES_IO_MALLOC=default or the user's own MALLOC_* variables leave it alone."""
    import os
    import subprocess
    import sys

    code = "from cityscapes_io.cli import keep_freed_memory; print(keep_freed_memory())"
    glibc = sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "CITYSCAPES_IO_MALLOC"}
    for extra, expected in (({}, glibc), ({"CITYSCAPES_IO_MALLOC": "default"}, False),
                            ({"MALLOC_TRIM_THRESHOLD_": "131072"}, False)):
        out = subprocess.run([sys.executable, "-c", code], env={**base, **extra}, capture_output=True, text=True,
                             check=True).stdout.strip()
        assert out == str(expected), (extra, out)
    version = subprocess.run([sys.executable, "-m", "cityscapes_io", "--version"], env=base, capture_output=True,
                             text=True, check=True).stdout
    assert version.startswith("cityscapes-io ") and "PNG decoder" in version
