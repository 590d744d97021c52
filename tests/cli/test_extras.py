"""Commands that need torch say so in one line when it is missing."""

from __future__ import annotations

import subprocess
import sys


def test_demo_without_torch_is_a_one_line_error() -> None:
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "import importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'torch' else real(name, *a)\n"
        "from secmark.cli.main import main\n"
        "sys.exit(main(['demo', '--out', 'unused']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "needs PyTorch" in done.stderr and "torch==2.13.0" in done.stderr


def test_the_command_line_loads_no_serving_extra() -> None:
    # SQLAlchemy, Starlette, FastAPI and uvicorn are the serving extra's: a
    # command that does not serve, log or keep cases in a database must work
    # without them.
    script = (
        "import sys\n"
        "from secmark.cli.main import build_parser\n"
        "build_parser()\n"
        "import secmark.serving, secmark.service.client\n"
        "loaded = [m for m in ('sqlalchemy', 'starlette', 'fastapi', 'uvicorn') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    )
    assert done.stdout.strip() == ""
