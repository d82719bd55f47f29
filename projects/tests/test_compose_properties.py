"""Generated and mutated compose documents: the converter returns a result or refuses, nothing else."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projects.compose import ComposeRefusal, render_project

from .compose_helpers import CONFORMANCE, compose_inputs, invalid_objects, make_ctx

SERVICE_KEYS = [
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose", "volumes",
    "tmpfs", "healthcheck", "deploy", "user", "working_dir", "read_only", "stop_grace_period", "labels",
    "secrets", "configs", "restart", "depends_on", "profiles", "privileged", "cap_add", "network_mode",
    "mem_limit", "cpus", "links", "container_name",
]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=True),
    st.sampled_from(["80", "8080:80", "./a:/b", "db", "no", "1g", "0.5", "${X:-y}", "$$", "10s", "/x", "a=b", ""]),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(SERVICE_KEYS + ["target", "source", "test", "replicas"]),
                                  st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=12,
)
services = st.dictionaries(
    st.sampled_from(["web", "db", "Bad_Name", "cache", "x" * 70]),
    st.dictionaries(st.sampled_from(SERVICE_KEYS), values, max_size=6),
    min_size=1,
    max_size=3,
)
documents = st.fixed_dictionaries(
    {"services": services},
    optional={"volumes": values, "secrets": values, "configs": values, "name": scalars, "networks": values},
)
SAMPLES = [p.read_text() for p in compose_inputs()] if CONFORMANCE.is_dir() else ["services: {web: {image: x}}"]


def check(text: str) -> None:
    try:
        result = render_project(text, make_ctx(database_secret="db", files={"a": "x"}))
    except ComposeRefusal as refusal:
        assert refusal.problems and all(str(p) for p in refusal.problems)
        return
    assert result.objects[0]["kind"] == "Namespace"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_it_never_raises_anything_but_a_refusal_for_generated_documents(document: dict) -> None:
    check(yaml.safe_dump(document))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_it_never_raises_anything_but_a_refusal_for_mutated_samples(sample: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(sample)))
    action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
    snippet = data.draw(st.sampled_from(["\n", ":", " ", "- ", "{", "*a", "&a ", "'", "${", "\t", "!x ", "0"]))
    end = position + data.draw(st.integers(0, 8))
    if action == "insert":
        mutated = sample[:position] + snippet + sample[position:]
    elif action == "delete":
        mutated = sample[:position] + sample[end:]
    else:
        mutated = sample[:position] + snippet + sample[end:]
    check(mutated)


@settings(max_examples=40, deadline=None)
@given(documents)
def test_it_only_emits_schema_valid_objects(document: dict) -> None:
    try:
        result = render_project(yaml.safe_dump(document), make_ctx())
    except ComposeRefusal:
        return
    assert invalid_objects(result.objects) == {}
