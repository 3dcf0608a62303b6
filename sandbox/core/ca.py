"""The sandbox's own certificate authority, so unmodified clients reach it on https://apitest.vipps.no.

On first use (`serve --tls-port`, `serve --proxy-port`, `vipps-sandbox ca`) a CA is made in its directory
(`--ca-dir`, else the `--state` directory, else the user's data directory), and a leaf certificate for the
names the sandbox answers to over TLS, signed by it. A client trusts the CA file (`vipps-sandbox-ca.pem`)
and nothing else changes.

- The CA is **name-constrained** to those names (apitest.vipps.no, api.vipps.no, localhost, 127.0.0.0/8,
  ::1): put into a system trust store, a copy of its key still cannot vouch for any other site.
- Key files are written mode 0600, atomically (a temporary file, fsynced, then renamed), under a lock, so two
  sandboxes starting at once on one directory end with one CA. The CA key is never logged or printed, and
  nothing else the sandbox writes (snapshots, the journal) reads it.
- ECDSA P-256 keys: every TLS stack in use takes them, and a handshake costs a signature of microseconds
  (an RSA-2048 one costs a millisecond), which is most of what a fresh connection costs.
- Certificates are dated by the real clock, never the virtual one: clients check them against theirs.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import secrets
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandbox.core.net import remember_sni

CA_CERT = "vipps-sandbox-ca.pem"
CA_KEY = "vipps-sandbox-ca.key"
LEAF_CERT = "vipps-sandbox-tls.pem"
LEAF_KEY = "vipps-sandbox-tls.key"
LOCK = ".vipps-sandbox-ca.lock"
#: The names the leaf certificate carries (its subjectAltName) and the CA may vouch for.
LEAF_NAMES = ("apitest.vipps.no", "api.vipps.no", "localhost")
LEAF_IPS = ("127.0.0.1", "::1")
PERMITTED_NETWORKS = ("127.0.0.0/8", "::1/128")
CA_DAYS = 3650
#: Under 398 days: what browsers accept for a leaf (they apply it to public CAs only, but some tools check).
LEAF_DAYS = 397
RENEW_BEFORE = datetime.timedelta(days=30)  # a leaf closer than this to its end is made anew at start
BACKDATE = datetime.timedelta(hours=1)  # a client whose clock is a little behind still accepts the certificates


class CAError(ValueError):
    """The CA directory holds something the sandbox cannot use (a certificate without its key, say)."""


def user_data_dir() -> Path:
    """Where the CA lives when neither --ca-dir nor --state says: XDG_DATA_HOME or ~/.local/share (on Windows
    LOCALAPPDATA), then vipps-sandbox."""
    base = os.environ.get("XDG_DATA_HOME") or ""
    if not base and sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "vipps-sandbox"


def ca_directory(ca_dir: Path | None, state: Path | None) -> Path:
    """--ca-dir, else the --state directory, else the user's data directory."""
    if ca_dir is not None:
        return ca_dir
    if state is not None:
        return state
    return user_data_dir()


@dataclass(frozen=True)
class Authority:
    """The files of one CA directory; `ensure()` makes whatever is missing or no longer valid."""

    directory: Path

    @property
    def cert_path(self) -> Path:
        return self.directory / CA_CERT

    @property
    def key_path(self) -> Path:
        return self.directory / CA_KEY

    @property
    def leaf_cert_path(self) -> Path:
        return self.directory / LEAF_CERT

    @property
    def leaf_key_path(self) -> Path:
        return self.directory / LEAF_KEY

    def ensure(self) -> bool:
        """Makes the CA (first use) and a valid leaf. True when a new CA was made (clients must trust it)."""
        if not self.directory.exists():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(self.directory / LOCK):
            made = False
            if not self.cert_path.exists() and not self.key_path.exists():
                self._make_ca()
                made = True
            ca_cert, ca_key = self._load_ca()
            if made or not self._leaf_is_valid(ca_cert):
                self._make_leaf(ca_cert, ca_key)
            return made

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context with the leaf, HTTP/1.1 by ALPN, TLS 1.2 or later; it remembers each
        connection's SNI name (`sni_name`), which picks the environment when the Host header does not."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.leaf_cert_path, self.leaf_key_path)
        context.set_alpn_protocols(["http/1.1"])
        context.sni_callback = remember_sni
        return context

    # -- making and checking the files ------------------------------------------------------------------
    def _make_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vipps-sandbox (a local test CA, not Vipps MobilePay)"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"vipps-sandbox local CA {secrets.token_hex(4)}"),
        ])
        now = _now()
        public = key.public_key()
        permitted: list[x509.GeneralName] = [x509.DNSName(host) for host in LEAF_NAMES]
        permitted += [x509.IPAddress(ipaddress.ip_network(net)) for net in PERMITTED_NETWORKS]
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - BACKDATE).not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=True, crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None),
                               critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
                .sign(key, hashes.SHA256()))
        _write_atomic(self.key_path, _key_pem(key), 0o600)  # the key first: a cert without it is refused
        _write_atomic(self.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.cert_path.exists() or not self.key_path.exists():
            missing = self.key_path if self.cert_path.exists() else self.cert_path
            raise CAError(f"the CA in {self.directory} is incomplete: {missing.name} is missing. Remove the other "
                          f"file ({CA_CERT if missing.name == CA_KEY else CA_KEY}) to make a new CA, then trust the "
                          "new one.")
        try:
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        except (ValueError, TypeError):
            # Never the parser's own message: it may quote what it read, and that is the key.
            raise CAError(f"the CA files in {self.directory} cannot be read as a PEM certificate and an "
                          "unencrypted PEM key; remove both to make a new CA.") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise CAError(f"{CA_KEY} in {self.directory} is not the key of {CA_CERT}; remove both to make a new CA.")
        if cert.not_valid_after_utc <= _now():
            raise CAError(f"the CA in {self.directory} expired on {cert.not_valid_after_utc:%Y-%m-%d}; remove "
                          f"{CA_CERT} and {CA_KEY} to make a new one, then trust the new one.")
        return cert, key

    def _leaf_is_valid(self, ca_cert: x509.Certificate) -> bool:
        try:
            leaf = x509.load_pem_x509_certificate(self.leaf_cert_path.read_bytes())
            key = serialization.load_pem_private_key(self.leaf_key_path.read_bytes(), password=None)
            leaf.verify_directly_issued_by(ca_cert)
            names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            return False
        wanted = set(LEAF_NAMES) | set(LEAF_IPS)
        have = set(names.get_values_for_type(x509.DNSName)) | {
            str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
        return (key.public_key() == leaf.public_key() and wanted <= have
                and leaf.not_valid_after_utc - RENEW_BEFORE > _now() and leaf.not_valid_before_utc <= _now())

    def _make_leaf(self, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        public = key.public_key()
        names: list[x509.GeneralName] = [x509.DNSName(host) for host in LEAF_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in LEAF_IPS]
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vipps-sandbox"),
                                         x509.NameAttribute(NameOID.COMMON_NAME, LEAF_NAMES[0])]))
                .issuer_name(ca_cert.subject).public_key(public).serial_number(x509.random_serial_number())
                .not_valid_before(now - BACKDATE).not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=False, crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write_atomic(self.leaf_key_path, _key_pem(key), 0o600)
        _write_atomic(self.leaf_cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Writes a file whole or not at all: a temporary file created with `mode` (never wider, whatever the
    umask leaves), fsynced, renamed over `path`, and the directory fsynced."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not on every platform (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` where the platform has flock (two sandboxes starting on one directory)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; starting two sandboxes at once on one new directory is on the user
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


TRUST_HINTS = """\
The sandbox's CA certificate: {cert}

Trust it in the client that calls https://apitest.vipps.no or https://api.vipps.no (one of these):
  Node.js (the official SDK)  NODE_EXTRA_CA_CERTS={cert}
  Python requests             REQUESTS_CA_BUNDLE={cert}
  Python httpx, OpenSSL, Go   SSL_CERT_FILE={cert}
  curl                        curl --cacert {cert} https://apitest.vipps.no/...
  Java                        keytool -importcert -noprompt -alias vipps-sandbox -file {cert} \\
                                -keystore truststore.p12 -storepass changeit
                              then run with -Djavax.net.ssl.trustStore=truststore.p12 \\
                                -Djavax.net.ssl.trustStorePassword=changeit
  Debian, Ubuntu (system)     sudo cp {cert} /usr/local/share/ca-certificates/vipps-sandbox-ca.crt && \\
                                sudo update-ca-certificates

The CA vouches only for apitest.vipps.no, api.vipps.no, localhost and loopback addresses (name constraints),
so trusting it does not let it vouch for any other site. Then either resolve the two names to the sandbox's
--tls-port (a hosts entry, docker compose network aliases) or use its proxy: HTTPS_PROXY=http://127.0.0.1:PORT
with `vipps-sandbox serve --proxy-port PORT`.
"""


def trust_hints(cert: Path) -> str:
    """What `vipps-sandbox ca` prints: the CA file and how each kind of client trusts it."""
    return TRUST_HINTS.format(cert=cert)
