"""The pinned charts and the platform's own Garage chart (shipped inline as chartContent)."""

from __future__ import annotations

import base64
import gzip
import io
import re
import tarfile
from typing import Any

import pytest
import yaml

from agent import bootstrap as b
from agent import charts
from kubesim.schema import validate_object

# The chart's templates use plain value references only, so this is all the rendering they need.
REFERENCE = re.compile(r"\{\{\s*\.(Values|Release)\.([\w.]+)\s*\}\}")


def render(template: str, values: dict[str, Any], release: str, namespace: str) -> list[dict[str, Any]]:
    def lookup(match: re.Match[str]) -> str:
        if match[1] == "Release":
            return {"Name": release, "Namespace": namespace}[match[2]]
        node: Any = values
        for part in match[2].split("."):
            node = node[part]
        return str(node)

    rendered = REFERENCE.sub(lookup, template)
    assert "{{" not in rendered, "the chart uses template features this test does not render"
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def chart_archive() -> dict[str, bytes]:
    raw = gzip.decompress(base64.b64decode(charts.garage_chart_content()))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_the_inline_chart_is_byte_for_byte_reproducible():
    first = charts.garage_chart_content()
    charts.garage_chart_content.cache_clear()
    assert charts.garage_chart_content() == first  # an unchanged chart never looks like drift
    files = chart_archive()
    assert "garage/Chart.yaml" in files and "garage/templates/statefulset.yaml" in files
    assert yaml.safe_load(files["garage/Chart.yaml"])["appVersion"] == charts.GARAGE.app_version == "v2.0.0"


def test_the_garage_chart_renders_objects_kubernetes_accepts():
    chart = b.garage_chart(b.Settings(garage_data_size="20Gi"))
    files = chart_archive()
    values = {**yaml.safe_load(files["garage/values.yaml"]), **yaml.safe_load(chart["spec"]["valuesContent"])}
    objects = [obj for name, body in sorted(files.items()) if name.startswith("garage/templates/")
               for obj in render(body.decode(), values, "garage", charts.DATA_NAMESPACE)]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert kinds == {("ConfigMap", "garage-config"), ("Service", "garage"), ("Service", "garage-admin"),
                     ("Service", "garage-headless"), ("StatefulSet", "garage")}
    for obj in objects:
        assert validate_object(obj) == [], obj["metadata"]["name"]
    statefulset = next(o for o in objects if o["kind"] == "StatefulSet")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "dxflrs/garage:v2.0.0"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env["GARAGE_ADMIN_TOKEN"] == {"name": charts.GARAGE_ADMIN_SECRET, "key": "token"}
    claims = {c["metadata"]["name"]: c["spec"]["resources"]["requests"]["storage"]
              for c in statefulset["spec"]["volumeClaimTemplates"]}
    assert claims == {"meta": "1Gi", "data": "20Gi"}
    admin = next(o for o in objects if o["metadata"]["name"] == "garage-admin")
    assert admin["spec"]["ports"][0]["port"] == 3903
    # The tenants' egress policy (projects.compose) allows exactly these pods and port.
    assert statefulset["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "garage"
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]["garage.toml"]
    assert 's3_region = "garage"' in config and "replication_factor = 1" in config


def test_the_addresses_match_what_project_manifests_expect():
    from projects.compose.context import RenderContext

    defaults = {f: RenderContext.__dataclass_fields__[f].default for f in ("postgres_namespace", "postgres_host",
                                                                             "garage_namespace")}
    assert defaults == {"postgres_namespace": charts.DATA_NAMESPACE, "postgres_host": charts.POSTGRES_HOST,
                        "garage_namespace": charts.DATA_NAMESPACE}


@pytest.mark.parametrize("sizing", [b.Settings(), b.Settings(postgres_storage_class="local-path",
                                                             postgres_instances=3)])
def test_every_desired_object_validates(sizing):
    for ingress in (True, False):
        for obj in b.desired_objects(sizing, ingress):
            assert validate_object(obj) == [], (obj["kind"], obj["metadata"]["name"])


@pytest.mark.parametrize("raw,problem", [({"postgres_storage": "ten gigs"}, "storage quantity"),
                                         ({"postgres_instances": 0}, "at least 1"),
                                         ({"garage_data_size": "1.5Ti"}, "storage quantity")])
def test_bad_settings_are_refused(raw, problem):
    with pytest.raises(ValueError, match=problem):
        b.Settings.from_dict(raw)


def test_versions_are_reported_for_every_component():
    assert set(charts.versions()) == set(b.COMPONENTS)
    assert charts.versions()["sablier"]["traefik_plugin"] == "v1.3.1"
