"""The cost of the machinery: cold-start import time, deployment package size, synth time.

Every measurement runs in a fresh subprocess of the same interpreter, the machinery and its baseline in
the same run, one after the other.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BARE_HANDLER = "def handler(event, context):\n    return {'statusCode': 200}\n"


@dataclass(frozen=True)
class ImportCost:
    module: str
    import_ms: float  # median cumulative -X importtime of the handler module
    bare_ms: float  # median for a bare handler in the same run


@dataclass(frozen=True)
class PackageSize:
    name: str
    files: int
    bytes: int
    zipped_bytes: int


@dataclass(frozen=True)
class SynthCost:
    app_s: float
    empty_s: float


def _cumulative_us(stderr: str, module: str) -> float:
    """The cumulative microseconds `-X importtime` reports for ``module``'s own line."""
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = [p.strip() for p in line[len("import time:") :].split("|")]
        if len(parts) == 3 and parts[2].strip() == module:
            return float(parts[1])
    raise RuntimeError(f"no importtime line for {module}:\n{stderr[-2000:]}")


def _import_us(module: str, env: Mapping[str, str], path: list[str]) -> float:
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(path), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=str(PROJECT_ROOT),
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{done.stderr[-2000:]}")
    return _cumulative_us(done.stderr, module)


def import_costs(handlers: Mapping[str, Mapping[str, str]], repeat: int = 3) -> list[ImportCost]:
    """``handlers``: module -> the environment its function runs with (imports read it at init)."""
    out: list[ImportCost] = []
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as bare_dir:
        Path(bare_dir, "bench_bare_handler.py").write_text(BARE_HANDLER)
        path = [str(PROJECT_ROOT), bare_dir]
        for module, env in sorted(handlers.items()):
            measured, bare = [], []
            for _ in range(repeat):  # interleaved, so both see the same machine state
                measured.append(_import_us(module, env, path))
                bare.append(_import_us("bench_bare_handler", env, path))
            out.append(ImportCost(module, statistics.median(measured) / 1000, statistics.median(bare) / 1000))
    return out


def _size(name: str, root: Path) -> PackageSize:
    files = [p for p in root.rglob("*") if p.is_file()]
    with tempfile.TemporaryDirectory(prefix="bench-zip-") as tmp:
        archive = Path(tmp, "asset.zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for file in files:
                zipped.write(file, file.relative_to(root))
        zipped_bytes = archive.stat().st_size
    return PackageSize(name, len(files), sum(p.stat().st_size for p in files), zipped_bytes)


def package_sizes() -> list[PackageSize]:
    from stacks.lambda_packaging import code_directory, dependencies_directory

    return [
        _size("code asset (lambdas/)", code_directory()),
        _size("dependencies layer", dependencies_directory()),
    ]


_SYNTH_APP = textwrap.dedent(
    """
    import json, sys
    from stacks.application import build_app
    # What the CDK CLI hands the app: cdk.json's context (make synth: stage dev).
    with open("cdk.json") as f:
        context = json.load(f)["context"]
    app, _ = build_app(context, outdir=sys.argv[1])
    app.synth()
    """
)
_SYNTH_EMPTY = textwrap.dedent(
    """
    import sys
    import aws_cdk as cdk
    app = cdk.App(outdir=sys.argv[1])
    cdk.Stack(app, "Empty")
    app.synth()
    """
)


def _timed_subprocess(code: str) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as outdir:
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", code, outdir],
            capture_output=True,
            text=True,
            env=env,
            cwd=str(PROJECT_ROOT),
            timeout=600,
            check=False,
        )
        elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"synth failed:\n{done.stderr[-2000:]}")
    return elapsed


def synth_cost() -> SynthCost:
    """Wall time of build_app() + synth vs an App with one empty Stack, each in a fresh interpreter."""
    return SynthCost(app_s=_timed_subprocess(_SYNTH_APP), empty_s=_timed_subprocess(_SYNTH_EMPTY))
