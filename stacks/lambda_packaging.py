"""Docker-free packaging for every Python function of the service.

Two assets, built locally at synth time:
- a dependencies layer: ``lambdas/requirements.txt`` installed with
  ``pip --platform ... --only-binary=:all: --target`` for the Lambda runtime and
  architecture, cached under ``.build/`` by a hash of its inputs, so repeated synths
  (and test sessions) never reinstall;
- the code asset: the ``lambdas`` package alone, so handlers import
  ``lambdas.<function>.handler`` exactly as they do in tests.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_SOURCE = PROJECT_ROOT / "lambdas"
REQUIREMENTS = LAMBDA_SOURCE / "requirements.txt"
CONSTRAINTS = PROJECT_ROOT / "constraints.txt"
BUILD_ROOT = PROJECT_ROOT / ".build"

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
_PIP_PLATFORM = "manylinux2014_aarch64"
_PIP_PYTHON_VERSION = "3.14"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt", ".mypy_cache")


def _digest(*paths: Path, extra: str = "") -> str:
    sha = hashlib.sha256(extra.encode())
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            sha.update(str(file.relative_to(PROJECT_ROOT)).encode())
            sha.update(file.read_bytes())
    return sha.hexdigest()[:16]


def _build_once(target: Path, build: Callable[[Path], object]) -> Path:
    """Build ``target`` atomically; concurrent synths (pytest-xdist) wait for the first one."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
            try:
                build(staging)
                os.replace(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target


@cache
def dependencies_directory() -> Path:
    """The layer folder (``python/`` inside), installed for the Lambda platform."""
    key = _digest(REQUIREMENTS, CONSTRAINTS, extra=f"{_PIP_PLATFORM}-{_PIP_PYTHON_VERSION}")

    def install(staging: Path) -> None:
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--platform", _PIP_PLATFORM, "--implementation", "cp",
            "--python-version", _PIP_PYTHON_VERSION, "--only-binary=:all:",
            "--target", str(staging / "python"), "-r", str(REQUIREMENTS), "-c", str(CONSTRAINTS),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"installing Lambda dependencies failed:\n{result.stdout}\n{result.stderr}")
        # The runtime ships boto3 with its matching botocore; a second botocore (pulled in by
        # aws-xray-sdk) on /opt/python would shadow it and could mismatch the runtime's boto3.
        for shadowing in (staging / "python").glob("botocore*"):
            shutil.rmtree(shadowing)

    return _build_once(BUILD_ROOT / "lambda-deps" / key, install)


@cache
def code_directory() -> Path:
    """A folder holding only the ``lambdas`` package (no tests, no infrastructure)."""
    key = _digest(LAMBDA_SOURCE)
    return _build_once(
        BUILD_ROOT / "lambda-code" / key,
        lambda staging: shutil.copytree(LAMBDA_SOURCE, staging / "lambdas", ignore=_IGNORED),
    )


def code_asset() -> lambda_.Code:
    return lambda_.Code.from_asset(str(code_directory()))


def dependencies_layer(scope: Construct, construct_id: str) -> lambda_.LayerVersion:
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=lambda_.Code.from_asset(str(dependencies_directory())),
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        description="Pinned third-party packages of every function (lambdas/requirements.txt)",
    )
