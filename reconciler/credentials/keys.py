"""Where the local secret store's key comes from: `MCP_RECONCILER_KEY`, else a key file created on first use.

The CLI and the operator call `load_store_key` once at start-up and hand the key to `LocalSecretStore` /
`MintedSecretStore`; nothing reads the environment behind their back. The key file holds the urlsafe base64
text of 32 random bytes, is created with mode 0600 (its directory 0700), and is refused when group or others
can read it. Default location: next to the SQLite registry (`<file>.key`), else `~/.config/mcp-reconciler/key`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from reconciler.credentials.errors import SecretKeyProblem
from reconciler.credentials.sealing import decode_key, encode_key, generate_key

KEY_ENV = "MCP_RECONCILER_KEY"
KEY_FILE_ENV = "MCP_RECONCILER_KEY_FILE"
KEY_FILE_MODE = 0o600
KEY_DIR_MODE = 0o700
KEY_SUFFIX = ".key"


def default_key_path(database_path: str | None, *, home: Path | None = None) -> Path:
    """`<sqlite file>.key` beside a SQLite registry, else `~/.config/mcp-reconciler/key`."""
    if database_path:
        database = Path(database_path)
        return database.with_name(database.name + KEY_SUFFIX)
    return (home or Path.home()) / ".config" / "mcp-reconciler" / "key"


def load_store_key(
    *,
    environ: Mapping[str, str],
    key_file: Path | None = None,
    database_path: str | None = None,
    create: bool = True,
) -> bytes:
    """The local store key: `$MCP_RECONCILER_KEY`, else the key file (`key_file`, `$MCP_RECONCILER_KEY_FILE`,
    or the default path), created on first use unless `create` is False. Raises `SecretKeyProblem`."""
    inline = environ.get(KEY_ENV)
    if inline:
        return decode_key(inline, source=f"${KEY_ENV}")
    path = key_file or (Path(environ[KEY_FILE_ENV]) if environ.get(KEY_FILE_ENV) else None)
    path = (path or default_key_path(database_path)).expanduser()
    if path.exists():
        return read_key_file(path)
    if not create:
        raise SecretKeyProblem(f"no key for the local secret store: set ${KEY_ENV} or create {path}")
    return create_key_file(path)


def read_key_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretKeyProblem(
                f"key file {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}): chmod 600 {path}"
            )
        text = path.read_text(encoding="ascii")
    except OSError as err:
        raise SecretKeyProblem(f"cannot read key file {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise SecretKeyProblem(f"key file {path} is not urlsafe base64 text") from err
    return decode_key(text, source=f"key file {path}")


def create_key_file(path: Path) -> bytes:
    """Write a new random key with mode 0600; when another process won the race, use the key it wrote."""
    key = generate_key()
    try:
        path.parent.mkdir(mode=KEY_DIR_MODE, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError:
        return read_key_file(path)
    except OSError as err:
        raise SecretKeyProblem(f"cannot create key file {path}: {err.strerror}") from err
    try:
        os.fchmod(descriptor, KEY_FILE_MODE)  # the umask may only have narrowed it; make it exact
        os.write(descriptor, (encode_key(key) + "\n").encode("ascii"))
    finally:
        os.close(descriptor)
    return key
