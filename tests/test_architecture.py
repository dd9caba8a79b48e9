"""The package layout is the architecture: these tests keep the rooms apart and the import graph acyclic.

Imports are read from the source with `ast`; those under `if TYPE_CHECKING:` are left out, since they never run
(they name the `types_aiobotocore_*` stubs, which are not botocore).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from service.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "service"
PURE_CORE = (
    "service.ingest.events",
    "service.ingest.fields",
    "service.ingest.trust",
    "service.ingest.ids",
    "service.ingest.items",
    "service.ingest.outcomes",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def runtime_imports(path: Path) -> set[str]:
    """Every module that `path` imports when it runs (a `from package import module` names the module)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.add(child.module)
                found.update(f"{child.module}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in SERVICE.rglob("*.py")}
    return {
        name: {imported for imported in runtime_imports(path) if imported in modules} for name, path in modules.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, set()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1 or node in edges.get(node, set()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def importers_of(prefixes: tuple[str, ...]) -> set[str]:
    """The product modules that import anything under these top-level packages."""
    return {
        module_name(path)
        for path in SERVICE.rglob("*.py")
        if any(imported.split(".")[0] in prefixes for imported in runtime_imports(path))
    }


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check below would catch a cycle: a -> b -> c -> a is one component, d stands alone."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]


def test_no_module_of_the_product_is_part_of_an_import_cycle() -> None:
    assert cycles(graph()) == []


def test_only_the_aws_edge_imports_the_aws_sdk() -> None:
    """botocore, aiobotocore and aioboto3 are imported in `service/aws/` and nowhere else."""
    outside = {
        name for name in importers_of(("botocore", "aiobotocore", "aioboto3")) if not name.startswith("service.aws")
    }
    assert outside == set()


def test_only_the_telemetry_room_imports_opentelemetry_and_the_rest_only_its_facade() -> None:
    """The `otel` extra is optional: OpenTelemetry is imported in `service/telemetry/` alone, and every other
    module calls the facade (`service.telemetry`), which imports the SDK only once an export is configured."""
    assert {name for name in importers_of(("opentelemetry",)) if not name.startswith("service.telemetry.")} == set()
    facade = runtime_imports(SERVICE / "telemetry" / "__init__.py")
    assert not {imported for imported in facade if imported.startswith("opentelemetry")}
    assert {imported for imported in facade if imported.startswith("service.telemetry.")} == {
        "service.telemetry.sdk",  # inside `start`, once OTEL_* asks for an export
        "service.telemetry.sdk.Exporting",
    }
    for name, imported in graph().items():
        if not name.startswith("service.telemetry"):
            assert not {target for target in imported if target.startswith("service.telemetry.")}, name


def test_only_the_local_stack_imports_moto() -> None:
    outside = {name for name in importers_of(("moto",)) if not name.startswith("service.local")}
    assert outside == set()
    assert "service.local.endpoint" in importers_of(("moto",))


def test_nothing_imports_the_command_line() -> None:
    """Subcommands take their plumbing from `service.process`; `service.cli` sits on top of everything."""
    assert {name for name, imported in graph().items() if "service.cli" in imported} == {"service.__main__"}


def test_the_pure_core_imports_nothing_but_itself() -> None:
    """Parsing, ids, items and the decision import no other part of the product, and no I/O library."""
    edges = graph()
    for name in PURE_CORE:
        assert edges[name] <= set(PURE_CORE), name
        path = SERVICE.joinpath(*name.split(".")[1:]).with_suffix(".py")
        assert not {imported.split(".")[0] for imported in runtime_imports(path)} & {"asyncio", "structlog", "socket"}


def test_the_core_reaches_aws_only_through_the_store_and_the_error_classification() -> None:
    """`service.ingest` is handed a store; of the AWS edge it imports the error classification alone; of the rest,
    the metrics registry and the telemetry facade (`from service import telemetry`, hence `service`)."""
    edges = graph()
    for name, imported in edges.items():
        if name.startswith("service.ingest"):
            reached = {target for target in imported if not target.startswith("service.ingest")}
            assert reached <= {"service", "service.aws.errors", "service.metrics", "service.telemetry"}, name


def test_the_runtimes_do_not_reach_into_each_other() -> None:
    """The worker, the operator's commands and the local stack are separate rooms; only the local stack (which
    runs the real worker) and the command line may import the worker."""
    for name, imported in graph().items():
        if name.startswith(("service.ingest", "service.aws", "service.ops")):
            assert not {t for t in imported if t.startswith(("service.worker", "service.local"))}, name


def constructors_called(path: Path) -> set[str]:
    """The names of every class or function that `path` calls by its bare name (`Ingest(...)`)."""
    tree = ast.parse(path.read_text(), str(path))
    return {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


def test_one_module_composes_the_core() -> None:
    """`service.compose` alone turns settings into the store and the `Ingest`: a runtime that built its own could
    ignore a shared setting (the Lambda handler once ignored VERIFY_OBJECTS and WRITE_MODE). `check` may build a
    `PhotoStore` only to describe the table. The core and the AWS edge sit below it and never import it."""
    built: dict[str, set[str]] = {"Ingest": set(), "PhotoStore": set(), "VerifiedStore": set()}
    for path in SERVICE.rglob("*.py"):
        for name in constructors_called(path) & built.keys():
            built[name].add(module_name(path))
    assert built == {
        "Ingest": {"service.compose"},
        "PhotoStore": {"service.compose", "service.ops.check.command"},
        "VerifiedStore": {"service.compose"},
    }
    for name, imported in graph().items():
        if name.startswith(("service.ingest.", "service.aws.")):
            assert "service.compose" not in imported, name


def test_bench_never_imports_the_product() -> None:
    """`bench/` drives photo-ingest through its command line, like a user."""
    for path in (ROOT / "bench").rglob("*.py"):
        assert not {i for i in runtime_imports(path) if i.split(".")[0] == "service"}, path


def subcommands() -> dict[str, str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return {name: sub.format_help() for name, sub in action.choices.items()}  # type: ignore[union-attr]


def test_the_top_level_help_speaks_to_users() -> None:
    text = build_parser().format_help()
    assert text.startswith("usage: photo-ingest")
    assert "one DynamoDB Photos item per photo" in text
    assert "builds settings" not in text  # the module docstring is for the code's readers


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_each_subcommand_says_what_it_is_for_and_what_it_reads(name: str) -> None:
    text = subcommands()[name]
    description = text.split("\n\n")[1]
    assert re.fullmatch(r"[A-Z][^\n]+\.", description.replace("\n", " ").strip()), description
    if name not in {"demo"}:  # the demo provisions its own stack and reads nothing
        assert "environment variables:" in text
    if name in {"run", "check"}:
        assert "QUEUE_URL" in text
        assert "PHOTOS_TABLE" in text
        assert "AWS_REGION" in text


def test_every_folder_of_the_package_is_a_package() -> None:
    """setuptools packs only folders with an `__init__.py`: a folder without one would be missing from the image."""
    folders = {path.parent for path in SERVICE.rglob("*.py") if "__pycache__" not in path.parts}
    assert {folder for folder in folders if not (folder / "__init__.py").exists()} == set()
