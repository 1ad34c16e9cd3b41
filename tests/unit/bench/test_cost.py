"""The library floor a handler's init is judged against: exactly the libraries its code imports."""

from __future__ import annotations

from pathlib import Path

from bench.cost import handler_libraries


def write(root: Path, module: str, text: str) -> None:
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for package in path.relative_to(root).parents:
        init = root / package / "__init__.py"
        if package != Path(".") and not init.exists():
            init.write_text("")
    path.write_text(text)


def test_the_floor_follows_the_projects_modules_and_keeps_only_libraries(tmp_path: Path) -> None:
    write(
        tmp_path,
        "lambdas.orders.handler",
        "from __future__ import annotations\n"
        "import json\n"
        "from typing import TYPE_CHECKING\n"
        "from lambdas.shared import clients\n"
        "from . import parsing\n"
        "if TYPE_CHECKING:\n"
        "    import mypy_boto3_sqs\n"
        "def handler(event, context):\n"
        "    import requests  # deferred: still a library the handler uses\n",
    )
    write(tmp_path, "lambdas.orders.parsing", "from pydantic import BaseModel\n")
    write(
        tmp_path, "lambdas.shared.clients", "import boto3\nfrom aws_lambda_powertools import Logger, Tracer\n"
    )
    write(tmp_path, "lambdas.unused", "import numpy\n")

    assert handler_libraries("lambdas.orders.handler", root=tmp_path) == (
        "from aws_lambda_powertools import Logger, Tracer",
        "import aws_xray_sdk.core",  # Tracer loads the X-Ray SDK when the handler builds one
        "import boto3",
        "import json",
        "from pydantic import BaseModel",
        "import requests",
        "from typing import TYPE_CHECKING",
    )


def test_the_real_status_reader_floor_holds_no_project_module() -> None:
    floor = handler_libraries("lambdas.order_status.handler")
    assert "import boto3" in floor
    assert any(line.startswith("from aws_lambda_powertools") for line in floor)
    assert not any("lambdas" in line for line in floor)
