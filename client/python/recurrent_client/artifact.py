"""The model artifact file format, as core/artifact.h writes and reads it.

An artifact is the 8-byte magic ``b"RCNTMDL1"`` followed by a serialized ``ArtifactEnvelope``
(proto/recurrent/v1/model.proto)::

    ArtifactEnvelope {
      format_version  FORMAT_VERSION, outside the checksum
      crc32c          CRC-32C (Castagnoli) of `artifact`
      artifact        serialized ModelArtifact, whose own format_version must equal the envelope's
    }

The server refuses an artifact whose magic, checksum or versions do not match
(ImportModel answers INVALID_ARGUMENT naming the problem).
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from recurrent_client._stubs import model_pb2

MAGIC = b"RCNTMDL1"  # kArtifactMagic in core/artifact.h
FORMAT_VERSION = 1  # kArtifactFormatVersion in core/artifact.h: the version this module writes


class ArtifactError(ValueError):
    """The bytes are not an intact artifact of a format this module reads."""


def _make_crc32c_table() -> tuple[int, ...]:
    # Reflected form of the Castagnoli polynomial 0x1EDC6F41: bits are processed LSB first.
    polynomial = 0x82F63B78
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ polynomial if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """Returns the CRC-32C (Castagnoli) of `data`, as core/crc32c.h computes it.

    Initial value and final XOR 0xFFFFFFFF (the iSCSI / ext4 / LevelDB CRC):
    ``crc32c(b"123456789") == 0xE3069283`` and ``crc32c(b"") == 0``. Pass a previous result as
    `crc` to continue it: ``crc32c(b, crc32c(a)) == crc32c(a + b)``.

    Pure Python, one table lookup per byte (roughly 10 MB/s): fine for the small models of an
    example, slow for a large one.
    """
    table = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def encode_artifact(artifact: model_pb2.ModelArtifact) -> bytes:
    """Returns the artifact file bytes (magic + checksummed envelope) of `artifact`.

    `artifact.format_version` must be 0 (it is then written as FORMAT_VERSION; `artifact` itself
    is not modified) or FORMAT_VERSION. The server validates the content (spec, tensor names and
    shapes) on import; this function only frames it.
    """
    if artifact.format_version not in (0, FORMAT_VERSION):
        raise ArtifactError(
            f"artifact.format_version is {artifact.format_version}; this module writes "
            f"version {FORMAT_VERSION}"
        )
    if artifact.format_version == 0:
        copy = model_pb2.ModelArtifact()
        copy.CopyFrom(artifact)
        copy.format_version = FORMAT_VERSION
        artifact = copy
    payload = artifact.SerializeToString(deterministic=True)
    envelope = model_pb2.ArtifactEnvelope(
        format_version=FORMAT_VERSION, crc32c=crc32c(payload), artifact=payload
    )
    return MAGIC + envelope.SerializeToString(deterministic=True)


def decode_artifact(data: bytes) -> model_pb2.ModelArtifact:
    """Parses artifact file bytes (e.g. from ExportModel) and verifies magic, versions and CRC.

    Raises ArtifactError naming the first problem found. Only the framing is checked, not whether
    the tensors fit the spec (the server checks that when it imports an artifact).
    """
    data = bytes(data)
    if not data.startswith(MAGIC):
        raise ArtifactError(
            f"not a model artifact: expected the magic {MAGIC!r}, found {data[:8]!r}")
    envelope = model_pb2.ArtifactEnvelope()
    try:
        envelope.ParseFromString(data[len(MAGIC):])
    except DecodeError as error:
        raise ArtifactError(f"model artifact is corrupt or truncated: {error}") from error
    if envelope.format_version == 0 or envelope.format_version > FORMAT_VERSION:
        raise ArtifactError(
            f"model artifact has format version {envelope.format_version}; this module reads "
            f"1 to {FORMAT_VERSION}"
        )
    computed = crc32c(envelope.artifact)
    if computed != envelope.crc32c:
        raise ArtifactError(
            f"model artifact is corrupt: CRC-32C mismatch (stored 0x{envelope.crc32c:08x}, "
            f"computed 0x{computed:08x})"
        )
    artifact = model_pb2.ModelArtifact()
    try:
        artifact.ParseFromString(envelope.artifact)
    except DecodeError as error:
        raise ArtifactError(
            f"model artifact passed its checksum but does not parse: {error}") from error
    if artifact.format_version != envelope.format_version:
        raise ArtifactError(
            f"model artifact: format version {artifact.format_version} inside disagrees with "
            f"version {envelope.format_version} on its envelope"
        )
    return artifact
