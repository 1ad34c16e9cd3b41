"""The cost of the machinery: cold-start import time, deployment package size, synth time.

Every measurement runs in a fresh subprocess of the same interpreter, the machinery and its baseline in
the same run, one after the other.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from localcloud.deploy import PROJECT_ROOT, DeployedStack, Synthesized, deploy
from localcloud.emulator import Emulator
from localcloud.lambda_runtime import Function, FunctionConfig

INIT_RATIO_TARGET = 1.3  # a handler's init against the import of the libraries it uses (issue #17)
PROJECT_PACKAGES = frozenset({"lambdas"})  # the code asset: every function's own code
# Libraries a library imports only when the handler builds the object, not when it imports the name:
# Powertools' Tracer loads the X-Ray SDK in its constructor. They are libraries the handler uses.
LOADED_WHEN_BUILT = {("aws_lambda_powertools", "Tracer"): "aws_xray_sdk.core"}


@dataclass(frozen=True)
class ImportCost:
    """A handler's init (importing its module) beside its library floor, both with its environment."""

    module: str
    init_ms: float  # fastest wall time of ``import <handler module>`` in a fresh interpreter
    floor_ms: float  # fastest wall time of importing exactly the libraries the handler's code imports
    init_cpu_ms: float  # the same two in CPU time: what a loaded machine changes least
    floor_cpu_ms: float
    libraries: tuple[str, ...] = ()  # the floor's import statements

    @property
    def ratio(self) -> float:
        return self.init_ms / self.floor_ms

    @property
    def cpu_ratio(self) -> float:
        return self.init_cpu_ms / self.floor_cpu_ms


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


def _module_path(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _executed_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, deferred ones inside functions included; ``if TYPE_CHECKING:`` never runs."""
    pending: list[ast.AST] = [tree]
    while pending:
        for child in ast.iter_child_nodes(pending.pop()):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            else:
                pending.append(child)


def handler_libraries(module: str, root: Path = PROJECT_ROOT) -> tuple[str, ...]:
    """The import statements of every non-project module the handler's code can import.

    Walks the project's modules from the handler module (packages' ``__init__`` included, deferred imports
    included), so the floor holds every library the handler may use at all, not just what its init loads.
    """
    seen: set[str] = set()
    pending = [module]
    libraries: dict[str, set[str]] = {}
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        pending += [".".join(parts[:i]) for i in range(1, len(parts))]
        path = _module_path(name, root)
        if path is None:
            continue
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in _executed_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in PROJECT_PACKAGES:
                        pending.append(alias.name)
                    else:
                        libraries.setdefault(alias.name, set())
                continue
            if node.module == "__future__":
                continue
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names = {alias.name for alias in node.names}
            if target.split(".")[0] in PROJECT_PACKAGES:
                pending.append(target)
                pending += [f"{target}.{n}" for n in names if _module_path(f"{target}.{n}", root)]
            else:
                libraries.setdefault(target, set()).update(names)
                for built in (LOADED_WHEN_BUILT.get((target, n)) for n in names):
                    if built:
                        libraries.setdefault(built, set())
    return tuple(
        f"from {lib} import {', '.join(sorted(names))}" if names else f"import {lib}"
        for lib, names in sorted(libraries.items())
    )


# Times the statements in a fresh interpreter: wall and CPU, nothing of interpreter start-up.
_TIMED = """import time as _t
_wall, _cpu = _t.perf_counter(), _t.process_time()
{code}
print((_t.perf_counter() - _wall) * 1000, (_t.process_time() - _cpu) * 1000)
"""


def _python(args: list[str], env: Mapping[str, str], *, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """This interpreter with ``args`` in the project root, its output captured (the caller checks it)."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(PROJECT_ROOT),
        timeout=timeout_s,
        check=False,
    )


def timed_import(code: str, env: Mapping[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of running ``code`` (import statements) in a fresh interpreter with ``env``."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    done = _python(["-c", _TIMED.format(code=code)], full_env, timeout_s=120)
    if done.returncode != 0:
        raise RuntimeError(f"{code.splitlines()[0]} ... failed:\n{done.stderr[-2000:]}")
    wall, cpu = done.stdout.split()[-2:]
    return float(wall), float(cpu)


def import_cost(module: str, env: Mapping[str, str], repeat: int = 3) -> ImportCost:
    """The handler's init and its library floor, interleaved so both see the same machine state.

    The fastest of ``repeat`` runs of each: a busy machine only ever adds time, so the minimum is the
    estimate that depends least on what else the machine is doing.
    """
    libraries = handler_libraries(module)
    init, floor = [], []
    for _ in range(repeat):
        init.append(timed_import(f"import {module}", env))
        floor.append(timed_import("\n".join(libraries), env))
    return ImportCost(
        module,
        init_ms=min(w for w, _ in init),
        floor_ms=min(w for w, _ in floor),
        init_cpu_ms=min(c for _, c in init),
        floor_cpu_ms=min(c for _, c in floor),
        libraries=libraries,
    )


def import_costs(handlers: Mapping[str, Mapping[str, str]], repeat: int = 7) -> list[ImportCost]:
    """``handlers``: module -> the environment its function runs with (imports read it at init)."""
    return [import_cost(module, env, repeat) for module, env in sorted(handlers.items())]


def handler_environments(deployed: DeployedStack) -> dict[str, dict[str, str]]:
    """Each handler module's environment, as the local cloud builds it for the deployed function."""
    environments: dict[str, dict[str, str]] = {}
    for resource in deployed.of_type("AWS::Lambda::Function").values():
        config = FunctionConfig.read(deployed.emulator, resource.physical_id)
        function = Function(config, platform_environ=deployed.emulator.lambda_environment())
        function.logs.close()
        environments.setdefault(config.handler.rsplit(".", 1)[0], function.environ)
    return environments


@contextmanager
def quiet_deployment(synthesized: Synthesized) -> Iterator[dict[str, dict[str, str]]]:
    """The handlers' environments on a fresh emulator with nothing else running (no pollers, no load).

    Measured beside a running local cloud, two handlers with the same libraries showed floors 20 % apart.
    The emulator is still there for what belongs to init: the API key's secret read.
    """
    with Emulator() as emulator:
        yield handler_environments(deploy(emulator, synthesized))


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
    from stacks.lambda_packaging import IN_POWERTOOLS_LAYER, code_directory, dependencies_directory

    return [
        _size("code asset (lambdas/)", code_directory()),
        _size('dependencies layer, powertools_layer "bundled"', dependencies_directory()),
        _size(
            'dependencies layer, powertools_layer "aws-published" (beside the AWS layer)',
            dependencies_directory(IN_POWERTOOLS_LAYER),
        ),
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
        started = time.monotonic()
        done = _python(["-c", code, outdir], env, timeout_s=600)
        elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"synth failed:\n{done.stderr[-2000:]}")
    return elapsed


def synth_cost() -> SynthCost:
    """Wall time of build_app() + synth vs an App with one empty Stack, each in a fresh interpreter."""
    return SynthCost(app_s=_timed_subprocess(_SYNTH_APP), empty_s=_timed_subprocess(_SYNTH_EMPTY))
