"""The deployment package as Lambda runs it: `make lambda-zip` (once per session; it needs PyPI), unpacked into an
empty folder, imported by a fresh interpreter that sees nothing but that folder and the standard library
(`python -S`, the folder on PYTHONPATH, as /var/task is), and invoked with events read from stdin, against moto."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.bodies import direct, photos
from tests.conftest import BUCKET, Stack
from tests.lambda_mapping import receive_event

ROOT = Path(__file__).parent.parent
LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024  # unzipped, the function and its layers together
# What Lambda's Python runtime does: import the handler's module from /var/task, call it once per event with a
# context object. Here the responses go to the file named by argv[1]; stdout holds the function's own output.
RUNTIME = """
import json, sys, time
import service.aws_lambda as function

class Context:
    def __init__(self, request_id):
        self.aws_request_id, self.deadline = request_id, time.monotonic() + 60
    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)

modules = [sys.modules[name].__file__ for name in ("service", "aioboto3", "botocore", "pydantic_core", "aiohttp")]
responses = [function.handler(event, Context(f"request-{n}")) for n, event in enumerate(json.load(sys.stdin))]
function.close()
with open(sys.argv[1], "w") as out:
    json.dump({"responses": responses, "modules": modules, "path": sys.path}, out)
"""


@pytest.fixture(scope="session")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("lambda-zip")
    archive = build / "photo-ingest-lambda.zip"
    command = ["make", "--no-print-directory", "lambda-zip", f"LAMBDA_ZIP={archive}", f"LAMBDA_BUILD={build / 'b'}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=100)
    assert result.returncode == 0, result.stdout + result.stderr
    return archive


def invoke_unpacked(task: Path, events: list[dict[str, Any]], env: dict[str, str]) -> tuple[dict[str, Any], str]:
    out = task.parent / "responses.json"
    process = subprocess.run(
        [sys.executable, "-S", "-c", RUNTIME, str(out)],
        input=json.dumps(events),
        env=env | {"PYTHONPATH": str(task)},
        cwd=task.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert process.returncode == 0, process.stderr
    return json.loads(out.read_text()), process.stdout


def test_the_zip_fits_lambda_and_holds_the_handler(lambda_zip: Path) -> None:
    """Well under Lambda's 250 MB unzipped; the handler's package, its dependencies' compiled extensions for
    manylinux2014 x86_64 CPython 3.11, and compiled bytecode (/var/task is read-only); no console scripts."""
    names = zipfile.ZipFile(lambda_zip).namelist()
    assert sum(info.file_size for info in zipfile.ZipFile(lambda_zip).infolist()) < LAMBDA_LIMIT_BYTES
    assert {"service/aws_lambda/__init__.py", "service/aws_lambda/__pycache__/__init__.cpython-311.pyc"} <= set(names)
    extensions = [name for name in names if name.startswith("pydantic_core/") and name.endswith(".so")]
    assert extensions
    assert all("cpython-311-x86_64-linux-gnu" in name for name in extensions)
    assert not [name for name in names if name.startswith(("bin/", "moto/", "pytest", "uvloop"))]  # no uvloop: unused


def test_the_unpacked_zip_runs_as_lambda_runs_it(lambda_zip: Path, stack: Stack, tmp_path: Path) -> None:
    """A fresh interpreter with only the unpacked zip imports `service.aws_lambda` from it and settles two events
    (the second warm): the photos are written, the poison goes to the dead-letter queue, every log line is JSON
    with its request id, and there is one EMF line per invocation."""
    task = tmp_path / "task"
    zipfile.ZipFile(lambda_zip).extractall(task)
    first, second = photos(2, BUCKET, label="zip")
    stack.send(direct(first), "not json")
    events = [receive_event(stack, 2)]
    stack.send(direct(second))
    events.append(receive_event(stack, 1))
    env = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    env |= {"PHOTOS_TABLE": stack.table, "DEAD_LETTER_QUEUE_URL": stack.dlq_url, "PATH": os.environ["PATH"]}

    result, stdout = invoke_unpacked(task, events, env)

    assert result["responses"] == [{"batchItemFailures": []}] * 2
    assert all(module.startswith(str(task)) for module in result["modules"])
    assert not [entry for entry in result["path"] if "site-packages" in entry]
    assert sorted(stack.items()) == sorted([first.photo_id, second.photo_id])
    assert stack.depth(stack.dlq_url) == 1
    lines = [json.loads(line) for line in stdout.splitlines()]
    emf = [line for line in lines if "_aws" in line]
    logs = [line for line in lines if "_aws" not in line]
    assert [line["MessagesReceived"] for line in emf] == [2, 1]
    assert {line["awsRequestId"] for line in logs} == {"request-0", "request-1"}
    assert [line["coldStart"] for line in logs if line["event"] == "invocation.finished"] == [True, False]


def test_the_zip_figures_in_lambda_md_are_the_built_zips(lambda_zip: Path) -> None:
    """The zip-size row of docs/lambda.md (MB zipped, MB unzipped, files) is what `make lambda-zip` builds, within
    3%: the lock pins every wheel, so only a change of dependencies moves it, and the row must move with it."""
    row = next(line for line in (ROOT / "docs" / "lambda.md").read_text().splitlines() if line.startswith("| zip size"))
    figures = re.search(r"([\d.]+) MB zipped, ([\d.]+) MB unzipped.*?([\d,]+) files", row)
    assert figures, row
    zipped, unzipped, files = (float(n.replace(",", "")) for n in figures.groups())
    infos = zipfile.ZipFile(lambda_zip).infolist()
    built = (sum(f.compress_size for f in infos) / 1e6, sum(f.file_size for f in infos) / 1e6, len(infos))
    assert built == pytest.approx((zipped, unzipped, files), rel=0.03), row


# Under `python -S` with the arm64 zip first on the path: each aarch64 extension module is loaded from the same
# package's x86_64 build instead (this machine cannot run aarch64 code), so every pure-Python module the handler
# imports comes from the arm64 zip. argv: the arm64 folder, the x86_64 folder, the report file.
ARM64_IMPORT = """
import importlib.machinery, importlib.util, json, os, sys
arm, x86, out = sys.argv[1:4]
ARM_SUFFIX, X86_SUFFIX = ".cpython-311-aarch64-linux-gnu.so", ".cpython-311-x86_64-linux-gnu.so"
substituted = []

class AArch64Stand_in:
    @staticmethod
    def find_spec(name, path=None, target=None):
        for folder in (path or [arm]):
            candidate = os.path.join(folder, name.rpartition(".")[2] + ARM_SUFFIX)
            if candidate.startswith(arm) and os.path.exists(candidate):
                stand_in = x86 + candidate[len(arm):-len(ARM_SUFFIX)] + X86_SUFFIX
                substituted.append(name)
                loader = importlib.machinery.ExtensionFileLoader(name, stand_in)
                return importlib.util.spec_from_file_location(name, stand_in, loader=loader)
        return None

sys.meta_path.insert(0, AArch64Stand_in)
import service.aws_lambda
files = {name: getattr(module, "__file__", None) for name, module in sys.modules.items()}
with open(out, "w") as report:
    json.dump({"files": files, "substituted": substituted}, report)
"""
ELF_MACHINE = {62: "x86_64", 183: "aarch64"}  # e_machine, bytes 18-19 of an ELF header


@pytest.fixture(scope="session")
def arm64_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("lambda-zip-arm64")
    archive = build / "photo-ingest-lambda-arm64.zip"
    command = [
        *("make", "--no-print-directory", "lambda-zip", "ARCH=arm64"),
        *(f"LAMBDA_ZIP={archive}", f"LAMBDA_BUILD={build / 'b'}"),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=100)
    assert result.returncode == 0, result.stdout + result.stderr
    return archive


def test_the_arm64_zip_holds_aarch64_wheels_and_its_handler_imports(
    arm64_zip: Path, lambda_zip: Path, tmp_path: Path
) -> None:
    """`make lambda-zip ARCH=arm64`: every compiled extension is an aarch64 ELF for CPython 3.11 (inspected, not
    run), none is x86_64, no uvloop; and the handler imports under `python -S` from the unpacked zip, its pure-Python
    modules all from it (the native ones stood in for by the same packages' x86_64 builds)."""
    arm, x86 = tmp_path / "arm64", tmp_path / "x86_64"
    zipfile.ZipFile(arm64_zip).extractall(arm)
    zipfile.ZipFile(lambda_zip).extractall(x86)
    extensions = sorted(arm.rglob("*.so"))
    assert extensions
    for extension in extensions:
        assert "cpython-311-" not in extension.name or "cpython-311-aarch64" in extension.name, extension
        header = extension.read_bytes()[:20]
        assert header[:4] == b"\x7fELF"
        assert ELF_MACHINE.get(int.from_bytes(header[18:20], "little")) == "aarch64", extension
    assert not [p for p in arm.rglob("*") if "x86_64" in p.name or p.name.startswith("uvloop")]

    report = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-S", "-c", ARM64_IMPORT, str(arm), str(x86), str(report)],
        env={"PYTHONPATH": str(arm), "PATH": os.environ["PATH"]},
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )
    imported = json.loads(report.read_text())
    python_files = {n: f for n, f in imported["files"].items() if f and f.endswith(".py") and str(arm) in f}
    assert {"service.aws_lambda", "botocore", "aioboto3", "pydantic"} <= set(python_files)
    outside = [
        f for f in imported["files"].values() if f and str(tmp_path) in f and str(arm) not in f and ".so" not in f
    ]
    assert outside == []  # nothing pure-Python from the x86_64 zip
    assert "pydantic_core._pydantic_core" in imported["substituted"]
