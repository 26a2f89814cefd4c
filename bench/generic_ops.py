"""Python-level operations per request in squall's compiled code, by compiled function.

mypyc compiles an operation on a value whose declared type it knows (a compiled class, ``dict``,
``list``, ``str``, ``int``) to native code; the same operation on a ``Protocol``, ``Any`` or
``Mapping`` value is a call into CPython's generic API (``PyObject_GetItem``,
``PyObject_RichCompare``, ``PyObject_VectorcallMethod``, ...), about 100-250 instructions each.
This runs an in-process harness (``bench/h1_profile.py`` or ``bench/h2_profile.py``) under
callgrind twice, with N requests and with none, and lists the generic calls made per request by
each compiled function (``CPyDef_...``): where a narrowing (``type(x) is dict``) or a compiled
base class would make them native::

    python bench/generic_ops.py                     # HTTP/1.1 hello
    python bench/generic_ops.py --harness h2 --app stream
    python bench/generic_ops.py -- --app bench.framework_apps:starlette_app --path /json

Some calls are the point (the app itself, ``transport.write``, llhttp's parser methods); the
list says where to look, not what to change. Needs valgrind.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent

#: CPython's generic object API, as called from compiled code (and boxing a native int).
GENERIC = (
    "PyObject_GetAttr",
    "PyObject_SetAttr",
    "PyObject_GetItem",
    "PyObject_SetItem",
    "PyObject_DelItem",
    "PyObject_RichCompare",
    "PyObject_IsTrue",
    "PyObject_Not",
    "PyObject_GetIter",
    "PyIter_Next",
    "PyObject_Size",
    "PySequence_Contains",
    "PyObject_Vectorcall",
    "PyObject_VectorcallMethod",
    "PyObject_Call",
    "PyNumber_Add",
    "PyNumber_Subtract",
    "PyNumber_And",
    "PyNumber_Or",
    "PyNumber_Lshift",
    "PyNumber_Rshift",
    "PyNumber_InPlaceAdd",
    "PyNumber_InPlaceAnd",
    "CPyTagged_StealAsObject",
)


def callgrind(python: str, harness: Path, args: list[str], requests: int) -> Path:
    """Run ``harness`` with ``requests`` requests under callgrind; the output file."""
    handle, name = tempfile.mkstemp(prefix="generic_ops.", suffix=".out")
    os.close(handle)
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={name}", python, str(harness)]
    subprocess.run([*command, "-n", str(requests), *args], check=True, capture_output=True)
    return Path(name)


def calls_from_compiled(path: Path) -> collections.Counter[tuple[str, str]]:
    """(compiled function, generic API function) -> number of calls, from a callgrind file."""
    names: dict[str, str] = {}
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    caller = callee = None
    wanted = set(GENERIC)
    for line in path.open(errors="replace"):
        if line.startswith(("fn=", "cfn=")):
            match = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
            if match is None:
                continue
            if match.group(2):
                names[match.group(1)] = match.group(2).strip()
            name = names.get(match.group(1), "")
            if line.startswith("fn="):
                caller = name
            else:
                callee = name.split("'")[0]  # recursion levels: f'2 is f
        elif line.startswith("calls=") and caller and callee:
            if callee in wanted and "CPyDef_" in caller:
                counts[(caller, callee)] += int(line.split("=")[1].split()[0])
            callee = None
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--harness", choices=["h1", "h2"], default="h1")
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("--min", type=float, default=0.9, help="show calls at least this often per request")
    parser.add_argument(
        "harness_args", nargs="*", help="after --: arguments for the harness (--app, --path, ...)"
    )
    options = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("generic_ops.py needs valgrind (apt-get install valgrind)")
    harness = BENCH / f"{options.harness}_profile.py"
    runs = [callgrind(sys.executable, harness, options.harness_args, n) for n in (options.requests, 0)]
    try:
        full, base = (calls_from_compiled(path) for path in runs)
    finally:
        for path in runs:
            path.unlink()
    rows = []
    for (caller, callee), count in full.items():
        per_request = (count - base.get((caller, callee), 0)) / options.requests
        if per_request >= options.min:
            rows.append((caller.split(":")[-1].removeprefix("CPyDef_"), callee, per_request))
    print("| compiled function | generic call | per request |\n|---|---|---:|")
    for caller, callee, per_request in sorted(rows):
        print(f"| {caller} | {callee} | {per_request:.1f} |")


if __name__ == "__main__":
    main()
