"""MkDocs hook: the site serves Mermaid itself, so its diagrams render offline.

Material for MkDocs draws ```` ```mermaid ```` blocks with the page's global ``mermaid`` when
there is one, and otherwise loads ``mermaid@11`` from a CDN at view time. This hook takes
``dist/mermaid.min.js`` from the npm package ``mermaid`` (the version and the tarball's
integrity are pinned below) and adds it to the site as ``assets/javascripts/mermaid.min.js``,
with its licence beside it; ``_ext/overrides/main.html`` loads it on the pages that have a
diagram, and only there (it is 3.5 MB).

Why npm at build time rather than a copy in git: the file is 3.5 MB of minified code (1 MB
packed), and every upgrade would add another; the project already needs Node and npm for its
tests (the SSE client matrix). The first build runs ``npm pack`` (about 18 MB, once); the file
is kept in ``.npm-docs/`` (git-ignored), so later builds need no network.
To upgrade: set ``VERSION`` and ``INTEGRITY`` (``npm view mermaid@X dist.integrity``), keeping
to the major version that Material's bundle expects (``mermaid@11``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

VERSION = "11.17.2"
INTEGRITY = ("sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9qf4oEK7LoaRQxULMa80/"
             "qt5gHO73aCleBBg==")
CACHE = Path(__file__).resolve().parents[2] / ".npm-docs" / f"mermaid-{VERSION}"
#: Where the files go in the site, and what they are in the npm tarball.
FILES = {"assets/javascripts/mermaid.min.js": "package/dist/mermaid.min.js",
         "assets/javascripts/mermaid.LICENSE.txt": "package/LICENSE"}


def _fetch() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise PluginError("the docs serve Mermaid from the site and take it from the npm "
                          f"package mermaid@{VERSION}: install Node.js and npm (apt-get "
                          "install nodejs npm), or put its dist/mermaid.min.js and LICENSE in "
                          f"{CACHE}")
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [npm, "pack", f"mermaid@{VERSION}", "--json", "--pack-destination", tmp],
            capture_output=True, text=True, timeout=300, cwd=tmp)
        if result.returncode != 0:
            raise PluginError(f"npm pack mermaid@{VERSION} failed: {result.stderr.strip()}")
        info = json.loads(result.stdout)[0]
        if info["integrity"] != INTEGRITY:
            raise PluginError(f"mermaid@{VERSION} from npm has integrity {info['integrity']}, "
                              f"not the pinned {INTEGRITY}")
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        # Filled beside the cache, then renamed: a build stopped half-way leaves no half copy.
        partial = Path(tempfile.mkdtemp(dir=CACHE.parent))
        partial.chmod(0o755)
        with tarfile.open(Path(tmp) / info["filename"]) as tar:
            for member in FILES.values():
                source = tar.extractfile(member)
                if source is None:
                    raise PluginError(f"mermaid@{VERSION} has no {member}")
                (partial / Path(member).name).write_bytes(source.read())
        shutil.rmtree(CACHE, ignore_errors=True)
        partial.rename(CACHE)


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    if not all((CACHE / Path(member).name).is_file() for member in FILES.values()):
        _fetch()
    for uri, member in FILES.items():
        files.append(File.generated(config, uri, abs_src_path=str(CACHE / Path(member).name)))
    return files
