"""Reading the repository's YAML and TOML with the line of every key, for findings that point at it."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from backend_iac.doctor.findings import DoctorInputError

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class MarkedDict(dict[Any, Any]):
    """A YAML mapping that remembers its own line and the line of each key (1-based)."""

    line: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int | None:
        return self.key_lines.get(key, self.line)


class MarkedList(list[Any]):
    """A YAML sequence that remembers its own line and the line of each item (1-based)."""

    line: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.item_lines: list[int] = []


class _MarkingLoader(_BaseLoader):  # type: ignore[misc, valid-type]  # CSafeLoader when libyaml is there
    """SafeLoader (YAML 1.1, so a bare `on` key reads as True) that builds MarkedDict and MarkedList."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Iterator[MarkedDict]:
    data = MarkedDict()
    data.line = node.start_mark.line + 1
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue  # a complex key: GitHub's workflow syntax never uses one
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = key_node.start_mark.line + 1


def _construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> Iterator[MarkedList]:
    data = MarkedList()
    data.line = node.start_mark.line + 1
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_lines.append(item.start_mark.line + 1)


_MarkingLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_MarkingLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def load_yaml(root: Path, path: Path) -> Any:
    """The document with marks; DoctorInputError (file, line) when it is missing or malformed."""
    name = relative(root, path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DoctorInputError(name, None, "not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DoctorInputError(name, None, f"unreadable ({error})") from None
    try:
        return yaml.load(text, Loader=_MarkingLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        raise DoctorInputError(name, line, f"malformed YAML: {error.problem or error}") from None
    except yaml.YAMLError as error:
        raise DoctorInputError(name, None, f"malformed YAML: {error}") from None


def load_mapping(root: Path, path: Path) -> MarkedDict:
    """A YAML file whose top level must be a mapping (Pulumi files, workflows)."""
    document = load_yaml(root, path)
    if not isinstance(document, MarkedDict):
        raise DoctorInputError(relative(root, path), 1, "expected a mapping at the top level")
    return document


def load_toml(root: Path, path: Path) -> dict[str, Any]:
    name = relative(root, path)
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise DoctorInputError(name, None, "not found") from None
    except tomllib.TOMLDecodeError as error:
        line = getattr(error, "lineno", None)
        raise DoctorInputError(name, line, f"malformed TOML: {error}") from None
    except OSError as error:
        raise DoctorInputError(name, None, f"unreadable ({error})") from None
