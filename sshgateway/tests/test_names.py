"""User names the gateway understands, the host key, and where users are told how to connect."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import Client

from accounts.services import create_organization
from projects import services
from projects.access import AmbiguousName, get_service_for_login, ssh_login
from sshgateway.hostkey import host_key_fingerprint, load_or_create_host_key


@pytest.fixture
def web(project):
    return project.services.create(name="web", image="nginx:1.27")


def test_it_finds_a_service_by_project_and_by_organization_project_and_service(personas, web):
    assert get_service_for_login(personas.member, "shop.web")[0] == web
    assert get_service_for_login(personas.member, "acme.shop.web")[0] == web


@pytest.mark.parametrize("login", ["shop.web", "acme.shop.web", "shop.nope", "nope.web", "acme.nope.web", "shop",
                                   "a.b.c.d", ".web"])
def test_another_tenants_project_looks_like_a_missing_one(personas, web, login):
    with pytest.raises(Http404):
        get_service_for_login(personas.outsider, login)


def test_a_viewer_may_not_open_a_shell(viewer, web):
    with pytest.raises(PermissionDenied, match="Viewer"):
        get_service_for_login(viewer, "shop.web")


def test_a_project_name_in_two_of_the_users_organizations_is_refused_listing_both_forms(personas, cluster, web):
    beta = create_organization(personas.owner, "Beta")
    other = services.create_project(beta, personas.owner, "Shop", cluster)
    other.services.create(name="web", image="nginx:1.27")
    with pytest.raises(AmbiguousName, match="use acme.shop.web or beta.shop.web"):
        get_service_for_login(personas.owner, "shop.web")
    assert get_service_for_login(personas.owner, "beta.shop.web")[0].project == other
    assert ssh_login(personas.owner, web.project, "web") == "acme.shop.web"
    # bob is only in Acme: the short form stays his.
    assert get_service_for_login(personas.member, "shop.web")[0] == web
    assert ssh_login(personas.member, web.project, "web") == "shop.web"


def test_the_host_key_is_made_once_and_kept(settings):
    first = load_or_create_host_key()
    assert os.stat(settings.SSH_HOST_KEY_PATH).st_mode & 0o077 == 0  # the private key is the owner's alone
    assert load_or_create_host_key().get_fingerprint() == first.get_fingerprint() == host_key_fingerprint()


def test_the_fingerprint_shown_is_the_one_ssh_keygen_prints(settings, tmp_path):
    if not shutil.which("ssh-keygen"):
        pytest.skip("NOT RUN: ssh-keygen (OpenSSH client) is not installed")
    shown = host_key_fingerprint()
    printed = subprocess.run(["ssh-keygen", "-lf", str(settings.SSH_HOST_KEY_PATH)], capture_output=True,
                             text=True, check=True).stdout
    assert printed.split()[1] == shown


def test_the_keys_page_shows_the_host_fingerprint_and_the_command(personas):
    client = Client()
    client.force_login(personas.owner)
    page = client.get("/settings/ssh-keys/").content.decode()
    assert host_key_fingerprint() in page
    assert "ssh -p 2222 &lt;project&gt;.&lt;service&gt;@ssh.example.net" in page


def test_each_service_row_shows_the_exact_command_to_those_who_may_deploy(personas, viewer, web):
    def row(user) -> str:
        client = Client()
        client.force_login(user)
        return client.get("/o/acme/projects/shop/services/").content.decode()

    assert "ssh -p 2222 shop.web@ssh.example.net" in row(personas.member)
    assert "ssh -p" not in row(viewer)


def test_port_22_needs_no_option(personas, settings, web):
    settings.SSH_PUBLIC_PORT = 22
    client = Client()
    client.force_login(personas.member)
    assert "ssh shop.web@ssh.example.net" in client.get("/o/acme/projects/shop/services/").content.decode()
