"""REST endpoints (organization-scoped): projects, compose validation, releases, rollback, variables, logs,
database dump and restore."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import get_organization_for_user
from clusters.access import clusters_for_organization, get_cluster_for_org
from lib.pagination import paginated_response
from projects import deletion, domains, dumps, logs, manifests, releases, services, wake
from projects.access import (
    get_deleted_project_for_user,
    get_domain_for_user,
    get_project_for_user,
    get_release_for_user,
    get_service_for_user,
    get_variable_for_user,
)
from projects.models import Project


def project_dict(project: Project, *, detail: bool = False) -> dict[str, Any]:
    latest = project.latest_release()
    data: dict[str, Any] = {
        "name": project.name, "slug": project.slug, "cluster": project.cluster.slug, "namespace": project.namespace,
        "allow_internet_egress": project.allow_internet_egress, "wants_database": project.wants_database,
        "wants_bucket": project.wants_bucket, "suspended": project.suspended,
        "created_at": project.created_at.isoformat(),
        "latest_release": {"revision": latest.revision, "status": latest.status} if latest else None,
    }
    if detail:
        data["services"] = [s.as_dict() for s in project.services.all()]
        data["compose"] = project.compose_text
    return data


def refused(exc: ValidationError) -> Response:
    body: dict[str, Any] = {"detail": " ".join(exc.messages), "code": exc.code or "invalid"}
    if getattr(exc, "problems", None):
        body["problems"] = exc.problems
    billing_state = exc.code in ("organization_suspended", "organization_unfunded", "suspended")
    return Response(body, status=status.HTTP_409_CONFLICT if billing_state else status.HTTP_400_BAD_REQUEST)


class RefusalSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()


class ProjectCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=60)
    slug = serializers.SlugField(max_length=40, required=False, allow_blank=True)
    cluster = serializers.SlugField(required=False, help_text="A cluster open to the organization; default the first.")
    allow_internet_egress = serializers.BooleanField(default=False)
    wants_database = serializers.BooleanField(default=False)
    wants_bucket = serializers.BooleanField(default=False)
    compose = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class ComposeSerializer(serializers.Serializer):
    compose = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False)


class RollbackSerializer(serializers.Serializer):
    pass


class VariableSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    value = serializers.CharField(allow_blank=True, trim_whitespace=False)
    service = serializers.CharField(max_length=63, required=False, allow_blank=True, default="")
    secret = serializers.BooleanField(default=False)


# --- Response shapes, for the OpenAPI schema (the views build plain dicts with the models' as_dict) ---------


class LatestReleaseSerializer(serializers.Serializer):
    revision = serializers.IntegerField()
    status = serializers.CharField()


class ProjectSerializer(serializers.Serializer):
    name = serializers.CharField()
    slug = serializers.SlugField()
    cluster = serializers.SlugField()
    namespace = serializers.CharField()
    allow_internet_egress = serializers.BooleanField()
    wants_database = serializers.BooleanField()
    wants_bucket = serializers.BooleanField()
    suspended = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    latest_release = LatestReleaseSerializer(allow_null=True)


class ServiceSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    image = serializers.CharField(allow_blank=True)
    exposure = serializers.CharField()
    url = serializers.CharField(allow_blank=True, help_text="Public URL; empty for a private service.")
    status = serializers.CharField()
    replicas = serializers.IntegerField()
    ready = serializers.IntegerField()
    restarts = serializers.IntegerField()
    message = serializers.CharField(allow_blank=True)


class ServiceExposureResultSerializer(ServiceSerializer):
    exposure_override = serializers.CharField(allow_blank=True)


class ProjectDetailSerializer(ProjectSerializer):
    services = ServiceSerializer(many=True)
    compose = serializers.CharField(allow_blank=True)


class ReleaseSerializer(serializers.Serializer):
    project = serializers.SlugField()
    revision = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    steps = serializers.DictField(help_text="Pipeline steps by name: status, seconds, message.")
    error = serializers.CharField(allow_blank=True)
    error_code = serializers.CharField(allow_blank=True)
    warnings = serializers.ListField(child=serializers.DictField())
    created_at = serializers.DateTimeField()
    created_by = serializers.EmailField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    rollback_of = serializers.IntegerField(allow_null=True)


class ReleaseDetailSerializer(ReleaseSerializer):
    manifests = serializers.ListField(child=serializers.DictField(), required=False,
                                      help_text="With ?manifests=1: the applied objects, Secret data as hashes.")


class VariableOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    service = serializers.CharField(allow_blank=True)
    secret = serializers.BooleanField()
    value = serializers.CharField(allow_null=True, allow_blank=True, help_text="null for a secret (write-only).")


class ProblemSerializer(serializers.Serializer):
    service = serializers.CharField(allow_null=True, allow_blank=True)
    key = serializers.CharField(allow_null=True, allow_blank=True)
    message = serializers.CharField()
    line = serializers.IntegerField(allow_null=True)
    column = serializers.IntegerField(allow_null=True)


class ValidatedServiceSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    public_host = serializers.CharField(allow_blank=True)


class ValidationResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    problems = ProblemSerializer(many=True)
    warnings = ProblemSerializer(many=True)
    notes = ProblemSerializer(many=True)
    services = ValidatedServiceSerializer(many=True)


class ProjectListView(GenericAPIView):
    serializer_class = ProjectCreateSerializer

    @extend_schema(operation_id="projects_list", responses=ProjectSerializer(many=True))
    def get(self, request, org_slug: str):
        org, _ = get_organization_for_user(request.user, org_slug, "view")
        projects = Project.objects.active().filter(organization=org).select_related("cluster").with_latest_release()
        return paginated_response(self, projects, project_dict)

    @extend_schema(operation_id="projects_create", request=ProjectCreateSerializer,
                   responses={201: ProjectDetailSerializer})
    def post(self, request, org_slug: str):
        org, _ = get_organization_for_user(request.user, org_slug, "deploy")
        form = ProjectCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        cluster = (get_cluster_for_org(org, d["cluster"]) if d.get("cluster")
                   else clusters_for_organization(org).first())
        if cluster is None:
            return Response({"detail": "No cluster is open to this organization yet.", "code": "no_cluster"},
                            status=status.HTTP_400_BAD_REQUEST)
        try:
            project = services.create_project(
                org, request.user, d["name"], cluster, slug=d.get("slug", ""),
                allow_internet_egress=d["allow_internet_egress"], wants_database=d["wants_database"],
                wants_bucket=d["wants_bucket"], compose_text=d["compose"])
        except ValidationError as exc:
            return refused(exc)
        return Response(project_dict(project, detail=True), status=status.HTTP_201_CREATED)


class DeleteSerializer(serializers.Serializer):
    confirm = serializers.CharField(help_text="The project's slug, to confirm.")


class ProjectDetailView(APIView):
    @extend_schema(operation_id="project_retrieve", responses=ProjectDetailSerializer)
    def get(self, request, org_slug: str, project_slug: str):
        project, _ = get_project_for_user(request.user, org_slug, project_slug, "view")
        return Response(project_dict(project, detail=True))

    @extend_schema(parameters=[DeleteSerializer], responses={204: None})
    def delete(self, request, org_slug: str, project_slug: str):
        """Delete the project (`?confirm=<its slug>`): its namespace goes now, its database and bucket after
        the grace period."""
        project, _ = get_project_for_user(request.user, org_slug, project_slug, "manage_organization")
        form = DeleteSerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        try:
            deletion.delete_project(project, request.user, form.validated_data["confirm"])
        except ValidationError as exc:
            return refused(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeletedProjectSerializer(serializers.Serializer):
    name = serializers.CharField()
    slug = serializers.SlugField()
    cluster = serializers.SlugField()
    deleted_at = serializers.DateTimeField()
    purge_after = serializers.DateTimeField(help_text="Restorable until then; its database and bucket go after.")
    live_revision = serializers.IntegerField(allow_null=True, help_text="The release a restore redeploys.")


class RestoredSerializer(serializers.Serializer):
    project = ProjectSerializer()
    release = ReleaseSerializer(allow_null=True, help_text="The redeploy of the live release, if there was one.")


def deleted_project_dict(project: Project) -> dict[str, Any]:
    """A project from `deletion.recently_deleted` (which annotates `live_revision`)."""
    return {"name": project.name, "slug": project.slug, "cluster": project.cluster.slug,
            "deleted_at": project.deleted_at.isoformat(), "purge_after": project.purge_after.isoformat(),
            "live_revision": project.live_revision}


class DeletedProjectListView(GenericAPIView):
    @extend_schema(operation_id="deleted_projects_list", responses=DeletedProjectSerializer(many=True))
    def get(self, request, org_slug: str):
        """Deleted projects that can still be restored (owners), the most recently deleted first."""
        org, _ = get_organization_for_user(request.user, org_slug, "restore_project")
        return paginated_response(self, deletion.recently_deleted(org), deleted_project_dict)


class RestoreView(APIView):
    @extend_schema(operation_id="deleted_project_restore", request=None,
                   responses={200: RestoredSerializer, 400: RefusalSerializer, 409: RefusalSerializer})
    def post(self, request, org_slug: str, project_slug: str):
        """Restore a deleted project within its grace period (owners): the same database and bucket, and a
        redeploy of its live release. After the grace period: 400 `grace_period_over`."""
        project, _ = get_deleted_project_for_user(request.user, org_slug, project_slug)
        try:
            release = deletion.restore_project(project, request.user)
        except ValidationError as exc:
            return refused(exc)
        return Response({"project": project_dict(project), "release": release.as_dict() if release else None})


class ValidateView(APIView):
    serializer_class = ComposeSerializer

    @extend_schema(operation_id="project_validate", request=ComposeSerializer, responses=ValidationResultSerializer)
    def post(self, request, org_slug: str, project_slug: str):
        project, _ = get_project_for_user(request.user, org_slug, project_slug, "view")
        form = ComposeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return Response(manifests.validate(project, form.validated_data.get("compose", project.compose_text)))


class ReleaseListView(GenericAPIView):
    serializer_class = ComposeSerializer

    @extend_schema(operation_id="releases_list", responses=ReleaseSerializer(many=True))
    def get(self, request, org_slug: str, project_slug: str):
        """The project's releases, newest first."""
        project, _ = get_project_for_user(request.user, org_slug, project_slug, "view")
        releases = project.releases.select_related("created_by", "rollback_of", "project")
        return paginated_response(self, releases, lambda release: release.as_dict())

    @extend_schema(operation_id="releases_create", request=ComposeSerializer, responses={202: ReleaseSerializer})
    def post(self, request, org_slug: str, project_slug: str):
        """Deploy: a new release from `compose` (or the project's current compose file)."""
        project, _ = get_project_for_user(request.user, org_slug, project_slug, "deploy")
        form = ComposeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            release = releases.deploy(project, request.user, form.validated_data.get("compose"))
        except ValidationError as exc:
            return refused(exc)
        return Response(release.as_dict(), status=status.HTTP_202_ACCEPTED)


class ReleaseDetailView(APIView):
    @extend_schema(operation_id="release_retrieve", responses=ReleaseDetailSerializer, parameters=[
        OpenApiParameter("manifests", str, enum=["1"], description="1: include the applied objects.")])
    def get(self, request, org_slug: str, project_slug: str, revision: int):
        release, _ = get_release_for_user(request.user, org_slug, project_slug, revision, "view")
        data = release.as_dict()
        if request.query_params.get("manifests") == "1":
            data["manifests"] = release.manifests  # Secret data is redacted (hashes only)
        return Response(data)


class RollbackView(APIView):
    serializer_class = RollbackSerializer

    @extend_schema(operation_id="release_rollback", request=None, responses={202: ReleaseSerializer})
    def post(self, request, org_slug: str, project_slug: str, revision: int):
        target, _ = get_release_for_user(request.user, org_slug, project_slug, revision, "deploy")
        try:
            release = releases.rollback(target.project, request.user, target)
        except ValidationError as exc:
            return refused(exc)
        return Response(release.as_dict(), status=status.HTTP_202_ACCEPTED)


class VariableListView(GenericAPIView):
    serializer_class = VariableSerializer

    @extend_schema(operation_id="variables_list", responses=VariableOutSerializer(many=True))
    def get(self, request, org_slug: str, project_slug: str):
        project, _ = get_project_for_user(request.user, org_slug, project_slug, "view")
        return paginated_response(self, project.variables.all(), lambda variable: variable.as_dict())

    @extend_schema(operation_id="variables_create", request=VariableSerializer, responses={201: VariableOutSerializer})
    def post(self, request, org_slug: str, project_slug: str):
        project, _ = get_project_for_user(request.user, org_slug, project_slug, "deploy")
        form = VariableSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        try:
            variable = services.set_variable(project, d["name"], d["value"], service=d["service"], secret=d["secret"],
                                             actor=request.user)
        except ValidationError as exc:
            return refused(exc)
        return Response(variable.as_dict(), status=status.HTTP_201_CREATED)


class VariableDetailView(APIView):
    @extend_schema(operation_id="variable_destroy", responses={204: None})
    def delete(self, request, org_slug: str, project_slug: str, variable_id: int):
        variable, _ = get_variable_for_user(request.user, org_slug, project_slug, variable_id, "deploy")
        services.delete_variable(variable, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExposureSerializer(serializers.Serializer):
    exposure = serializers.ChoiceField(choices=["", "public", "private"],
                                       help_text="public, private, or empty to follow the compose file")


class ServiceExposureView(APIView):
    """Make a service public (a URL) or private; applies on the next deploy or redeploy."""

    serializer_class = ExposureSerializer

    @extend_schema(operation_id="service_exposure_update", request=ExposureSerializer,
                   responses=ServiceExposureResultSerializer)
    def put(self, request, org_slug: str, project_slug: str, name: str):
        service, _ = get_service_for_user(request.user, org_slug, project_slug, name, "deploy")
        form = ExposureSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.set_exposure(service, form.validated_data["exposure"])
        return Response({**service.as_dict(), "exposure_override": service.exposure_override})


class LogsView(APIView):
    """The last lines of a service's pods (or of every service of the project) as a text file. Viewers may
    read logs."""

    @extend_schema(
        parameters=[OpenApiParameter("tail", int, description=f"Lines per container (1-{logs.MAX_TAIL}, default 500)."),
                    OpenApiParameter("previous", bool, description="The previous (crashed) container's log."),
                    OpenApiParameter("since_seconds", int, description="Only lines of the last N seconds.")],
        responses={(200, "text/plain"): OpenApiTypes.STR, 400: RefusalSerializer, 503: RefusalSerializer},
    )
    def get(self, request, org_slug: str, project_slug: str, name: str | None = None):
        if name is None:
            project, _ = get_project_for_user(request.user, org_slug, project_slug, "view")
        else:
            project = get_service_for_user(request.user, org_slug, project_slug, name, "view")[0].project
        try:
            options = logs.LogOptions.parse({"tail": request.query_params.get("tail", "500"), "service": name,
                                             "previous": request.query_params.get("previous"),
                                             "since_seconds": request.query_params.get("since_seconds")})
            frames = logs.last_lines(project, options)
        except ValueError as exc:
            return Response({"detail": str(exc), "code": "invalid"}, status=status.HTTP_400_BAD_REQUEST)
        except logs.LogsUnavailable as exc:
            return Response({"detail": str(exc), "code": "unavailable"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        response = HttpResponse(logs.as_text(frames, logs.sleeping_services(project)),
                                content_type="text/plain; charset=utf-8")
        filename = f"{project.slug}-{name or 'all'}-logs.txt"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class SleepSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False, help_text="Sleep when idle (public web services only).")
    idle_timeout = serializers.IntegerField(required=False, help_text="Seconds without requests before it sleeps "
                                            "(60 to 86400; default 900).")
    strategy = serializers.ChoiceField(choices=["dynamic", "blocking"], required=False,
                                       help_text="dynamic: a starting page for browsers; blocking: hold the request.")
    blocking_timeout = serializers.IntegerField(required=False, help_text="Seconds a held request waits (blocking).")


class ServiceSleepView(APIView):
    """A service's scale-to-zero settings; changes apply on the next deploy or redeploy."""

    serializer_class = SleepSerializer

    def get(self, request, org_slug: str, project_slug: str, name: str):
        service, _ = get_service_for_user(request.user, org_slug, project_slug, name, "view")
        return Response(service.sleep_dict())

    def put(self, request, org_slug: str, project_slug: str, name: str):
        service, _ = get_service_for_user(request.user, org_slug, project_slug, name, "deploy")
        form = SleepSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            services.set_sleep(service, **form.validated_data)
        except ValidationError as exc:
            return refused(exc)
        return Response(service.sleep_dict())


class WakeSerializer(serializers.Serializer):
    woken = serializers.BooleanField(help_text="false when the service does not sleep (nothing to wake)")
    ready = serializers.BooleanField()
    message = serializers.CharField()


class ServiceWakeView(APIView):
    """Wake a sleeping service now (through Sablier); answers once it is ready."""

    serializer_class = WakeSerializer

    @extend_schema(request=None, responses=WakeSerializer)
    def post(self, request, org_slug: str, project_slug: str, name: str):
        service, _ = get_service_for_user(request.user, org_slug, project_slug, name, "deploy")
        try:
            return Response(wake.wake_service(service))
        except ValidationError as exc:
            return refused(exc)


class RestoreResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="Whether pg_restore succeeded; when not, the database is unchanged.")
    bytes = serializers.IntegerField(help_text="Bytes of the dump fed to pg_restore.")
    exit_code = serializers.IntegerField()
    messages = serializers.CharField(help_text="pg_restore's errors and warnings (the last 64 KiB).")


class RestoreUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A dump made by pg_dump --format=custom (e.g. by the dump endpoint).")


DUMP_REFUSALS = {code: RefusalSerializer for code in (400, 404, 409, 413, 502, 503, 504)}


def dump_refused(exc: dumps.DumpError) -> Response:
    return Response({"detail": exc.message, "code": "database_unavailable"}, status=exc.status)


class DatabaseDumpView(AsyncAPIView):
    """The project's database as a pg_dump custom-format file (owners and admins), streamed as it is made.

    Restore it with the restore endpoint, or with `pg_restore --no-owner -d <database> file.dump`. A dump that
    fails after its first bytes ends the download early (a short file pg_restore refuses)."""

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **DUMP_REFUSALS})
    async def get(self, request, org_slug: str, project_slug: str):
        project, _ = await sync_to_async(get_project_for_user)(request.user, org_slug, project_slug,
                                                               dumps.DUMP_PERMISSION)
        try:
            chunks = await dumps.start_dump(project, request.user)
        except dumps.DumpError as exc:
            return dump_refused(exc)
        return dumps.download_response(project, chunks)


class DatabaseRestoreView(AsyncAPIView):
    """Restore an uploaded pg_dump custom-format file into the project's database (owners and admins).

    pg_restore runs with --clean --if-exists --no-owner --single-transaction: on any error nothing changes, and
    the answer carries pg_restore's messages. At most DATABASE_RESTORE_MAX_BYTES."""

    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": RestoreUploadSerializer},
                   responses={200: RestoreResultSerializer, **DUMP_REFUSALS})
    async def post(self, request, org_slug: str, project_slug: str):
        project, _ = await sync_to_async(get_project_for_user)(request.user, org_slug, project_slug,
                                                               dumps.DUMP_PERMISSION)
        upload = await sync_to_async(lambda: request.FILES.get("file"))()
        try:
            dumps.check_upload(upload.size if upload else None)
            result = await dumps.restore(project, request.user, upload.chunks(), upload.size)
        except dumps.DumpError as exc:
            return dump_refused(exc)
        return Response(asdict(result))


# --- Custom domains (projects/domains.py, docs/domains.md) ----------------------------------------------


class DomainCreateSerializer(serializers.Serializer):
    hostname = serializers.CharField(max_length=300, help_text="A host name like www.example.com (Unicode or xn--).")


class DomainRecordSerializer(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.CharField(required=False)
    target = serializers.CharField(required=False)


class DomainRecordsSerializer(serializers.Serializer):
    txt = DomainRecordSerializer(help_text="TXT record proving ownership: name and value.")
    cname = DomainRecordSerializer(help_text="Or a CNAME record: name and target (the service's platform host).")


class CertificateStateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["none", "pending", "ready", "failed"])
    reason = serializers.CharField(allow_blank=True)


class DomainSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    service = serializers.CharField()
    hostname = serializers.CharField(help_text="Lowercase IDNA (xn--) form, as routed.")
    display_name = serializers.CharField(help_text="The Unicode form.")
    status = serializers.ChoiceField(choices=["pending", "verified"])
    verified_at = serializers.DateTimeField(allow_null=True)
    checked_at = serializers.DateTimeField(allow_null=True)
    failing_since = serializers.DateTimeField(allow_null=True,
                                              help_text="A verified domain whose DNS record is gone, since when.")
    message = serializers.CharField(allow_blank=True, help_text="What the last DNS check found.")
    url = serializers.CharField(allow_blank=True)
    records = DomainRecordsSerializer()
    certificate = CertificateStateSerializer()


class DomainVerifySerializer(DomainSerializer):
    verified = serializers.BooleanField(help_text="Whether this check found a record.")


class DomainListView(GenericAPIView):
    """A public service's custom domains; a new one is routed once verified (POST .../verify/)."""

    serializer_class = DomainCreateSerializer

    @extend_schema(operation_id="service_domains_list", responses=DomainSerializer(many=True))
    def get(self, request, org_slug: str, project_slug: str, name: str):
        service, _ = get_service_for_user(request.user, org_slug, project_slug, name, "view")
        certificates = domains.observed_certificates(service.project)
        rows = service.domains.all()
        return paginated_response(self, rows, lambda d: domains.domain_dict(_with(d, service), certificates))

    @extend_schema(operation_id="service_domains_create", request=DomainCreateSerializer,
                   responses={201: DomainSerializer})
    def post(self, request, org_slug: str, project_slug: str, name: str):
        service, _ = get_service_for_user(request.user, org_slug, project_slug, name, "deploy")
        form = DomainCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            domain = domains.add_domain(service, form.validated_data["hostname"], actor=request.user)
        except ValidationError as exc:
            return refused(exc)
        return Response(domains.domain_dict(_with(domain, service)), status=status.HTTP_201_CREATED)


def _with(domain: Any, service: Any) -> Any:
    domain.service = service  # already loaded with its project and cluster
    return domain


class DomainDetailView(APIView):
    @extend_schema(operation_id="service_domain_retrieve", responses=DomainSerializer)
    def get(self, request, org_slug: str, project_slug: str, name: str, domain_id: int):
        domain, _ = get_domain_for_user(request.user, org_slug, project_slug, name, domain_id, "view")
        return Response(domains.domain_dict(domain))

    @extend_schema(operation_id="service_domain_destroy", responses={204: None})
    def delete(self, request, org_slug: str, project_slug: str, name: str, domain_id: int):
        domain, _ = get_domain_for_user(request.user, org_slug, project_slug, name, domain_id, "deploy")
        domains.delete_domain(domain, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DomainVerifyView(APIView):
    """Look the DNS records up now; a newly verified domain is routed by a redeploy this starts."""

    @extend_schema(operation_id="service_domain_verify", request=None, responses=DomainVerifySerializer)
    def post(self, request, org_slug: str, project_slug: str, name: str, domain_id: int):
        domain, _ = get_domain_for_user(request.user, org_slug, project_slug, name, domain_id, "deploy")
        result = domains.verify_domain(domain, actor=request.user)
        return Response({**domains.domain_dict(domain), "verified": result.ok})
