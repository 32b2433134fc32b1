"""Building the browser extension: the .zip, and for force-installation a signed .crx, its update
manifest and the enterprise policy JSON (``dip-cds plugin build-extension``).

The extension's sources are ``browser-extension/`` in the repository plus the panel's own files
(``widget/``), copied in at build time so the extension and the script tag run the same panel; an
MV3 extension may not load code from the network. With a hospital's RSA key the manifest carries
the public key, so the extension id is fixed (the same unpacked, zipped or as .crx) and the policy
JSON can name it. The .crx is the CRX3 format Chromium verifies (a protobuf header with the
SHA-256/RSA proof of the zip); the zip is byte-for-byte reproducible.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import widget

SOURCE_DIR = Path(__file__).resolve().parents[1] / "browser-extension"
WIDGET_FILES = ("dip-cds.js", "dip-cds.css")
ZIP_DATE = (2026, 1, 1, 0, 0, 0)
CRX_MAGIC = b"Cr24"


class ExtensionBuildError(ValueError):
    """The sources or the key cannot make an extension (said in one line)."""


@dataclass(frozen=True)
class Built:
    files: dict[str, bytes]
    version: str
    extension_id: str | None


def _public_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def extension_id(public_der: bytes) -> str:
    """Chromium's id of an extension: the first 16 bytes of SHA-256(public key), hex digits as a–p."""
    return "".join(chr(ord("a") + int(c, 16)) for c in hashlib.sha256(public_der).hexdigest()[:32])


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """The hospital's extension key (PEM); created (0600) when the file does not exist yet."""
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise ExtensionBuildError(f"{path}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ExtensionBuildError(f"{path}: Chromium extensions are signed with RSA keys")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


def collect(source: Path = SOURCE_DIR, key: rsa.RSAPrivateKey | None = None) -> Built:
    """Every file of the extension (relative path → bytes), the manifest completed with the key."""
    if not (source / "manifest.json").is_file():
        raise ExtensionBuildError(
            f"no extension sources at {source} (run from a dip-cds checkout, or pass --source)"
        )
    files: dict[str, bytes] = {}
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source).as_posix()
        if path.is_file() and not rel.startswith("widget/"):
            files[rel] = path.read_bytes()
    widget_dir = Path(widget.__file__).parent
    for name in WIDGET_FILES:
        files[f"widget/{name}"] = (widget_dir / name).read_bytes()
    manifest: dict[str, Any] = json.loads(files["manifest.json"])
    ext_id = None
    if key is not None:
        der = _public_der(key)
        manifest["key"] = base64.b64encode(der).decode()
        ext_id = extension_id(der)
    files["manifest.json"] = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode()
    return Built(files=files, version=str(manifest["version"]), extension_id=ext_id)


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A reproducible zip: sorted names, one fixed date, the same permissions."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name])
    return out.getvalue()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def crx3(archive: bytes, key: rsa.RSAPrivateKey) -> bytes:
    """The CRX3 package: ``Cr24``, version 3, the CrxFileHeader (RSA proof + signed crx id), the zip."""
    der = _public_der(key)
    signed_data = _field(1, hashlib.sha256(der).digest()[:16])  # SignedData.crx_id
    message = b"CRX3 SignedData\x00" + struct.pack("<I", len(signed_data)) + signed_data + archive
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    proof = _field(1, der) + _field(2, signature)  # AsymmetricKeyProof
    header = _field(2, proof) + _field(10000, signed_data)  # sha256_with_rsa, signed_header_data
    return CRX_MAGIC + struct.pack("<II", 3, len(header)) + header + archive


def update_manifest(ext_id: str, version: str, crx_url: str) -> str:
    """The update manifest (gupdate XML) Chromium polls at the policy's update_url."""
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<gupdate xmlns='http://www.google.com/update2/response' protocol='2.0'>\n"
        f"  <app appid={quoteattr(ext_id)}>\n"
        f"    <updatecheck codebase={quoteattr(crx_url)} version={quoteattr(version)} />\n"
        "  </app>\n"
        "</gupdate>\n"
    )


def enterprise_policy(
    ext_id: str, update_url: str, hosts: list[str], config: dict[str, Any] | None
) -> dict[str, Any]:
    """Chromium/Edge policy: force-install from the hospital's server, allowed only on the HIS and
    service hosts, configured centrally (``3rdparty`` → the extension's managed storage)."""
    settings: dict[str, Any] = {"installation_mode": "force_installed", "update_url": update_url}
    if hosts:
        settings["runtime_blocked_hosts"] = ["*://*"]
        settings["runtime_allowed_hosts"] = hosts
    policy: dict[str, Any] = {
        "ExtensionSettings": {ext_id: settings},
        "ExtensionInstallSources": [update_url.rsplit("/", 1)[0] + "/*"],
    }
    if config:
        policy["3rdparty"] = {"extensions": {ext_id: config}}
    return policy


def host_patterns(config: dict[str, Any] | None) -> list[str]:
    """``scheme://host`` patterns of the HIS pages and the service, for the policy's host limits."""
    from urllib.parse import urlsplit

    hosts: list[str] = []
    for url in [*(config or {}).get("pages", []), (config or {}).get("serviceUrl", "")]:
        parts = urlsplit(str(url).replace("*://", "https://"))
        if parts.hostname:
            pattern = f"*://{parts.hostname}"
            if pattern not in hosts:
                hosts.append(pattern)
    return hosts


def build(
    output: Path,
    *,
    key_path: Path | None = None,
    update_url: str | None = None,
    config: dict[str, Any] | None = None,
    source: Path = SOURCE_DIR,
    unpacked: bool = False,
) -> list[Path]:
    """Write the extension into ``output`` (a directory): the zip (or the unpacked tree) and, with a
    key, the .crx, ``updates.xml`` and ``enterprise-policy.json``. Returns the paths written."""
    key = load_or_create_key(key_path) if key_path is not None else None
    built = collect(source, key)
    output.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if unpacked:
        for name, data in built.files.items():
            target = output / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return [output]
    archive = zip_bytes(built.files)
    base = f"dip-cds-extension-{built.version}"
    (output / f"{base}.zip").write_bytes(archive)
    written.append(output / f"{base}.zip")
    if key is not None and built.extension_id is not None:
        crx_path = output / f"{base}.crx"
        crx_path.write_bytes(crx3(archive, key))
        written.append(crx_path)
        url = (update_url or "https://cds.hospital.cn/extension/updates.xml").rstrip("/")
        crx_url = url.rsplit("/", 1)[0] + f"/{base}.crx"
        (output / "updates.xml").write_text(update_manifest(built.extension_id, built.version, crx_url))
        written.append(output / "updates.xml")
        policy = enterprise_policy(built.extension_id, url, host_patterns(config), config)
        (output / "enterprise-policy.json").write_text(
            json.dumps(policy, ensure_ascii=False, indent=2) + "\n"
        )
        written.append(output / "enterprise-policy.json")
    return written
