"""Run our code with only some distributions importable: what an image or `bin/setup` would install.

The links go to this virtualenv's own files, so nothing is downloaded; run Python with -S (no
site-packages) and PYTHONPATH set to the folder `site_with` builds.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def requirements_in(path: Path) -> list[Requirement]:
    """The requirements of a pip requirements file (no includes or options)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def installed_with(requirements: list[Requirement]) -> set[str]:
    """The distributions pip installs for these requirements: them and their dependencies, recursively."""
    seen: set[str] = set()
    todo = [(req.name, set(req.extras)) for req in requirements]
    while todo:
        name, extras = todo.pop()
        seen.add(canonicalize_name(name))
        for spec in importlib.metadata.requires(name) or []:
            dep = Requirement(spec)
            wanted = dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in extras | {""})
            if wanted and canonicalize_name(dep.name) not in seen:
                todo.append((dep.name, set(dep.extras)))
    return seen


def site_with(requirements: list[Requirement], folder: Path) -> Path:
    """A folder of links to every file of the distributions these requirements install."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in installed_with(requirements):
        dist = importlib.metadata.distribution(name)
        for top in {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if not (folder / top).exists():
                (folder / top).symlink_to(Path(dist.locate_file(top)))
    return folder
