"""Production's static files (DEBUG=false): collectstatic must not fail on a vendored bundle's missing source map."""

from __future__ import annotations

from pathlib import Path

from django.core.management import call_command
from django.test import override_settings


def test_collectstatic_hashes_references_and_leaves_a_missing_source_map_alone(tmp_path: Path):
    source, root = tmp_path / "static", tmp_path / "root"
    (source / "vendor").mkdir(parents=True)
    (source / "logo.png").write_bytes(b"\x89PNG")
    (source / "site.css").write_text("body { background: url('logo.png'); }\n")
    # As monaco-editor's bundles end: a map the npm package does not ship.
    (source / "vendor" / "loader.js").write_text("var x = 1;\n//# sourceMappingURL=../min-maps/loader.js.map\n")

    with override_settings(
        STATIC_ROOT=root, STATICFILES_DIRS=[source],
        STATICFILES_FINDERS=["django.contrib.staticfiles.finders.FileSystemFinder"],
        STORAGES={"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                  "staticfiles": {"BACKEND": "paas.staticfiles.StaticFilesStorage"}},
    ):
        call_command("collectstatic", interactive=False, verbosity=0)

    css = next(root.glob("site.*.css")).read_text()
    assert 'url("logo.' in css and "logo.png" not in css, "references still get hashed names"
    js = next(root.glob("vendor/loader.*.js")).read_text()
    assert "sourceMappingURL=../min-maps/loader.js.map" in js
