"""`manage.py compose_convert FILE --org ORG --project PROJECT [--format yaml|json]`.

Prints the complete manifests of one release (namespace objects first) to stdout and exits 0, or
prints each refusal reason on its own line to stderr and exits 2. Files the compose file refers to
(env_file, secrets, configs, bind-mounted files) and the project `.env` are read from its folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from projects.compose import ComposeRefusal, PlanLimits, RenderContext, render_project
from projects.compose.interpolate import project_variables

MAX_FILES = 500
MAX_FILE_BYTES = 256 * 1024
SKIPPED_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv"}


def default_plan() -> PlanLimits:
    """PlanLimits' defaults overridden by the setting PAAS_PLAN_DEFAULTS (a dict; unknown keys ignored)."""
    known = {f.name for f in fields(PlanLimits)}
    return PlanLimits(**{k: v for k, v in (settings.PAAS_PLAN_DEFAULTS or {}).items() if k in known})


def read_folder(folder: Path) -> dict[str, str]:
    """Text files below the compose file's folder, keyed by relative POSIX path (bounded)."""
    files: dict[str, str] = {}
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(root, name)
            if len(files) >= MAX_FILES:
                return files
            try:
                if path.is_symlink() or path.stat().st_size > MAX_FILE_BYTES:
                    continue
                files[path.relative_to(folder).as_posix()] = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
    return files


class Command(BaseCommand):
    help = "Convert a docker-compose file into the Kubernetes objects of one release."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--org", required=True)
        parser.add_argument("--project", required=True)
        parser.add_argument("--format", choices=["yaml", "json"], default="yaml")
        parser.add_argument("--revision", type=int, default=1)
        parser.add_argument("--base-domain", default="apps.localhost")
        parser.add_argument("--database-secret")
        parser.add_argument("--bucket-secret")
        parser.add_argument("--allow-internet", action="store_true")
        parser.add_argument("--var", action="append", default=[], metavar="KEY=VALUE")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        files = read_folder(path.parent)
        overrides = dict(item.partition("=")[::2] for item in options["var"])
        variables = project_variables(files.get(".env", ""), overrides)
        ctx = RenderContext(
            org_slug=options["org"],
            project_slug=options["project"],
            revision=options["revision"],
            variables=variables,
            plan=default_plan(),
            base_domain=options["base_domain"],
            database_secret=options["database_secret"],
            bucket_secret=options["bucket_secret"],
            allow_internet_egress=options["allow_internet"],
            files=files,
        )
        try:
            result = render_project(text, ctx)
        except ComposeRefusal as refusal:
            for problem in refusal.problems:
                self.stderr.write(f"refused: {problem}")
            raise SystemExit(2) from None
        for problem in result.warnings:
            self.stderr.write(f"warning: {problem}")
        if options["format"] == "json":
            self.stdout.write(json.dumps({"apiVersion": "v1", "kind": "List", "items": result.objects}, indent=2))
        else:
            self.stdout.write(yaml.safe_dump_all(result.objects, sort_keys=False), ending="")
