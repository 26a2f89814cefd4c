"""How squall reports a compiled or pure-Python hot path, and a compiled module older than its source."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import squall


def test_build_info_names_the_kind_of_every_compiled_module() -> None:
    origins = {squall._origin(name).endswith(".py") for name in squall.COMPILED_MODULES}
    assert len(origins) == 1, "the hot path is either all compiled or all pure Python"
    kind = "pure Python" if origins.pop() else "compiled"
    assert squall.build_info().startswith(kind + ", ")


def test_the_compiled_module_list_is_setup_pys() -> None:
    """squall.COMPILED_MODULES (what --version and the stale-build warning look at) names exactly
    the modules setup.py compiles."""
    setup_py = Path(squall.__file__).resolve().parent.parent / "setup.py"
    if not setup_py.exists():
        pytest.skip("squall is installed from a wheel, not run from its checkout")
    setup = setup_py.read_text()
    built = {path[:-3].replace("/", ".") for path in re.findall(r'"(squall/[\w/]+\.py)"', setup)}
    assert built == set(squall.COMPILED_MODULES)


def test_a_compiled_module_older_than_its_source_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    compiled = package / "mod.cpython-311-x86_64-linux-gnu.so"
    source = package / "mod.py"
    compiled.write_bytes(b"")
    source.write_text("")
    os.utime(compiled, (1_000, 1_000))
    os.utime(source, (2_000, 2_000))
    origins = {"squall.fake": str(compiled), "squall__mypyc": ""}
    monkeypatch.setattr(squall, "COMPILED_MODULES", ("squall.fake",))
    monkeypatch.setattr(squall, "_origin", origins.__getitem__)
    assert squall.stale_compiled_modules() == ["squall.fake"]
    os.utime(compiled, (3_000, 3_000))
    assert squall.stale_compiled_modules() == []


def test_an_installed_wheel_is_never_called_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a source checkout (no setup.py beside the package) file times mean nothing."""
    package = tmp_path / "site-packages" / "squall"
    package.mkdir(parents=True)
    compiled = package / "mod.cpython-311-x86_64-linux-gnu.so"
    source = package / "mod.py"
    compiled.write_bytes(b"")
    source.write_text("")
    os.utime(compiled, (1_000, 1_000))
    monkeypatch.setattr(squall, "__file__", str(package / "__init__.py"))
    monkeypatch.setattr(squall, "COMPILED_MODULES", ("squall.fake",))
    monkeypatch.setattr(squall, "_origin", {"squall.fake": str(compiled), "squall__mypyc": ""}.__getitem__)
    assert squall.stale_compiled_modules() == []
    (tmp_path / "site-packages" / "setup.py").write_text("")  # the same files in a checkout: stale
    assert squall.stale_compiled_modules() == ["squall.fake"]


def test_a_compiled_checkout_runs_where_only_the_package_is_found(tmp_path: Path) -> None:
    """A checkout compiled in place (``pip install -e .`` from another venv, or the package
    reached through a link) has mypyc's shared library beside the package, where no finder may
    look: squall loads it from there, else every compiled module fails to import."""
    (tmp_path / "squall").symlink_to(Path(squall.__file__).resolve().parent)
    prelude = "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
    code = prelude + "import squall.server.http1, squall; print(squall.build_info())"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == squall.build_info()


def test_hpack_and_difflib_load_only_when_needed() -> None:
    """A worker imports the whole serving stack at startup; hpack (2.3 MiB of Huffman tables) waits
    for the first HTTP/2 connection and difflib for a mistyped flag."""
    code = (
        "import sys, squall.cli, squall.process.single, squall.server.accept\n"
        "assert 'hpack' not in sys.modules and 'difflib' not in sys.modules, 'loaded at startup'\n"
        "import squall.protocol.http2\n"
        "from squall.protocol.hpackblocks import BlockDecoder\n"
        "BlockDecoder(65536)\n"
        "assert 'hpack' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
