"""The command line answers help and argument errors without importing torch, and nothing imports matplotlib
until a picture is drawn."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PROBE = """
import sys
from resnet_cifar.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
print(sorted(name for name in ("torch", "matplotlib") if name in sys.modules), code)
"""


def imported(*args: str) -> str:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("args", [
    ["--help"], ["train", "--help"], ["evaluate", "--help"], ["predict", "--help"], ["export", "--help"],
    ["models", "--help"], ["compare", "--help"],
    ["train", "--lr", "fast"], ["train", "--epochs", "0"], ["train", "--flip", "sideways"], ["evaluate"],
])
def test_help_and_argument_errors_need_no_torch(args):
    assert imported(*args).startswith("[] ")


def test_importing_the_command_line_imports_no_matplotlib():
    code = "import sys, resnet_cifar.cli, resnet_cifar.train.trainer; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    assert result.stdout.strip() == "False"


def test_the_zoo_table_imports_no_torchvision():
    """torchvision costs a second or more; only a network with --drop-path needs it (its StochasticDepth)."""
    code = ("import sys, contextlib, io; from resnet_cifar.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['models'])\n"
            "print('torchvision' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    assert result.stdout.strip() == "False"
