"""The Node peer's installation: `npm ci` of `bench/peers/node` (pinned package.json and package-lock.json, Node
22 itself from the npm package `node`) into a scratch folder, `.scratch/node-peer/`, never committed.

The install is redone only when package.json or package-lock.json change (a stamp of their hash). The peer's
script is copied next to its node_modules, because Node resolves an ES module's imports from the module's own
folder. Without npm the peer is skipped, with one line saying why.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEER_DIR = REPO / "bench" / "peers" / "node"
SCRATCH = REPO / ".scratch" / "node-peer"
MANIFESTS = ("package.json", "package-lock.json")
SCRIPT = "peer.mjs"
NODE_MAJOR = 22
CONSUMERS = 16  # peer.mjs's Consumer instances: one long poll each, what the runner waits for before `arm`
INSTALL_TIMEOUT_S = 600


class NodePeerUnavailable(RuntimeError):
    """Why the Node peer cannot run here (no npm, a failed install, the wrong Node)."""


def _stamp() -> str:
    digest = hashlib.sha256()
    for name in MANIFESTS:
        digest.update((PEER_DIR / name).read_bytes())
    return digest.hexdigest()


def node_binary() -> Path:
    return SCRATCH / "node_modules" / ".bin" / "node"


def install() -> list[str]:
    """Install the peer if needed; the argv that runs it. Raises NodePeerUnavailable."""
    npm = shutil.which("npm")
    if npm is None:
        raise NodePeerUnavailable("npm is not installed")
    stamp_file = SCRATCH / ".installed"
    if not (node_binary().exists() and stamp_file.exists() and stamp_file.read_text() == _stamp()):
        SCRATCH.mkdir(parents=True, exist_ok=True)
        for name in MANIFESTS:
            shutil.copyfile(PEER_DIR / name, SCRATCH / name)
        argv = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        done = subprocess.run(argv, cwd=SCRATCH, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
        if done.returncode != 0 or not node_binary().exists():
            raise NodePeerUnavailable(f"npm ci failed in {SCRATCH}: {done.stderr.strip()[-500:]}")
        stamp_file.write_text(_stamp())
    shutil.copyfile(PEER_DIR / SCRIPT, SCRATCH / SCRIPT)
    version = subprocess.run([str(node_binary()), "--version"], capture_output=True, text=True, check=False)
    if not version.stdout.startswith(f"v{NODE_MAJOR}."):
        raise NodePeerUnavailable(f"{node_binary()} is {version.stdout.strip()!r}, not Node {NODE_MAJOR}")
    return [str(node_binary()), str(SCRATCH / SCRIPT)]
