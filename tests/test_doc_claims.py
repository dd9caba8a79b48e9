"""What the docs claim about the code is checked against the code: the settings, the metric and alarm names, the
command lines, and the README sections that other pages cite by name.

Every test reads the files, so a setting, metric, alarm or command that someone adds is checked the day it
lands: documented and emitted, or the build fails.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import io
import json
import re
import shlex
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from service.cli import build_parser
from service.metrics import METRIC_UNITS
from tests.conftest import Stack
from tests.test_backfill import run as run_backfill
from tests.test_backfill import upload
from tests.test_docs import anchors, slug
from tests.test_settings_errors import settings_classes

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted([README, *(ROOT / "docs").glob("*.md")])
CONFIG = sorted(path for path in (ROOT / "config").rglob("*") if path.is_file() and path.suffix != ".lock")
FENCED = re.compile(r"^\s*(```|~~~)[^\n]*\n(.*?)^\s*\1\s*$", re.MULTILINE | re.DOTALL)


def documented_settings() -> dict[str, str]:
    """The README's configuration table: variable -> its default cell, without backticks."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.*?) \|", section, flags=re.MULTILINE)
    return {name: default.strip().strip("`") for name, default in rows}


def declared_settings() -> dict[str, object]:
    """Every field of every settings class: variable -> default (`...` when it is required)."""
    found: dict[str, object] = {}
    for cls in settings_classes():
        for name, field in cls.model_fields.items():
            default = ... if field.is_required() else field.get_default(call_default_factory=True)
            found.setdefault(name.upper(), default)
    return found


def same_default(cell: str, default: object) -> bool:
    if default is ...:
        return cell == "(required)"
    if default is None:
        return cell == "unset"
    if isinstance(default, bool):
        return cell == str(default).lower()
    if isinstance(default, int | float):
        return float(cell.replace(",", "")) == default
    if isinstance(default, dict):
        return bool(json.loads(cell) == default)
    return cell == str(default)


def test_the_readme_table_is_every_setting_with_its_default() -> None:
    """One row per field of every settings class (the Lambda's and backfill's too), with the field's default."""
    documented, declared = documented_settings(), declared_settings()
    assert sorted(declared.keys() - documented.keys()) == [], "settings missing from the README's table"
    assert sorted(documented.keys() - declared.keys()) == [], "rows for settings that do not exist"
    wrong = {name: cell for name, cell in documented.items() if not same_default(cell, declared[name])}
    assert wrong == {}, f"defaults that differ from the code: {wrong}"


def test_example_env_lists_every_setting_with_its_default() -> None:
    """config/example.env names every setting (a commented-out line means unset); an uncommented value of a
    setting that has a default is that default."""
    text = (ROOT / "config" / "example.env").read_text()
    lines = dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE))
    declared = declared_settings()
    assert sorted(declared.keys() - lines.keys()) == [], "settings missing from config/example.env"
    set_here = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE))
    wrong = {
        name: value
        for name, value in set_here.items()
        if name in declared and declared[name] is not ... and not same_default(value, declared[name])
    }
    assert wrong == {}, f"values that are not the default: {wrong}"


# A metric family is an emitted name less its last word (`Records`, `Throttled`, `InFlight`, `PutLatency`):
# a code span that starts with one names a metric of ours, and must be emitted.
# A family that is one of AWS's own nouns (`QueueLag` → `Queue`, beside `QueueArn`) is the metric's whole name.
AWS_NOUNS = {"Queue", "Event"}
FAMILIES = {
    name if family in AWS_NOUNS else family
    for name in METRIC_UNITS
    for family in [re.sub(r"[A-Z][a-z0-9]*$", "", name)]
} - {""}
CODE_SPAN_NAME = re.compile(r"`([A-Z][A-Za-z0-9]+)`")


def metric_references(text: str) -> set[str]:
    names = set(CODE_SPAN_NAME.findall(text)) | set(re.findall(r"\b([A-Z][A-Za-z0-9]+)\b", text))
    return {name for name in names if any(name.startswith(family) and name != family for family in FAMILIES)}


def test_metric_families_are_found() -> None:
    """A guard on the pattern: the operations page names several of the metrics."""
    assert {"Records", "Messages", "Throttled", "InFlight"} <= FAMILIES
    assert len(metric_references((ROOT / "docs" / "operations.md").read_text())) >= 5


@pytest.mark.parametrize("path", DOCS + CONFIG, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_metric_named_is_one_the_code_emits(path: Path) -> None:
    """A metric of ours named in a doc, the dashboard or a template is one `service/metrics.py` emits; an alarm's
    threshold parameter named after its metric (`QueueLagAlarmSeconds`) is a template's parameter instead."""
    text = path.read_text()
    named = {name for name in metric_references(text) if not name.endswith(("Alarm", "Error", "Exception"))}
    thresholds = {name for name in named if name.endswith("AlarmSeconds")}
    assert sorted(thresholds - template_resources()) == []
    assert sorted(named - thresholds - METRIC_UNITS.keys()) == []


def template_resources() -> set[str]:
    """The logical ids of every CloudFormation template under config/."""
    found = set()
    for path in CONFIG:
        if path.suffix in (".yaml", ".yml") and "AWSTemplateFormatVersion" in path.read_text():
            found |= set(re.findall(r"^  ([A-Za-z0-9]+):\s*$", path.read_text(), flags=re.MULTILINE))
    return found


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_alarm_named_is_in_a_template(path: Path) -> None:
    """`SomethingAlarm` in a doc is a resource of a template under config/."""
    named = set(re.findall(r"\b([A-Z][A-Za-z0-9]*Alarm)\b", path.read_text()))
    assert sorted(named - template_resources()) == []


def command_lines(path: Path) -> list[str]:
    """Each `photo-ingest ...` command in the file's code blocks, continuation lines joined. In a block with
    `$ ` prompts only the prompted lines are commands; the others are output."""
    found = []
    for block in FENCED.finditer(path.read_text()):
        text = block.group(2).replace("\\\n", " ")
        lines = text.splitlines()
        if any(line.lstrip().startswith("$ ") for line in lines):
            lines = [line.lstrip()[2:] for line in lines if line.lstrip().startswith("$ ")]
        for line in lines:
            command = re.match(r"^\s*(?:[A-Z_]+=\S*\s+)*photo-ingest(\s.*)?$", line.split(" #", 1)[0])
            if command:
                found.append((command.group(1) or "").strip())
    return found


def parses(command: str) -> str | None:
    """None when the real parser takes `command` (optional `[...]` groups are dropped, and each must name
    options the subcommand has); else argparse's complaint."""
    optional = re.findall(r"\[([^\]]*)\]", command)
    argv = shlex.split(re.sub(r"\[[^\]]*\]", " ", command))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:
            return None if exc.code == 0 else err.getvalue().strip().splitlines()[-1]
    subcommand = build_parser()._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr]
    options = {option for action in subcommand._actions for option in action.option_strings}
    unknown = [word for group in optional for word in group.split() if word.startswith("-") and word not in options]
    return f"unknown options {unknown}" if unknown else None


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_command_line_shown_parses(path: Path) -> None:
    """Every `photo-ingest ...` line in a code block parses with the real argument parser."""
    problems = {command: problem for command in command_lines(path) if (problem := parses(command))}
    assert problems == {}


def test_the_command_lines_are_found() -> None:
    """A guard on the extraction: the backfill page shows several commands, continuation lines included."""
    commands = command_lines(ROOT / "docs" / "backfill.md")
    assert len(commands) >= 5
    assert any("--via-queue" in command and "--max-backlog" in command for command in commands)
    assert parses("backfill --bucket b --max abc") is not None


# `README "Performance"`, `docs/lambda.md, "Settings"`, `README's "IAM"`: a section cited by its name.
SECTION_CITATION = re.compile(r"(README|docs/[\w-]+\.md)(?:'s)?,? \"([^\"]+)\"")
CITING = sorted(
    path
    for pattern in ("README.md", "docs/*.md", "config/**/*", "service/**/*.py", "tests/*.py", "Dockerfile", "Makefile")
    for path in ROOT.glob(pattern)
    if path.is_file() and path.suffix not in (".lock", ".pyc") and path.name != "test_doc_claims.py"
)


@pytest.mark.parametrize("path", CITING, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_section_cited_by_name_exists(path: Path) -> None:
    """A page, template or module that cites `README "Section"` or `docs/page.md "Section"` cites a heading
    that page has (sections move from the README to docs/; their citations must follow)."""
    missing = []
    for page, section in SECTION_CITATION.findall(path.read_text(errors="replace")):
        target = README if page == "README" else ROOT / page
        headings = {re.sub(r"^\d+-", "", anchor) for anchor in anchors(target)} if target.exists() else set()  # "5. X"
        if not any(
            heading.startswith(slug(" ".join(section.split()))) for heading in headings
        ):  # a wrapped citation  # a heading's first words do
            missing.append(f'{page} "{section}"')
    assert missing == []


def test_the_citation_pattern_finds_citations() -> None:
    """A guard on the pattern: it reads the three ways citations are written."""
    text = 'x (README "Configuration"), docs/lambda.md, "Settings" and README\'s "How it works".'
    assert SECTION_CITATION.findall(text) == [
        ("README", "Configuration"),
        ("docs/lambda.md", "Settings"),
        ("README", "How it works"),
    ]


# Paths in the repository that a doc names in a code span: `config/x`, `service/y.py`, `bench/`, ...
REPO_PATH = re.compile(r"`((?:config|service|docs|bench|tests|scripts)/[\w./-]*)`")
OUTPUTS = {"bench/results"}  # where `python -m bench` writes; made by the first run


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_repository_path_named_exists(path: Path) -> None:
    """A file or folder a doc names (`config/requirements.lock`, `service/ingest/pace.py`) is there."""
    named = {name.rstrip("./") for name in REPO_PATH.findall(path.read_text())} - OUTPUTS
    assert sorted(name for name in named if "*" not in name and not (ROOT / name).exists()) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_make_target_named_exists(path: Path) -> None:
    """`make lock`, `make lambda-zip`: each target a doc tells you to run is in the Makefile."""
    targets = set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
    named = set(re.findall(r"(?:`|^\s*)make ([a-z][\w-]*)", path.read_text(), flags=re.MULTILINE))
    assert sorted(named - targets) == []


NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
# A page that walks through a template, and the template.
TEMPLATE_PAGES = {"docs/deploy.md": "config/cloudformation.yaml", "docs/lambda.md": "config/lambda.yaml"}


def alarms_in(template: str) -> set[str]:
    text = (ROOT / template).read_text()
    return set(re.findall(r"^  (\w+):\n    Type: AWS::CloudWatch::Alarm$", text, flags=re.MULTILINE))


@pytest.mark.parametrize(("page", "template"), TEMPLATE_PAGES.items())
def test_a_page_counts_and_names_its_templates_alarms(page: str, template: str) -> None:
    """ "The two alarms" is the template's count, and the page names each of its alarms."""
    text = (ROOT / page).read_text()
    alarms = alarms_in(template)
    assert alarms, f"no alarm found in {template}: the pattern is broken"
    counts = {
        NUMBER_WORDS[word.lower()] for word in re.findall(r"\b(\w+) alarms\b", text) if word.lower() in NUMBER_WORDS
    }
    assert counts <= {len(alarms)}, f"{page} counts {counts} alarms; {template} has {len(alarms)}"
    if any(alarm in text for alarm in alarms):
        assert sorted(alarm for alarm in alarms if alarm not in text) == []


def test_the_stack_environment_listed_in_deploy_md_is_the_templates() -> None:
    """deploy.md's list of the task's environment variables is the task definition's, no more, no fewer."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    listed_at = text.index("the settings as environment variables:")
    listed = set(re.findall(r"`([A-Z_*]+)(?:=[^`]*)?`", text[listed_at : text.index(". The rest", listed_at)]))
    template = (ROOT / "config" / "cloudformation.yaml").read_text()
    container = template.split("Environment:", 1)[1].split("\n\n", 1)[0]
    environment = set(re.findall(r"\{ Name: ([A-Z_]+),", container))
    wildcards = {name[:-1] for name in listed if name.endswith("*")}
    covered = {name for name in environment if any(name.startswith(prefix) for prefix in wildcards)}
    assert sorted(environment - covered - listed) == [], "set by the template, not listed"
    assert sorted(listed - environment - {f"{prefix}*" for prefix in wildcards}) == [], "listed, not set"


async def test_the_backfill_logs_each_put_as_operations_md_says(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """operations.md's sentence on backfill logs: the event names, the level and the fields it gives are the
    ones a real direct backfill logs, and the items carry the eventName it says."""
    claim = next(p for p in (ROOT / "docs" / "operations.md").read_text().split("\n\n") if "written by a backfill" in p)
    upload(stack, 2)
    with capture_logs() as logs:
        code, _ = await run_backfill(stack, capsys)
    assert code == 0
    puts = [event for event in logs if str(event["event"]).startswith("photo.")]
    assert {event["event"] for event in puts} <= set(re.findall(r"`(photo\.\w+)`", claim))
    assert len(puts) == 2
    for level in re.findall(r"at `(?:LOG_LEVEL=)?(DEBUG|INFO|WARNING|ERROR)`", claim):
        assert {event["log_level"] for event in puts} == {level.lower()}
    for field, value in re.findall(r'`(\w+): "([^"]*)"`', claim):
        assert all(event.get(field) == value for event in puts), f'{field}: "{value}"'
    for field in re.findall(r"with its `(\w+)`|, `(\w+)`", claim):
        assert all(name in event for event in puts for name in field if name)
    [event_name] = re.findall(r'`eventName = "(\w+)"`', claim)
    items = stack.dynamodb.scan(TableName=stack.table)["Items"]
    assert {item["eventName"]["S"] for item in items} == {event_name}


@functools.cache
def service_trees() -> tuple[ast.Module, ...]:
    """Every module of service/, parsed once for all the tests that read the code."""
    return tuple(ast.parse(path.read_text()) for path in sorted((ROOT / "service").rglob("*.py")))


def logged_events() -> tuple[set[str], set[str]]:
    """The event names service/ logs: string literals shaped `noun.event`, and the prefixes of f-strings that
    make one (`f"photo.{outcome}"`)."""
    names, prefixes = set(), set()
    for tree in service_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if re.fullmatch(r"[a-z_]+\.[a-z_]+", node.value):
                    names.add(node.value)
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                head = str(node.values[0].value)
                if re.fullmatch(r"[a-z_]+\.", head):
                    prefixes.add(head)
    return names, prefixes


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_log_event_named_is_one_the_code_logs(path: Path) -> None:
    """`photo.inserted`, `backfill.progress`: an event a doc names in a code span is one service/ logs (the
    nouns are those of the code's own events; `config.py` and the like are not events)."""
    names, prefixes = logged_events()
    nouns = {name.split(".")[0] for name in names} | {prefix[:-1] for prefix in prefixes}
    nouns -= {"service", "config", "settings"}  # module paths, not events
    spans = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", path.read_text()))
    named = {span for span in spans if span.split(".")[0] in nouns and span.split(".")[1] not in {"py", "md", "json"}}
    unknown = sorted(
        name
        for name in named
        if name not in names and not any(name.startswith(prefix) for prefix in prefixes) and not _in_code(name)
    )
    assert unknown == []


def _in_code(name: str) -> bool:
    """`process.add_command`: a function of a service module, named as code, not an event."""
    module, attribute = name.split(".")
    try:
        return hasattr(importlib.import_module(f"service.{module}"), attribute)
    except ImportError:
        return False


# "`message.deleted` at `DEBUG`", "`photo.inserted` or `photo.duplicate` at `INFO`": events, and the level a page
# says they are logged at.
LEVEL_CLAIM = re.compile(
    r"((?:`[a-z_]+\.[a-z_]+`\s+(?:or|and)\s+)*`[a-z_]+\.[a-z_]+`)(?:\s+lines?)?\s+at\s+`(DEBUG|INFO|WARNING|ERROR)`"
)
LOG_METHODS = {"debug": "DEBUG", "info": "INFO", "warning": "WARNING", "error": "ERROR", "exception": "ERROR"}


def logged_levels() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The levels service/ logs each event at, from its `log.<level>("noun.event")` calls, and those of the
    f-string prefixes (`log.info(f"photo.{outcome}")`)."""
    names: dict[str, set[str]] = {}
    prefixes: dict[str, set[str]] = {}
    for tree in service_trees():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                continue
            level, first = LOG_METHODS.get(node.func.attr), node.args[0]
            if level is None:
                continue
            if isinstance(first, ast.Constant) and re.fullmatch(r"[a-z_]+\.[a-z_]+", str(first.value)):
                names.setdefault(str(first.value), set()).add(level)
            elif isinstance(first, ast.JoinedStr) and first.values and isinstance(first.values[0], ast.Constant):
                prefixes.setdefault(str(first.values[0].value), set()).add(level)
    return names, prefixes


def level_claims(text: str) -> list[tuple[str, str]]:
    """(event, level) for each event a text says is logged at a level."""
    return [
        (event, level)
        for events, level in LEVEL_CLAIM.findall(text)
        for event in re.findall(r"`([a-z_]+\.[a-z_]+)`", events)
    ]


def test_the_level_claims_are_found() -> None:
    text = "`photo.inserted` or `photo.duplicate` at `INFO`; `message.deleted` lines at `DEBUG`; `a.b`, `c.d` at `INFO`"
    assert level_claims(text) == [
        ("photo.inserted", "INFO"),
        ("photo.duplicate", "INFO"),
        ("message.deleted", "DEBUG"),
        ("c.d", "INFO"),
    ]
    claims = {claim for path in DOCS for claim in level_claims(path.read_text())}
    assert {("message.deleted", "DEBUG"), ("photo.inserted", "INFO"), ("message.quarantined", "ERROR")} <= claims


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_log_level_claimed_is_the_codes(path: Path) -> None:
    """A page's "`message.deleted` at `DEBUG`": the code logs that event at that level, and at no other."""
    names, prefixes = logged_levels()
    wrong: dict[str, str] = {}
    for event, level in level_claims(path.read_text()):
        levels = names.get(event) or next((found for head, found in prefixes.items() if event.startswith(head)), set())
        if levels != {level}:
            wrong[event] = f"claimed at {level}, logged at {sorted(levels) or 'no level found'}"
    assert wrong == {}


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_settings_table_row_gives_the_codes_default(path: Path) -> None:
    """A `| `SETTING` | `default` | ... |` row on any page gives the default the code has."""
    declared = declared_settings()
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| `([^`]*)` \|", path.read_text(), flags=re.MULTILINE)
    wrong = {name: cell for name, cell in rows if name in declared and not same_default(cell, declared[name])}
    assert wrong == {}
