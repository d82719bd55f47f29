"""EnsureBucket / DeleteBucket through Garage's admin API v2 (the documented double), plus an S3 round trip
with boto3 against moto's S3 server on loopback, using credentials shaped like the ones Garage issues."""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from agent import charts, reconcile
from agent import protocol as p
from agent.data import garage, services
from agent.protocol import PROJECT_UID_LABEL
from agent.tests.garage_double import GarageDouble
from agent.tests.test_reconcile import LABELS, NS, OTHER


@pytest.fixture
def admin(double: GarageDouble) -> garage.GarageAdmin:
    client = garage.GarageAdmin(double.url, double.token)
    client.ensure_layout(capacity=10 * 1024**3)
    return client


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_client(endpoint: str, secret: dict[str, str]):
    return boto3.client("s3", endpoint_url=endpoint, region_name=secret["S3_REGION"],
                        aws_access_key_id=secret["S3_ACCESS_KEY_ID"],
                        aws_secret_access_key=secret["S3_SECRET_ACCESS_KEY"],
                        config=Config(s3={"addressing_style": "path"}))


def put_admin_token(kubesim, kube, token: str) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": charts.DATA_NAMESPACE}}
    kube.apply(services.NAMESPACE, namespace)
    kube.apply(services.SECRET, services.secret_object(charts.DATA_NAMESPACE, charts.GARAGE_ADMIN_SECRET,
                                                       {"token": token}, {}), charts.DATA_NAMESPACE)


# --- the admin API client against the double -----------------------------------------------------------


def test_it_refuses_requests_without_the_admin_token(double):
    with pytest.raises(garage.GarageError) as denied:
        garage.GarageAdmin(double.url, "not-the-token").status()
    assert (denied.value.status, denied.value.code) == (403, "AccessDenied")


def test_it_assigns_and_applies_the_layout_once(double):
    client = garage.GarageAdmin(double.url, double.token)
    assert not double.layout_applied
    with pytest.raises(garage.GarageError) as unavailable:  # a store without a layout accepts no data
        client.ensure_bucket("too-early")
    assert unavailable.value.status == 503
    assert client.ensure_layout(capacity=5 * 1024**3) == {"changed": True, "version": 1}
    assert double.layout_applied
    assert double.nodes[0]["role"] == {"zone": "dc1", "capacity": 5 * 1024**3, "tags": []}
    assert client.ensure_layout(capacity=5 * 1024**3) == {"changed": False, "version": 1}
    assert double.requests.count(("POST", "ApplyClusterLayout")) == 1


def test_it_applies_a_layout_an_interrupted_run_left_staged(double):
    client = garage.GarageAdmin(double.url, double.token)
    node = client.status()["nodes"][0]["id"]
    client.call("POST", "UpdateClusterLayout", {"roles": [{"id": node, "zone": "dc1", "capacity": 4096, "tags": []}]})
    assert client.ensure_layout(capacity=10 * 1024**3) == {"changed": True, "version": 1}
    assert double.nodes[0]["role"]["capacity"] == 4096  # applied as staged, not staged twice
    with pytest.raises(garage.GarageError) as wrong:  # the API insists on current version + 1
        client.call("POST", "ApplyClusterLayout", {"version": 1})
    assert wrong.value.status == 500 and "Invalid new layout version" in wrong.value.message


def test_it_creates_a_bucket_and_a_key_allowed_on_it_only(admin, double):
    creds = admin.ensure_bucket("acme-shop")
    assert creds.created
    assert re.fullmatch(r"GK[0-9a-f]{24}", creds.access_key_id)
    assert re.fullmatch(r"[0-9a-f]{64}", creds.secret_access_key)
    assert double.permissions("acme-shop", "acme-shop") == {"read": True, "write": True, "owner": False}
    key = admin.call("GET", "GetKeyInfo", id=creds.access_key_id)
    assert key["permissions"] == {"createBucket": False}
    assert [b["globalAliases"] for b in key["buckets"]] == [["acme-shop"]]
    assert key["secretAccessKey"] is None  # only shown when asked for


def test_it_finds_the_existing_bucket_and_key_on_a_second_call(admin, double):
    first = admin.ensure_bucket("acme-shop")
    second = admin.ensure_bucket("acme-shop")
    assert not second.created
    assert (second.bucket_id, second.access_key_id, second.secret_access_key) == (
        first.bucket_id, first.access_key_id, first.secret_access_key)
    assert len(double.buckets) == 1 and len(double.keys) == 1
    assert double.requests.count(("POST", "AllowBucketKey")) == 1


def test_it_resumes_when_the_bucket_exists_but_the_key_does_not(admin, double):
    admin.call("POST", "CreateBucket", {"globalAlias": "half-done"})  # an earlier run stopped here
    creds = admin.ensure_bucket("half-done")
    assert not creds.created
    assert len(double.buckets) == 1
    assert double.permissions("half-done", "half-done")["write"] is True


def test_it_keeps_tenants_keys_apart(admin, double):
    a = admin.ensure_bucket("tenant-a")
    admin.ensure_bucket("tenant-b")
    assert double.permissions("tenant-b", "tenant-a") == {"read": False, "write": False, "owner": False}
    info = admin.call("GET", "GetKeyInfo", id=a.access_key_id)
    assert [b["globalAliases"] for b in info["buckets"]] == [["tenant-a"]]


def test_it_answers_documented_errors(admin):
    with pytest.raises(garage.GarageError) as missing:
        admin.call("GET", "GetBucketInfo", globalAlias="nope")
    assert (missing.value.status, missing.value.code) == (404, "NoSuchBucket")
    admin.ensure_bucket("taken")
    with pytest.raises(garage.GarageError) as taken:
        admin.call("POST", "CreateBucket", {"globalAlias": "taken"})
    assert (taken.value.status, taken.value.code) == (409, "BucketAlreadyExists")
    with pytest.raises(garage.GarageError) as invalid:
        admin.call("POST", "CreateBucket", {"globalAlias": "Not_A_Bucket"})
    assert (invalid.value.status, invalid.value.code) == (400, "InvalidRequest")
    with pytest.raises(garage.GarageError) as malformed:
        admin.call("POST", "AllowBucketKey", {"bucketId": "x"})
    assert malformed.value.status == 400 and "accessKeyId" in malformed.value.message
    with pytest.raises(garage.GarageError) as no_key:
        admin.call("POST", "DeleteKey", id="GK000000000000000000000000")
    assert (no_key.value.status, no_key.value.code) == (404, "NoSuchAccessKey")


def test_it_deletes_only_an_emptied_bucket_and_then_its_key(admin, double):
    admin.ensure_bucket("leaving")
    double.put_object("leaving")
    with pytest.raises(garage.GarageError) as not_empty:
        admin.delete_bucket("leaving")
    assert not_empty.value.code == "BucketNotEmpty"
    double.buckets[next(iter(double.buckets))]["objects"] = 0
    assert admin.delete_bucket("leaving") == {"bucket_deleted": True, "key_deleted": True}
    assert double.buckets == {} and double.keys == {}
    assert admin.delete_bucket("leaving") == {"bucket_deleted": False, "key_deleted": False}


@pytest.mark.parametrize("key,expected", [
    ("acme-shop", "acme-shop"),
    ("ab", None), ("Tenant_A.b", None), ("x" * 70, None),
])
def test_it_derives_valid_bucket_names(key, expected):
    name = garage.bucket_name_for(key)
    assert garage.BUCKET_NAME.fullmatch(name)
    if expected:
        assert name == expected
    else:
        assert name != key and len(name) <= 63


# --- the project's Secret (kubesim) and an S3 round trip (moto) ------------------------------------------


def test_it_writes_the_s3_secret_into_the_project_namespace(admin, double, kube, kubesim):
    put_admin_token(kubesim, kube, double.token)
    endpoints = services.Endpoints(garage_admin_url=double.url)
    result = services.ensure_bucket(kube, "acme-shop", endpoints, labels=LABELS)
    secret = services.read_secret(kube, "acme-shop", p.BUCKET_SECRET)
    assert secret == {"S3_ENDPOINT": "http://garage.paas-data.svc.cluster.local:3900", "S3_REGION": "garage",
                      "S3_BUCKET": "acme-shop", "S3_ACCESS_KEY_ID": result["access_key_id"],
                      "S3_SECRET_ACCESS_KEY": next(iter(double.keys.values()))["secret"]}
    assert secret["S3_SECRET_ACCESS_KEY"] not in repr(result)
    stored = kubesim.get("Secret", "acme-shop", p.BUCKET_SECRET)
    assert base64.b64decode(stored["data"]["S3_BUCKET"]) == b"acme-shop"
    services.ensure_bucket(kube, "acme-shop", endpoints, labels=LABELS)
    assert services.read_secret(kube, "acme-shop", p.BUCKET_SECRET) == secret


def test_the_namespace_it_creates_is_the_projects_so_the_first_release_applies_into_it(admin, double, kube, kubesim):
    put_admin_token(kubesim, kube, double.token)
    services.ensure_bucket(kube, NS, services.Endpoints(garage_admin_url=double.url), labels=LABELS)
    # The data step runs before a project's first apply: the namespace it made must be the project's.
    assert kubesim.get("Namespace", None, NS)["metadata"]["labels"][PROJECT_UID_LABEL] == LABELS[PROJECT_UID_LABEL]
    result = reconcile.apply_project(kube, NS, LABELS, 1, [])
    assert result["results"] == [] and kubesim.get("Secret", NS, p.BUCKET_SECRET) is not None


def test_it_makes_nothing_for_a_namespace_that_is_not_the_projects(admin, double, kube, kubesim):
    put_admin_token(kubesim, kube, double.token)
    reconcile.apply_project(kube, NS, OTHER, 1, [])
    with pytest.raises(reconcile.NotOwned, match=f"namespace {NS} belongs to another project"):
        services.ensure_bucket(kube, NS, services.Endpoints(garage_admin_url=double.url), labels=LABELS)
    assert kubesim.get("Secret", NS, p.BUCKET_SECRET) is None and double.buckets == {}


def test_it_reports_not_ready_before_garage_is_bootstrapped(kube):
    with pytest.raises(services.NotReady, match="garage-admin-token"):
        services.ensure_bucket(kube, "acme-shop", services.Endpoints(), labels=LABELS)


def test_issued_credentials_work_for_an_s3_round_trip(admin, s3_server):
    creds = admin.ensure_bucket("round-trip")
    secret = creds.secret_data(s3_server, charts.GARAGE_REGION)  # as the project would see it, on loopback
    s3 = s3_client(s3_server, secret)
    # moto knows nothing of Garage's admin API: create the bucket there as Garage would have.
    s3.create_bucket(Bucket=secret["S3_BUCKET"], CreateBucketConfiguration={"LocationConstraint": "garage"})
    s3.put_object(Bucket=secret["S3_BUCKET"], Key="reports/2026.txt", Body=b"hello bucket")
    s3.put_object(Bucket=secret["S3_BUCKET"], Key="reports/2027.txt", Body=b"next year")
    body = s3.get_object(Bucket=secret["S3_BUCKET"], Key="reports/2026.txt")["Body"].read()
    assert body == b"hello bucket"
    listed = s3.list_objects_v2(Bucket=secret["S3_BUCKET"], Prefix="reports/")
    assert [o["Key"] for o in listed["Contents"]] == ["reports/2026.txt", "reports/2027.txt"]


def test_delete_bucket_empties_it_through_s3_then_removes_it(admin, double, kube, kubesim, s3_server):
    put_admin_token(kubesim, kube, double.token)
    endpoints = services.Endpoints(garage_admin_url=double.url, garage_s3_url=s3_server)
    services.ensure_bucket(kube, "going-away", endpoints, labels=LABELS)
    secret = services.read_secret(kube, "going-away", p.BUCKET_SECRET)
    s3 = s3_client(s3_server, secret)
    s3.create_bucket(Bucket="going-away", CreateBucketConfiguration={"LocationConstraint": "garage"})
    for i in range(3):
        s3.put_object(Bucket="going-away", Key=f"file-{i}", Body=b"x")

    def empty(*args: str) -> int:
        deleted = services.empty_bucket(*args)
        double.buckets[next(iter(double.buckets))]["objects"] = 0  # what Garage would now count
        return deleted

    double.put_object("going-away", 3)
    result = services.delete_bucket(kube, "going-away", endpoints, empty=empty)
    assert result["objects_deleted"] == 3 and result["bucket_deleted"] and result["key_deleted"]
    assert result["secret_deleted"]
    assert s3.list_objects_v2(Bucket="going-away").get("KeyCount") == 0
    assert double.buckets == {} and double.keys == {}
    with pytest.raises(ClientError):
        s3.head_object(Bucket="going-away", Key="file-0")
