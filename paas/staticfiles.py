"""The static files storage of production (DEBUG=false): WhiteNoise's compressed, hashed manifest."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


def _pattern_text(pattern: str | tuple[str, str]) -> str:
    return pattern if isinstance(pattern, str) else pattern[0]


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Hashed names for every file and every reference between them, except source-map comments: the npm
    packages we vendor (monaco-editor) end their bundles with `sourceMappingURL=` pointing at maps the package
    does not ship, and following them fails collectstatic (and so `DEBUG=false bin/run`). A browser only asks
    for a map when its developer tools are open; a missing one is a 404 there, nothing more."""

    patterns = tuple(
        (glob, tuple(p for p in pats if "sourceMappingURL" not in _pattern_text(p)))
        for glob, pats in CompressedManifestStaticFilesStorage.patterns
    )
