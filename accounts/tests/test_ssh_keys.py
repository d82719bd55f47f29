"""SSH public keys: validation, fingerprints as OpenSSH shows them, duplicates refused."""

from __future__ import annotations

import shutil
import subprocess

import asyncssh
import pytest
from django.core.exceptions import ValidationError

from accounts.models import SSHKey
from accounts.services import add_ssh_key, parse_public_key


def public_key(alg: str = "ssh-ed25519", comment: str = "me@laptop", **kw) -> str:
    key = asyncssh.generate_private_key(alg, comment=comment, **kw)
    return key.export_public_key("openssh").decode().strip()


@pytest.mark.django_db
def test_it_stores_a_key_with_the_fingerprint_openssh_prints(tmp_path, personas):
    if not shutil.which("ssh-keygen"):
        pytest.skip("NOT RUN: ssh-keygen (OpenSSH client) is not installed")
    text = public_key()
    (tmp_path / "k.pub").write_text(text + "\n")
    expected = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True,
                              check=True).stdout.split()[1]
    key = add_ssh_key(personas.owner, "", text)
    assert key.fingerprint == expected
    assert key.name == "me@laptop"  # the comment names the key when no name is given
    assert key.public_key == " ".join(text.split()[:2])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Paste a public key"),
        ("ssh-ed25519 AAAAnotbase64!!", "not a valid OpenSSH public key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----", "private key"),
        ("hello world", "not a valid OpenSSH public key"),
    ],
)
def test_it_explains_what_is_wrong_with_a_bad_key(text, message):
    with pytest.raises(ValidationError, match=message):
        parse_public_key(text)


def test_it_refuses_short_rsa_keys_and_accepts_long_ones():
    with pytest.raises(ValidationError, match="at least 2048 bits; this one has 1024"):
        parse_public_key(public_key("ssh-rsa", key_size=1024))
    assert parse_public_key(public_key("ssh-rsa", key_size=2048))[0] == "ssh-rsa"
    assert parse_public_key(public_key("ecdsa-sha2-nistp256"))[0] == "ecdsa-sha2-nistp256"


def test_it_refuses_two_keys_pasted_at_once():
    with pytest.raises(ValidationError, match="exactly one key"):
        parse_public_key(public_key() + "\n" + public_key())


@pytest.mark.django_db
def test_it_refuses_a_key_registered_already_even_by_someone_else(client, personas):
    text = public_key()
    add_ssh_key(personas.owner, "laptop", text)
    client.force_login(personas.outsider)
    response = client.post("/settings/ssh-keys/", {"name": "mine", "public_key": text})
    assert response.status_code == 200 and b"already registered" in response.content
    assert SSHKey.objects.count() == 1


@pytest.mark.django_db
def test_it_lets_users_delete_only_their_own_keys(client, personas):
    key = add_ssh_key(personas.owner, "laptop", public_key())
    client.force_login(personas.outsider)
    assert client.post(f"/settings/ssh-keys/{key.pk}/delete/").status_code == 404
    assert b"laptop" not in client.get("/settings/ssh-keys/").content
    client.force_login(personas.owner)
    assert client.post(f"/settings/ssh-keys/{key.pk}/delete/").status_code == 302
    assert not SSHKey.objects.exists()
