from __future__ import annotations

import time

import pytest

from projects.compose import ComposeRefusal
from projects.compose.parse import MAX_BYTES, parse_yaml


def refusal(text: str) -> ComposeRefusal:
    with pytest.raises(ComposeRefusal) as caught:
        parse_yaml(text)
    return caught.value


def test_it_refuses_files_over_the_size_limit() -> None:
    assert "larger than 256 KiB" in str(refusal("a: b\n" + "#" * MAX_BYTES))


def test_it_refuses_a_billion_laughs_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.monotonic()
    assert "expanding aliases" in str(refusal("\n".join(lines)))
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    "tag", ["!!python/object/apply:os.system ['id']", "!custom x", "!!binary aGVsbG8=", "!!set {a}"]
)
def test_it_refuses_custom_and_unsafe_tags(tag: str) -> None:
    assert "unsupported YAML tag" in str(refusal(f"services:\n  web:\n    image: {tag}\n"))


def test_it_reports_line_and_column_of_malformed_yaml() -> None:
    problem = refusal("services:\n  web:\n    image: [nginx\n").problems[0]
    assert problem.line is not None and problem.line >= 3
    assert problem.column is not None
    assert "malformed YAML" in problem.message


def test_it_refuses_duplicate_keys_and_self_referencing_aliases() -> None:
    assert "duplicate key 'image'" in str(refusal("services:\n  web:\n    image: a\n    image: b\n"))
    assert "refers to itself" in str(refusal("a: &x [*x]\n"))


def test_it_refuses_multiple_documents_and_non_mappings() -> None:
    assert "malformed YAML" in str(refusal("a: 1\n---\nb: 2\n"))
    assert "must be a mapping" in str(refusal("- a\n- b\n"))
    assert "empty" in str(refusal(""))


def test_it_reads_values_like_docker_compose() -> None:
    data = parse_yaml("p: 80:80\nr: no\nt: true\nm: 0440\nn: 0o17\nf: 1.5\nz: ~\n").data
    # YAML 1.2 core: no sexagesimal ints, `no` stays a string; leading-zero octal as go-yaml.
    assert data == {"p": "80:80", "r": "no", "t": True, "m": 0o440, "n": 15, "f": 1.5, "z": None}


def test_it_supports_merge_keys_and_records_positions() -> None:
    parsed = parse_yaml(
        "x-base: &base\n  image: nginx\n  restart: always\nservices:\n  web:\n    <<: *base\n    restart: no\n"
    )
    assert parsed.data["services"]["web"] == {"image": "nginx", "restart": "no"}
    assert parsed.position(("services", "web", "restart")) == (7, 5)
    assert parsed.position(("services", "web", "missing", 3)) == (5, 3)
