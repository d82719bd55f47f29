from __future__ import annotations

import pytest

from projects.compose import ComposeRefusal, render_project
from projects.compose.interpolate import InterpolationError, interpolate, project_variables

from .compose_helpers import make_ctx

VARS = {"SET": "value", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${SET}", "value"),
        ("$SET/x", "value/x"),
        ("${UNSET:-default}", "default"),
        ("${EMPTY:-default}", "default"),
        ("${EMPTY-default}", ""),
        ("${UNSET-default}", "default"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:-${SET}}", "value"),
        ("$$SET costs 5$", "$SET costs 5$"),
        ("${SET:?must be set}", "value"),
    ],
)
def test_it_interpolates_compose_forms(text: str, expected: str) -> None:
    assert interpolate({"k": text}, VARS)[0] == {"k": expected}


def test_it_warns_about_unset_variables_with_the_key() -> None:
    result, missing = interpolate({"services": {"web": {"image": "nginx:${TAG}"}}}, {})
    assert result["services"]["web"]["image"] == "nginx:"
    assert missing == [("TAG", ("services", "web", "image"))]


@pytest.mark.parametrize("text", ["${UNSET:?set UNSET please}", "${EMPTY:?no}", "${UNSET?no}", "${oops", "${1X}"])
def test_it_raises_for_required_or_malformed_references(text: str) -> None:
    with pytest.raises(InterpolationError):
        interpolate({"k": text}, VARS)


def test_it_refuses_a_required_variable_naming_the_key() -> None:
    text = "services:\n  web:\n    image: nginx\n    environment:\n      TOKEN: ${TOKEN:?set TOKEN in the project}\n"
    with pytest.raises(ComposeRefusal) as caught:
        render_project(text, make_ctx())
    problem = caught.value.problems[0]
    assert problem.key == "services.web.environment.TOKEN"
    assert "set TOKEN in the project" in str(problem)


def test_it_uses_project_variables_for_ports_and_env() -> None:
    text = "services:\n  web:\n    image: nginx:${TAG:-1.27}\n    ports: ['${PORT}:80']\n"
    result = render_project(text, make_ctx(variables={"PORT": "8080"}))
    deployment = next(o for o in result.objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert result.services[0].ports == [{"port": 8080, "targetPort": 80, "protocol": "TCP"}]


def test_it_reads_a_dotenv_where_later_lines_use_earlier_ones() -> None:
    assert project_variables("A=1\n# c\nexport B=${A}2\nC='q #x'\n", {"D": "4"}) == {
        "A": "1", "B": "12", "C": "q #x", "D": "4"
    }
