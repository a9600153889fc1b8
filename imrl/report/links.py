"""Links on the leaderboard: each method's section of METHODS.md and its paper, and the
repository's web pages for the commits that runs record.

The registry names each method's paper in words (``MethodSpec.paper``) and holds no
links, so they are kept here as data. Sections are the ids GitHub gives METHODS.md's
headings. Papers are arXiv abstracts (the ids METHODS.md cites for the RL baselines, the
preprints of the others) or the publisher's DOI where there is no preprint. The sanity
methods (random, popularity, markov) have neither.

The repository's web address comes from its git remote ("origin", else the first one),
with any credentials in it dropped; without a remote, METHODS.md is linked relative to
reports/ and commits are shown unlinked.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

from imrl import registry

METHODS_FILE = "METHODS.md"
#: method -> id of its heading in METHODS.md (the IMRL variants and SAC are described under IMRL).
SECTIONS = {
    "imrl": "imrl", "imrl-e": "imrl", "imrl-a": "imrl", "imrl-kl": "imrl", "sac": "imrl",
    "sasrec": "sasrec-baselinessasrecpy", "stamp": "stamp-baselinesstamppy", "casr": "casr-baselinescasrpy",
    "causerec": "causerec-baselinescauserecpy", "cocorec": "cocorec-baselinescocorecpy",
    "deers": "deers", "kgrl": "kgrl", "tpgr": "tpgr", "pgpr": "pgpr",
}
IMRL_PAPER = "https://arxiv.org/abs/2209.08228"
PAPERS = {
    "imrl": IMRL_PAPER, "imrl-e": IMRL_PAPER, "imrl-a": IMRL_PAPER, "imrl-kl": IMRL_PAPER,
    "sac": "https://arxiv.org/abs/1801.01290",
    "sasrec": "https://arxiv.org/abs/1808.09781",
    "stamp": "https://doi.org/10.1145/3219819.3219950",
    "casr": "https://doi.org/10.1145/3404835.3462855",
    "causerec": "https://arxiv.org/abs/2109.05261",
    "cocorec": "https://doi.org/10.1145/3404835.3462832",
    "deers": "https://arxiv.org/abs/1802.06501",
    "kgrl": "https://arxiv.org/abs/2004.08068",
    "tpgr": "https://arxiv.org/abs/1811.05869",
    "pgpr": "https://arxiv.org/abs/1906.05237",
}
#: What `git rev-parse HEAD` gives (full or abbreviated); anything else is shown, not linked.
COMMIT = re.compile(r"[0-9a-f]{7,40}")
SCP_REMOTE = re.compile(r"(?:[\w.-]+@)?([\w.-]+):(?!/)([\w./~-]+)")   # git@host:owner/repo.git


def web_url(remote: str) -> str | None:
    """The web address of a git remote (https, ssh, git or scp-like "git@host:owner/repo"),
    without credentials, port of ssh, trailing "/" or ".git"; None for a local path or
    any other scheme."""
    remote = remote.strip()
    scp = SCP_REMOTE.fullmatch(remote)
    if scp:
        host, path = scp.group(1), "/" + scp.group(2)
        scheme = "https"
    else:
        parts = urlsplit(remote)
        if parts.scheme not in ("https", "http", "ssh", "git") or not parts.hostname:
            return None
        web = parts.scheme in ("https", "http")
        host = parts.hostname + (f":{parts.port}" if web and parts.port else "")
        path, scheme = parts.path, parts.scheme if web else "https"
    path = path.rstrip("/").removesuffix(".git").rstrip("/")
    return f"{scheme}://{host}{path}" if path else None


def repository_url(root: str | Path) -> str | None:
    """The web address of the git repository at `root`, or None (no git, no remote)."""
    def git(*args: str) -> list[str]:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return []
        return out.stdout.split() if out.returncode == 0 else []

    remotes = git("remote")
    if not remotes:
        return None
    url = git("remote", "get-url", "origin" if "origin" in remotes else remotes[0])
    return web_url(url[0]) if url else None


def commit_link(sha: str, repository: str | None) -> dict[str, str | None]:
    """A recorded commit as the page shows it: the full hash, seven characters of it,
    and its page in the repository when there is one and the hash is a hash."""
    is_hash = COMMIT.fullmatch(sha) is not None
    return {"sha": sha, "short": sha[:7] if is_hash else sha,
            "url": f"{repository}/commit/{sha}" if repository and is_hash else None}


def method_links(names: Iterable[str], repository: str | None) -> dict[str, dict[str, str | None]]:
    """For each registered method among `names`: its paper in the registry's words, the
    paper's address and that of its section of METHODS.md (None where there is none)."""
    methods_file = f"{repository}/blob/HEAD/{METHODS_FILE}" if repository else f"../{METHODS_FILE}"
    return {name: {"paper": registry.METHODS[name].paper, "paper_url": PAPERS.get(name),
                   "methods_url": f"{methods_file}#{SECTIONS[name]}" if name in SECTIONS else None}
            for name in sorted(set(names)) if name in registry.METHODS}
