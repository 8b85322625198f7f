"""Evaluations under Pulumi's mocks, remembered by the content of everything they depend on.

Evaluating the program costs about a second, nearly all of it importing Pulumi and azure-native and
running the mock engine; the answer depends only on the program's files, its config and the installed
packages. `backend-iac plan` and `doctor` therefore look the evaluation up here first, under a key that
hashes every input:

- the config values the program receives (Pulumi.yaml's defaults overlaid with Pulumi.<stack>.yaml's
  values: the only way those two files reach the program) and the stack's name;
- every file under the checkout's `stack/` and every `.py` under its `service/` (the program reads
  service constants), and the same for this tool's checkout when it is another one (a checkout without
  `service/` falls back to this one's);
- this tool's own evaluation code (`evaluate.py`, this module), whose mocks shape the answer;
- the Python version and the name and version of every installed distribution (their `.dist-info`
  directories), and every `PULUMI_*` environment variable.

Any change to any of them gives another key, so an edit is seen on the next run. An entry is written only
when it reads back equal to the evaluation it came from (the JSON form loses nothing), and an unreadable,
foreign or corrupt entry is a miss, never an error. Failed evaluations are not remembered.

The entries live in `$BACKEND_IAC_CACHE_DIR`, else `$XDG_CACHE_HOME/backend-iac`, else
`~/.cache/backend-iac` (the XDG Base Directory layout), at most MAX_ENTRIES of them (the least recently
used go first), each at most MAX_ENTRY_BYTES; an unwritable directory means no cache, not a failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar, cast

from backend_iac.evaluate import DeclaredResource, Evaluation, evaluate_program, stack_config_values
from stack.config import StackConfig

T = TypeVar("T")

CACHE_DIR_ENV: Final = "BACKEND_IAC_CACHE_DIR"
MAX_ENTRIES: Final = 64
MAX_ENTRY_BYTES: Final = 8 * 1024 * 1024
# Bump when the entry layout changes: older entries then stop matching.
FORMAT: Final = 1

_THIS_CHECKOUT: Final = Path(__file__).resolve().parents[1]
_TOOL_FILES: Final = (
    _THIS_CHECKOUT / "backend_iac" / "evaluate.py",
    _THIS_CHECKOUT / "backend_iac" / "evaluation_cache.py",
)
# The dataclasses an entry may hold, by name: nothing else is ever built from a file.
_CLASSES: Final[dict[str, type[Any]]] = {
    "Evaluation": Evaluation,
    "DeclaredResource": DeclaredResource,
    "StackConfig": StackConfig,
}


class _NotRepresentable(Exception):
    """A value the entry format cannot carry exactly: the evaluation is then not cached."""


def default_directory() -> Path:
    """Where entries live: $BACKEND_IAC_CACHE_DIR, else $XDG_CACHE_HOME/backend-iac, else ~/.cache/backend-iac."""
    configured = os.environ.get(CACHE_DIR_ENV, "")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # XDG Base Directory Specification: $XDG_CACHE_HOME, default $HOME/.cache; "All paths set in these
    # environment variables must be absolute" (a relative one is invalid and ignored). Read in a copy of
    # the spec: ilya-fedin.pages.freedesktop.org/xdg-specs/basedir-spec/latest/ar01s02.html.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "backend-iac"


class EvaluationCache:
    """Evaluations (and what is computed from them alone) keyed by the content of their inputs, as JSON
    files in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / "evaluations"

    @classmethod
    def for_user(cls) -> EvaluationCache:
        return cls(default_directory())

    def evaluate_stack(self, root: Path, stack: str) -> Evaluation:
        """`evaluate.evaluate_stack(root, stack)`, remembered."""
        return self.evaluate_program(root, stack, stack_config_values(root, stack))

    def evaluate_program(self, checkout: Path, stack: str, values: Mapping[str, str]) -> Evaluation:
        """`evaluate.evaluate_program(checkout, stack, values)`, remembered."""
        key = evaluation_key(checkout, stack, values)
        found = self._load(key)
        if isinstance(found, Evaluation):
            return found
        evaluation = evaluate_program(checkout, stack, values)
        self._store(key, evaluation)
        return evaluation

    def remember(self, kind: str, inputs: Sequence[object], compute: Callable[[], T]) -> T:
        """`compute()`, remembered under the hash of `kind`, `inputs` (bytes, or values the entry format
        carries) and the environment (environment_fingerprint): together everything it depends on. A value
        the format cannot carry exactly is computed every time and not remembered."""
        digest = hashlib.sha256()
        try:
            parts = [
                part if isinstance(part, bytes) else json.dumps(_encode(part), allow_nan=False).encode()
                for part in (kind, FORMAT, environment_fingerprint(), *inputs)
            ]
        except (_NotRepresentable, ValueError, TypeError, RecursionError):
            return compute()
        for part in parts:
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        key = f"{kind}-{digest.hexdigest()}"
        found = self._load(key)
        if found is not None:
            return cast("T", found)
        value = compute()
        self._store(key, value)
        return value

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def _load(self, key: str) -> Any:
        """The value stored under `key`, or None (missing, too big, foreign, corrupt)."""
        path = self._path(key)
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_ENTRY_BYTES + 1)
            if len(raw) > MAX_ENTRY_BYTES:
                return None
            document = json.loads(raw)
            if (
                not isinstance(document, dict)
                or document.get("format") != FORMAT
                or document.get("key") != key
            ):
                return None
            value = _decode(document["value"])
            os.utime(path)  # recently used: pruned last
        except (OSError, ValueError, KeyError, TypeError, RecursionError, _NotRepresentable):
            return None
        return value

    def _store(self, key: str, value: object) -> None:
        try:
            text = json.dumps({"format": FORMAT, "key": key, "value": _encode(value)}, allow_nan=False)
            if len(text) > MAX_ENTRY_BYTES or _decode(json.loads(text)["value"]) != value:
                return
        except (_NotRepresentable, ValueError, TypeError, RecursionError):
            return
        with contextlib.suppress(OSError):
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Written whole and renamed into place: a concurrent reader sees the old entry or the new one.
            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    file.write(text)
                os.replace(temporary, self._path(key))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
            self._prune()

    def _prune(self) -> None:
        entries = []
        for path in self.directory.glob("*.json"):
            with contextlib.suppress(OSError):
                entries.append((path.stat().st_mtime, path))
        entries.sort(reverse=True)
        for _, path in entries[MAX_ENTRIES:]:
            with contextlib.suppress(OSError):
                path.unlink()


def evaluation_key(checkout: Path, stack: str, values: Mapping[str, str]) -> str:
    """The sha256 of every input of one evaluation (see the module's docstring), as hex."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        # Length-prefixed, so that no two different sequences of inputs hash alike.
        for part in (label.encode(), data):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)

    add("format", str(FORMAT).encode())
    add("stack", stack.encode())
    add("config", json.dumps(sorted(values.items())).encode())
    add("environment", environment_fingerprint())
    for path in _TOOL_FILES:
        add(f"tool:{path.name}", _read(path))
    checkouts = dict.fromkeys((checkout.resolve(), _THIS_CHECKOUT))
    for index, root in enumerate(checkouts):
        for path in _program_files(root):
            add(f"checkout{index}:{path.relative_to(root).as_posix()}", _read(path))
    return digest.hexdigest()


def environment_fingerprint() -> bytes:
    """The Python version, every installed distribution's name and version, and the PULUMI_* variables."""
    pulumi_env = sorted((name, value) for name, value in os.environ.items() if name.startswith("PULUMI_"))
    return json.dumps(
        [f"{sys.version} {sys.implementation.cache_tag}", sorted(_installed_distributions()), pulumi_env]
    ).encode()


def source_files(*paths: Path) -> list[bytes]:
    """Each file's content, marked (a missing or unreadable file differs from any content)."""
    return [_read(path) for path in paths]


def _read(path: Path) -> bytes:
    """b"1" and the content, or b"0" and why not: a missing file and any content never hash alike."""
    try:
        return b"1" + path.read_bytes()
    except OSError as error:
        return b"0" + type(error).__name__.encode()


def _program_files(root: Path) -> list[Path]:
    """Every file under root/stack and every .py under root/service, in a stable order; no bytecode."""

    def walk(folder: Path, wanted: Callable[[str], bool]) -> Iterator[Path]:
        for directory, subdirectories, files in os.walk(folder):
            subdirectories[:] = sorted(name for name in subdirectories if name != "__pycache__")
            for name in sorted(files):
                if wanted(name):
                    yield Path(directory) / name

    return [
        *walk(root / "stack", lambda name: not name.endswith((".pyc", ".pyo"))),
        *walk(root / "service", lambda name: name.endswith(".py")),
    ]


def _installed_distributions() -> set[str]:
    """`name-version.dist-info` (or .egg-info) of every distribution on sys.path: one directory listing each."""
    found: set[str] = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found.update(f"{entry}:{name}" for name in names if name.endswith((".dist-info", ".egg-info")))
    return found


# The entry format: JSON, with tuples, frozensets and the three dataclasses tagged so that they read back as
# what they were. A dict key must be a string that is not a tag.
_TAGS: Final = ("__tuple__", "__frozenset__", "__dataclass__")


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item) for item in value]}
    if isinstance(value, frozenset):
        return {"__frozenset__": sorted(_encode(item) for item in value)}
    if isinstance(value, dict):
        if not all(isinstance(key, str) and key not in _TAGS for key in value):
            raise _NotRepresentable
        return {key: _encode(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and _CLASSES.get(type(value).__name__) is type(value):
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__dataclass__": type(value).__name__, "fields": fields}
    raise _NotRepresentable


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(_decode(item) for item in value["__tuple__"])
    if "__frozenset__" in value:
        return frozenset(_decode(item) for item in value["__frozenset__"])
    if "__dataclass__" in value:
        cls = _CLASSES.get(str(value["__dataclass__"]))
        fields = value.get("fields")
        if cls is None or not isinstance(fields, dict):
            raise _NotRepresentable
        return cls(**{name: _decode(item) for name, item in fields.items()})
    return {key: _decode(item) for key, item in value.items()}
