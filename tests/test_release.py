"""One version, from pyproject.toml: `photo-ingest --version`, `service.__version__`, the image's
org.opencontainers.image.version label (through `make`), the Lambda zip's name; and the SBOM (`make sbom`),
which lists exactly the lock's packages at the lock's versions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import service
from service.cli import main
from tests.test_deploy_config import lock_pins

ROOT = Path(__file__).parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def make(*arguments: str) -> str:
    command = ["make", "--no-print-directory", "-s", *arguments]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_the_version_is_pyprojects_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    """--version, __version__ and `make print-version` (what the image label and the zip's name take) agree."""
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"photo-ingest {VERSION}"
    assert service.__version__ == VERSION
    assert make("print-version").strip() == VERSION
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'LABEL org.opencontainers.image.version="${VERSION}"' in dockerfile
    assert '--build-arg "VERSION=$VERSION"' in (ROOT / ".ci" / "image-check").read_text()
    dry_run = make("-n", "lambda-zip", "ARCH=arm64")
    assert f"dist/photo-ingest-lambda-{VERSION}-arm64.zip" in dry_run
    assert "manylinux2014_aarch64" in dry_run
    assert f"dist/photo-ingest-lambda-{VERSION}-x86_64.zip" in make("-n", "lambda-zip")


def test_the_sbom_lists_exactly_the_locks_packages_and_versions(tmp_path: Path) -> None:
    """`make sbom`'s generator on the lock: CycloneDX 1.5, one library per pin with its version, package URL and
    the lock's hashes, nothing else; photo-ingest at pyproject's version depends on them all."""
    out = tmp_path / "sbom.json"
    command = [
        sys.executable,
        str(ROOT / "tools" / "sbom.py"),
        str(ROOT / "config" / "requirements.lock"),
        VERSION,
        str(out),
    ]
    subprocess.run(command, check=True, capture_output=True)
    sbom = json.loads(out.read_text())

    assert (sbom["bomFormat"], sbom["specVersion"]) == ("CycloneDX", "1.5")
    assert sbom["serialNumber"].startswith("urn:uuid:")
    assert sbom["metadata"]["component"] == {
        "type": "application",
        "bom-ref": f"pkg:pypi/photo-ingest@{VERSION}",
        "name": "photo-ingest",
        "version": VERSION,
    }
    pins = lock_pins()
    listed = {c["name"]: c for c in sbom["components"]}
    assert {name: c["version"] for name, c in listed.items()} == {name: version for name, (version, _) in pins.items()}
    for name, component in listed.items():
        assert component["type"] == "library"
        assert component["purl"] == component["bom-ref"] == f"pkg:pypi/{name}@{component['version']}"
        assert [f"sha256:{h['content']}" for h in component["hashes"]] == pins[name][1]
    [dependencies] = sbom["dependencies"]
    assert sorted(dependencies["dependsOn"]) == sorted(c["bom-ref"] for c in sbom["components"])
    assert f"tools/sbom.py config/requirements.lock {VERSION} dist/photo-ingest-{VERSION}.cdx.json" in make(
        "-n", "sbom"
    )


def test_the_changelog_has_a_dated_section_with_upgrading_notes_for_this_version() -> None:
    """A platform pins a version: CHANGELOG.md has its section, dated, with the outputs it changes under
    "Upgrading", below an empty-or-not "Unreleased" and above every older release, newest first."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, flags=re.MULTILINE)
    assert releases[0] == ("Unreleased", "")
    assert releases[1][0] == version
    assert releases[1][1], "the release is dated"
    numbers = [tuple(int(part) for part in name.split(".")) for name, _ in releases[1:]]
    assert numbers == sorted(numbers, reverse=True)
    this_release = text.split(f"## [{version}]", 1)[1].split("\n## [", 1)[0]
    assert "\n### Upgrading\n" in this_release
