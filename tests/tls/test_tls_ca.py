"""The sandbox's CA (sandbox/core/ca.py): made once, key files 0600, a leaf every client accepts for the served
names and nothing else, and `vipps-sandbox ca`."""

from __future__ import annotations

import base64
import datetime
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from sandbox.core.ca import CA_CERT, CA_KEY, LEAF_CERT, LEAF_KEY, Authority, CAError, ca_directory, user_data_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def key_body(path: Path) -> str:
    """The base64 of a PEM key, the part that must never be printed."""
    return "".join(line for line in path.read_text().splitlines() if not line.startswith("-----"))


def test_the_ca_is_made_once_with_key_files_readable_by_the_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)  # even a umask that leaves everything open gives 0600 keys
    try:
        authority = Authority(tmp_path / "ca")
        assert authority.ensure() is True
    finally:
        os.umask(old)
    assert mode(authority.key_path) == 0o600 and mode(authority.leaf_key_path) == 0o600
    assert mode(authority.cert_path) == 0o644 and mode(authority.directory) == 0o700
    assert sorted(p.name for p in authority.directory.iterdir() if not p.name.startswith(".")) == \
        sorted([CA_CERT, CA_KEY, LEAF_CERT, LEAF_KEY])  # no temporary file left behind
    cert, key, leaf = (authority.cert_path.read_bytes(), authority.key_path.read_bytes(),
                       authority.leaf_cert_path.read_bytes())
    assert Authority(tmp_path / "ca").ensure() is False  # the second start keeps all of it
    assert (authority.cert_path.read_bytes(), authority.key_path.read_bytes(),
            authority.leaf_cert_path.read_bytes()) == (cert, key, leaf)


def verifier(authority: Authority, name: x509.GeneralName):
    ca = x509.load_pem_x509_certificate(authority.cert_path.read_bytes())
    return PolicyBuilder().store(Store([ca])).build_server_verifier(name)


@pytest.mark.parametrize("name", ["apitest.vipps.no", "api.vipps.no", "localhost", "127.0.0.1", "::1"])
def test_the_leaf_is_valid_for_every_served_name(tmp_path: Path, name: str) -> None:
    import ipaddress

    authority = Authority(tmp_path)
    authority.ensure()
    leaf = x509.load_pem_x509_certificate(authority.leaf_cert_path.read_bytes())
    try:
        general: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        general = x509.DNSName(name)
    verifier(authority, general).verify(leaf, [])  # raises if a client would refuse it (RFC 5280, CA/B rules)


def forge(authority: Authority, name: str) -> x509.Certificate:
    """A server certificate for `name`, signed with the CA's own key (as whoever stole it would)."""
    ca = x509.load_pem_x509_certificate(authority.cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(authority.key_path.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))


def test_the_ca_cannot_vouch_for_any_other_site(tmp_path: Path) -> None:
    """Name constraints: a certificate for another name, signed with the CA's own key, is refused (the same
    certificate for a served name is accepted, so nothing else refuses it)."""
    authority = Authority(tmp_path)
    authority.ensure()
    verifier(authority, x509.DNSName("api.vipps.no")).verify(forge(authority, "api.vipps.no"), [])
    with pytest.raises(VerificationError, match="constraint|name"):
        verifier(authority, x509.DNSName("bank.no")).verify(forge(authority, "bank.no"), [])


def test_a_leaf_that_is_missing_or_for_another_ca_is_made_anew(tmp_path: Path) -> None:
    authority = Authority(tmp_path)
    authority.ensure()
    authority.leaf_cert_path.write_bytes(b"not a certificate")
    authority.ensure()
    leaf = x509.load_pem_x509_certificate(authority.leaf_cert_path.read_bytes())
    verifier(authority, x509.DNSName("apitest.vipps.no")).verify(leaf, [])


def test_a_certificate_without_its_key_is_an_error_that_quotes_nothing(tmp_path: Path) -> None:
    authority = Authority(tmp_path)
    authority.ensure()
    secret = key_body(authority.key_path)
    authority.key_path.unlink()
    with pytest.raises(CAError, match="vipps-sandbox-ca.key is missing"):
        authority.ensure()
    authority.key_path.write_text("-----BEGIN PRIVATE KEY-----\n" + secret[:-8] + "\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CAError) as caught:
        authority.ensure()
    assert secret[:20] not in str(caught.value)


def test_the_directory_is_ca_dir_else_state_else_the_user_data_dir(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_data_dir() == tmp_path / "xdg" / "vipps-sandbox"
    assert ca_directory(None, None) == tmp_path / "xdg" / "vipps-sandbox"
    assert ca_directory(None, tmp_path / "state") == tmp_path / "state"
    assert ca_directory(tmp_path / "ca", tmp_path / "state") == tmp_path / "ca"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_data_dir() == tmp_path / "home" / ".local" / "share" / "vipps-sandbox"


def ca_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", "ca", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_the_ca_command_prints_the_path_and_how_to_trust_it(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("VIPPS_SANDBOX_CA_DIR", None)
    env.pop("VIPPS_SANDBOX_STATE", None)
    default = tmp_path / "xdg" / "vipps-sandbox"
    done = ca_command("--path", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{default / CA_CERT}\n"
    assert mode(default / CA_KEY) == 0o600

    done = ca_command(env=env)
    assert done.returncode == 0, done.stderr
    cert = default / CA_CERT
    for hint in (f"NODE_EXTRA_CA_CERTS={cert}", f"REQUESTS_CA_BUNDLE={cert}", f"SSL_CERT_FILE={cert}",
                 f"curl --cacert {cert}", "keytool -importcert", "update-ca-certificates"):
        assert hint in done.stdout, hint
    assert key_body(default / CA_KEY)[:24] not in done.stdout + done.stderr

    done = ca_command("--ca-dir", str(tmp_path / "elsewhere"), "--path", env=env)
    assert done.stdout.strip() == str(tmp_path / "elsewhere" / CA_CERT)
    done = ca_command("--path", env={**env, "VIPPS_SANDBOX_STATE": str(tmp_path / "state")})
    assert done.stdout.strip() == str(tmp_path / "state" / CA_CERT)
    done = ca_command("--path", env={**env, "VIPPS_SANDBOX_CA_DIR": str(tmp_path / "byvar")})
    assert done.stdout.strip() == str(tmp_path / "byvar" / CA_CERT)


def test_the_ca_key_is_never_printed_by_serve(tmp_path: Path) -> None:
    """`serve --tls-port 0` prints where the CA certificate is, never anything of its key."""
    env = {**os.environ, "VIPPS_SANDBOX_CA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "serve", "--port", "0", "--prod-port", "0",
                             "--tls-port", "0", "--proxy-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    output = "".join(lines) + rest
    assert "CA certificate (made now; trust it" in output and str(tmp_path / CA_CERT) in output
    assert "serving HTTPS for both environments on https://127.0.0.1:" in output
    assert "proxy for apitest.vipps.no and api.vipps.no on http://127.0.0.1:" in output
    for key in (tmp_path / CA_KEY, tmp_path / LEAF_KEY):
        body = key_body(key)
        assert body[:24] not in output and base64.b64decode(body).hex()[:24] not in output
