"""The OPC UA server's security: Basic256Sha256 endpoints, user names and passwords, the
server's certificate (made on first start) and the clients' trust list."""

from __future__ import annotations

import hashlib
import logging
import socket
from pathlib import Path

from edge.access.passwords import verify_password
from edge.opcua.settings import OpcUaSettings

log = logging.getLogger(__name__)


async def secure(server, settings: OpcUaSettings, pki: Path, station: str) -> str:
    """Endpoints, identity tokens, certificate and trust list of `server`; returns the
    certificate's SHA-1 thumbprint (what a PLC's trust list shows)."""
    from asyncua import ua

    policies = [
        ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ua.SecurityPolicyType.Basic256Sha256_Sign,
    ]
    if settings.allow_none:
        log.warning(
            "opcua.allow_none: the unsecured endpoint is offered; user names and passwords may cross "
            "the network in the clear. Use it only on an isolated test network."
        )
        policies.append(ua.SecurityPolicyType.NoSecurity)
    server.set_security_policy(policies)
    server.set_identity_tokens([ua.UserNameIdentityToken])  # never anonymous
    return await _certificates(server, settings, pki, station)


async def _certificates(server, settings: OpcUaSettings, pki: Path, station: str) -> str:
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from asyncua.crypto.truststore import TrustStore
    from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
    from cryptography.x509.oid import ExtendedKeyUsageOID

    own, trusted = pki / "own", pki / "trusted"
    own.mkdir(parents=True, exist_ok=True)
    trusted.mkdir(parents=True, exist_ok=True)
    key, cert = own / "key.pem", own / "cert.der"
    made = not cert.is_file()
    await setup_self_signed_certificate(
        key,
        cert,
        settings.application_uri,
        socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        {"commonName": f"EIAD Edge {station}", "organizationName": "EIAD Edge"},
    )
    key.chmod(0o600)
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))
    thumbprint = hashlib.sha1(cert.read_bytes()).hexdigest()
    if made:
        log.info("OPC UA: made the server's certificate %s (thumbprint %s)", cert, thumbprint)
    if not any(p.suffix.lower() in (".der", ".pem", ".crt") for p in trusted.iterdir()):
        log.warning(
            "OPC UA: no client certificate in %s: every connection is refused until the PLC's certificate "
            "(.der or .pem) is copied there and the station restarted",
            trusted,
        )
        server.set_certificate_validator(_refuse_all)
        return thumbprint
    store = TrustStore([trusted], [])
    await store.load()
    options = CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT
    server.set_certificate_validator(CertificateValidator(options, store))
    return thumbprint


async def _refuse_all(certificate, app_description) -> None:
    from asyncua import ua
    from asyncua.ua.uaerrors import ServiceError

    raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)


class Users:
    """asyncua's user manager: the configured users with their password hashes; nobody else."""

    def __init__(self, settings: OpcUaSettings) -> None:
        self._hashes = {name: user.stored_hash() for name, user in settings.users.items()}

    def get_user(self, iserver, username=None, password=None, certificate=None):
        from asyncua.crypto.permission_rules import User, UserRole

        stored = self._hashes.get(username or "")
        if stored is None or password is None or not verify_password(str(password), stored):
            log.warning("OPC UA: refused a session for user %r (unknown user or wrong password)", username)
            return None
        return User(role=UserRole.User, name=username)
