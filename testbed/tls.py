"""A self-signed certificate for 127.0.0.1 and localhost, made by the openssl CLI for one test run.

HTTP/2 in browsers and in httpx needs TLS (ALPN chooses the protocol), so every HTTP/2 test
serves one of these; clients trust it through `client_context()`, never by turning checks off.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class Certificate:
    """A PEM certificate and its unencrypted key."""

    cert: Path
    key: Path

    def client_context(self, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
        """A client TLS context that trusts this certificate alone."""
        context = ssl.create_default_context(cafile=str(self.cert))
        if alpn:
            context.set_alpn_protocols(list(alpn))
        return context


def self_signed(directory: Path) -> Certificate:
    """Write a one-day certificate for 127.0.0.1 and localhost into `directory`."""
    if OPENSSL is None:  # .ci/run installs it; Debian's base image usually has it
        raise RuntimeError("the openssl CLI is needed to make the test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return Certificate(cert, key)
