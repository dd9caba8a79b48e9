"""`make sbom`: a CycloneDX 1.5 JSON SBOM of photo-ingest's runtime dependencies, read from the hashed lock.

    python tools/sbom.py config/requirements.lock VERSION OUT.json

Written from the lock itself (no SBOM tool: they bring heavy dependencies): one `library` component per pinned
package, with its exact version, its package URL (pkg:pypi/name@version) and the lock's sha256 hashes; the
application photo-ingest as the metadata component, depending on all of them. The lock is the image's install
set (`pip install --require-hashes -r`), so the SBOM lists exactly what the image holds besides Python itself.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

_NAME = re.compile(r"[-_.]+")


def canonical(name: str) -> str:
    return _NAME.sub("-", name).lower()


def pins(lock_text: str) -> dict[str, tuple[str, list[str]]]:
    """canonical name -> (version, sha256 hashes), from a pip-compile --generate-hashes lock."""
    found: dict[str, tuple[str, list[str]]] = {}
    for line in lock_text.replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        if not version:
            raise ValueError(f"not an exact pin: {line.strip()}")
        hashes = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=sha256:")]
        found[canonical(name.split("[")[0])] = (version, hashes)
    return found


def sbom(lock_text: str, version: str) -> dict[str, Any]:
    components = [
        {
            "type": "library",
            "bom-ref": f"pkg:pypi/{name}@{pinned}",
            "name": name,
            "version": pinned,
            "purl": f"pkg:pypi/{name}@{pinned}",
            "hashes": [{"alg": "SHA-256", "content": digest} for digest in hashes],
        }
        for name, (pinned, hashes) in sorted(pins(lock_text).items())
    ]
    application = f"pkg:pypi/photo-ingest@{version}"
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, application + '#' + lock_text)}",
        "version": 1,
        "metadata": {
            "component": {"type": "application", "bom-ref": application, "name": "photo-ingest", "version": version},
        },
        "components": components,
        "dependencies": [{"ref": application, "dependsOn": [c["bom-ref"] for c in components]}],
    }


def main(argv: list[str]) -> int:
    lock, version, out = argv
    document = sbom(Path(lock).read_text(), version)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(document, indent=2) + "\n")
    print(f"{out}: {len(document['components'])} components, CycloneDX {document['specVersion']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
