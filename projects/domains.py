"""Custom domains: claiming a host name for a service, proving it through DNS, re-checking it (docs/domains.md).

A claim is a CustomDomain row; the database refuses a host name twice across all projects. It is routed
(projects.manifests) only once verified, from the next deploy, which verifying starts by itself.
Ownership is shown by either record, looked up through DNS_VERIFY_NAMESERVERS:

    TXT    _paas-challenge.<host>  "<the claim's token>"
    CNAME  <host>                  <the service's platform host>
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from datetime import timedelta
from typing import Any

import dns.exception
import dns.nameserver
import dns.resolver
import idna
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from audit import services as audit
from clusters.models import Cluster, ObservedProject
from projects.models import CustomDomain, DomainStatus, Project, Service

log = logging.getLogger(__name__)

CHALLENGE_LABEL = "_paas-challenge"
LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def normalise_hostname(raw: str) -> str:
    """The host name as stored and routed: lowercase IDNA (xn--) form, no trailing dot. ValidationError naming
    the problem for a URL, a wildcard, an IP address, a single label, or a name under a platform domain."""
    text = (raw or "").strip().rstrip(".").lower()
    if not text:
        raise ValidationError("Enter a domain name, like www.example.com.", code="invalid_domain")
    if "://" in text or "/" in text or ":" in text and not _is_ip(text):
        raise ValidationError(f"{raw.strip()} is not a domain name: enter only the host, like www.example.com "
                              "(no scheme, port or path).", code="invalid_domain")
    if "*" in text:
        raise ValidationError("Wildcard domains are not supported: add each host name.", code="invalid_domain")
    if _is_ip(text):
        raise ValidationError(f"{text} is an IP address; enter a domain name.", code="invalid_domain")
    try:
        ascii_name = idna.encode(text, uts46=True).decode()
    except idna.IDNAError as exc:
        raise ValidationError(f"{raw.strip()} is not a valid domain name ({exc}).", code="invalid_domain") from None
    labels = ascii_name.split(".")
    if len(labels) < 2 or len(ascii_name) > 253 or not all(LABEL.fullmatch(label) for label in labels) \
            or labels[-1].isdigit():
        raise ValidationError(f"{raw.strip()} is not a valid domain name.", code="invalid_domain")
    for base in platform_domains():
        if ascii_name == base or ascii_name.endswith("." + base):
            raise ValidationError(f"{ascii_name} is under the platform's domain {base}; services get their "
                                  "platform host there automatically.", code="platform_domain")
    return ascii_name


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def platform_domains() -> set[str]:
    return {d.strip(".").lower() for d in Cluster.objects.values_list("base_domain", flat=True) if d}


def display_name(hostname: str) -> str:
    """The Unicode form people typed (xn-- labels decoded)."""
    try:
        return idna.decode(hostname)
    except idna.IDNAError:
        return hostname


def challenge_name(hostname: str) -> str:
    return f"{CHALLENGE_LABEL}.{hostname}"


def _expired_claims(now: timezone.datetime) -> Q:
    cutoff = now - timedelta(days=settings.DOMAINS_CLAIM_EXPIRY_DAYS)
    return (Q(status=DomainStatus.PENDING, created_at__lt=cutoff)
            | Q(status=DomainStatus.VERIFIED, failing_since__lt=cutoff))


def _audit(action: audit.Action, domain: CustomDomain, actor: User | None, **details: Any) -> None:
    project = domain.service.project
    audit.record(action, actor=actor, organization=project.organization, target=project,
                 details={"hostname": domain.hostname, "service": domain.service.name, **details})


def add_domain(service: Service, raw_hostname: str, actor: User | None = None) -> CustomDomain:
    """Claim a host name for a public service (unverified, not routed yet).

    An expired claim of another project (docs/domains.md) is released first, and that project redeployed
    without it. Raises ValidationError when the name is invalid or held by a live claim.
    """
    if not service.public_host:
        raise ValidationError(f"{service.name} has no public URL; make it public and deploy before adding a "
                              "domain.", code="not_public")
    hostname = normalise_hostname(raw_hostname)
    released: list[Project] = []
    try:
        with transaction.atomic():
            existing = CustomDomain.objects.select_for_update().select_related("service__project").filter(
                hostname=hostname).first()
            if existing is not None:
                if existing.service.project_id == service.project_id:
                    raise ValidationError(f"{hostname} is already a domain of {existing.service.name} in this "
                                          "project.", code="domain_taken")
                if not CustomDomain.objects.filter(_expired_claims(timezone.now()), pk=existing.pk).exists():
                    raise ValidationError(f"{hostname} is already claimed by another project.", code="domain_taken")
                log.info("domain claim released hostname=%s from_project=%s", hostname, existing.service.project_id)
                if existing.verified:
                    released.append(existing.service.project)
                existing.delete()
            domain = CustomDomain.objects.create(service=service, hostname=hostname,
                                                 token=secrets.token_urlsafe(24))
            _audit(audit.Action.DOMAIN_ADDED, domain, actor, took_over_expired_claim=bool(existing))
    except IntegrityError:  # a concurrent claim of the same name won the race
        raise ValidationError(f"{hostname} is already claimed by another project.", code="domain_taken") from None
    for project in released:
        _redeploy(project, f"{hostname} was released to another project")
    return domain


def delete_domain(domain: CustomDomain, actor: User | None = None) -> None:
    """Remove a claim; a verified one is unrouted by the redeploy this starts."""
    project, was_verified = domain.service.project, domain.verified
    with transaction.atomic():
        _audit(audit.Action.DOMAIN_REMOVED, domain, actor)
        domain.delete()
    if was_verified:
        _redeploy(project, f"{domain.hostname} was removed")


class DnsCheck:
    """What the DNS says about one claim: ok, and a sentence a user can act on."""

    def __init__(self, ok: bool, message: str) -> None:
        self.ok, self.message = ok, message


def resolver() -> dns.resolver.Resolver:
    """DNS_VERIFY_NAMESERVERS ("host:port" entries), else the system's resolvers."""
    configured = settings.DNS_VERIFY_NAMESERVERS
    res = dns.resolver.Resolver(configure=not configured)
    if configured:
        res.nameservers = [_nameserver(entry) for entry in configured]
    res.lifetime = float(settings.DNS_VERIFY_TIMEOUT)
    res.cache = None  # a record the user just created must be seen at once
    return res


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    """"1.2.3.4", "1.2.3.4:5353" or "[::1]:5353"."""
    host, port = entry, "53"
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    return dns.nameserver.Do53Nameserver(host, int(port))


def _lookup(res: dns.resolver.Resolver, name: str, rdtype: str) -> list[str] | str:
    """The record values, or a short reason why there are none."""
    try:
        answer = res.resolve(name, rdtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return f"{name} does not exist"
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        return f"the DNS did not answer for {name} ({exc.__class__.__name__})"
    values = []
    for rr in answer.rrset or []:
        if rdtype == "TXT":
            values.append(b"".join(rr.strings).decode(errors="replace"))
        else:
            values.append(rr.target.to_text().rstrip(".").lower())
    return values or f"{name} has no {rdtype} record"


def check_dns(domain: CustomDomain) -> DnsCheck:
    """Either proof is enough: the TXT record with the token, or a CNAME to the service's platform host."""
    res = resolver()
    target = domain.service.public_host
    txt = _lookup(res, challenge_name(domain.hostname), "TXT")
    if isinstance(txt, list) and domain.token in txt:
        return DnsCheck(True, f"TXT record {challenge_name(domain.hostname)} found")
    cname = _lookup(res, domain.hostname, "CNAME")
    if isinstance(cname, list) and target in cname:
        return DnsCheck(True, f"{domain.hostname} is a CNAME to {target}")
    found = []
    if isinstance(txt, list):
        found.append(f"{challenge_name(domain.hostname)} has TXT {', '.join(repr(v) for v in txt)}, not the token")
    else:
        found.append(txt)
    if isinstance(cname, list):
        found.append(f"{domain.hostname} is a CNAME to {', '.join(cname)}, not to {target}")
    elif cname != txt:
        found.append(cname)
    return DnsCheck(False, f"Not verified: {'; '.join(found)}. Create a TXT record {challenge_name(domain.hostname)} "
                           f"with the value {domain.token}, or a CNAME record {domain.hostname} pointing to {target}.")


def verify_domain(domain: CustomDomain, actor: User | None = None) -> DnsCheck:
    """Check the DNS now. A newly verified domain is routed at once (a redeploy of the project, when it has a
    release); a failed check leaves a pending claim pending and says what record to create."""
    result = check_dns(domain)
    now = timezone.now()
    newly = result.ok and not domain.verified
    domain.checked_at, domain.message = now, result.message[:500]
    if result.ok:
        domain.status, domain.failing_since = DomainStatus.VERIFIED, None
        domain.verified_at = domain.verified_at if domain.verified_at and not newly else now
    elif domain.verified and domain.failing_since is None:
        domain.failing_since = now  # still routed; released to others only after DOMAINS_CLAIM_EXPIRY_DAYS
    with transaction.atomic():
        domain.save(update_fields=["status", "verified_at", "failing_since", "checked_at", "message"])
        if newly:
            _audit(audit.Action.DOMAIN_VERIFIED, domain, actor, proof=result.message)
    log.info("domain checked hostname=%s ok=%s", domain.hostname, result.ok)
    if newly:
        _redeploy(domain.service.project, f"{domain.hostname} was verified", actor)
    return result


def reverify_all() -> int:
    """Re-check every verified domain (beat). A domain whose record has gone stays routed, shown as failing, and
    becomes free for another project to claim after DOMAINS_CLAIM_EXPIRY_DAYS. Returns how many were checked."""
    count = 0
    for domain in CustomDomain.objects.filter(status=DomainStatus.VERIFIED).select_related("service__project"):
        verify_domain(domain)
        count += 1
    return count


def _redeploy(project: Project, why: str, actor: User | None = None) -> None:
    from projects import releases  # releases renders with these domains: a cycle at import time

    if project.deleted_at or project.latest_release() is None:
        return
    try:
        releases.redeploy(project, actor)
    except releases.DeployError as exc:
        log.warning("domain change not applied project=%s why=%r: %s", project.pk, why, exc)


def routed_hosts(project: Project) -> dict[str, list[str]]:
    """service name -> its verified custom host names (what the manifests route)."""
    hosts: dict[str, list[str]] = {}
    for service, hostname in CustomDomain.objects.filter(service__project=project, status=DomainStatus.VERIFIED) \
            .order_by("hostname").values_list("service__name", "hostname"):
        hosts.setdefault(service, []).append(hostname)
    return hosts


# --- what people see ----------------------------------------------------------------------------------


def observed_certificates(project: Project) -> dict[str, dict[str, Any]]:
    """Certificate name (= service) -> what the agent last saw of it (agent/observe.py)."""
    state = ObservedProject.objects.filter(cluster_id=project.cluster_id, namespace=project.namespace) \
        .values_list("state", flat=True).first() or {}
    return state.get("certificates") or {}


def certificate_state(service: Service, hostname: str, certificates: dict[str, dict[str, Any]]) -> dict[str, str]:
    """{"state": none | pending | ready | failed, "reason"} of the certificate serving `hostname` for `service`."""
    if not service.tls:
        return {"state": "none", "reason": "no TLS on this cluster yet: served over http://"}
    cert = certificates.get(service.name)
    if cert is None or hostname not in (cert.get("dns_names") or []):
        return {"state": "pending", "reason": "waiting for cert-manager to take the certificate request"}
    if cert.get("ready") == "True":
        return {"state": "ready", "reason": cert.get("message") or "certificate issued"}
    if cert.get("failed"):
        return {"state": "failed", "reason": cert.get("message") or cert.get("reason") or "issuing failed"}
    return {"state": "pending", "reason": cert.get("message") or "issuing"}


def domain_dict(domain: CustomDomain, certificates: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    service = domain.service
    if certificates is None:
        certificates = observed_certificates(service.project)
    certificate = certificate_state(service, domain.hostname, certificates) if domain.verified else {
        "state": "none", "reason": "the domain is not verified yet"}
    return {"id": domain.pk, "service": service.name, "hostname": domain.hostname,
            "display_name": display_name(domain.hostname), "status": domain.status,
            "verified_at": domain.verified_at.isoformat() if domain.verified_at else None,
            "checked_at": domain.checked_at.isoformat() if domain.checked_at else None,
            "failing_since": domain.failing_since.isoformat() if domain.failing_since else None,
            "message": domain.message,
            "url": f"{'https' if service.tls else 'http'}://{domain.hostname}/" if domain.verified else "",
            "records": {"txt": {"name": challenge_name(domain.hostname), "value": domain.token},
                        "cname": {"name": domain.hostname, "target": service.public_host}},
            "certificate": certificate}
