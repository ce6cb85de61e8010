"""Reading YAML config and batch files, defensively: bounded in size, nesting and alias expansion,
with the line of every key (for one-line errors that point at the file and line) and duplicate keys
refused (PyYAML would silently keep the last of two).

Shared by ``ce_lab.config`` (run configs), ``ce_lab.batches.spec`` (batch files) and
``ce_lab.runs.read`` (YAML read back from run folders).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ce_lab.errors import ConfigError


def key_lines(text: str) -> tuple[dict[tuple[str, ...], int], tuple[str, int] | None]:
    """The 1-based line of every mapping key by its key path, and the first key written twice in
    one mapping (dotted, line) or None: PyYAML would silently keep the last of two."""
    marks: dict[tuple[str, ...], int] = {}
    duplicates: list[tuple[str, int]] = []

    def visit(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                key = str(k.value)
                if key in seen and k.tag != "tag:yaml.org,2002:merge":
                    duplicates.append((".".join((*path, key)), k.start_mark.line + 1))
                seen.add(key)
                marks.setdefault((*path, key), k.start_mark.line + 1)
                visit(v, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                visit(item, path)

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return marks, None
    if root is not None:
        visit(root, ())
    return marks, (duplicates[0] if duplicates else None)


MAX_FILE_BYTES = 1 << 20  # config and batch files; real ones are a few hundred bytes
MAX_FILE_TEXT = "1 MiB"
MAX_DEPTH = 64  # nesting of mappings and lists; a config uses three levels
MAX_VALUES = 100_000  # values after expanding aliases (&anchor / *alias); guards alias bombs


def shape_problem(text: str) -> str | None:
    """What makes ``text`` too deep or too big once aliases are expanded, or None.

    One pass over the parser's events (PyYAML's parser is iterative, its composer recursive): the
    expanded size of every anchored node is known when the node ends, so an alias costs one
    addition however deep the aliases nest. Raises yaml.YAMLError for malformed YAML.
    """
    sizes: dict[str, int] = {}  # anchor -> values in the node it names, aliases expanded
    open_anchors: set[str] = set()
    starts: list[tuple[int, str | None]] = []
    values = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(starts) >= MAX_DEPTH:
                return (f"{event.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels "
                        "of mappings and lists")
            starts.append((values, event.anchor))
            if event.anchor:
                open_anchors.add(event.anchor)
            values += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            begin, anchor = starts.pop()
            if anchor:
                sizes[anchor] = values - begin
                open_anchors.discard(anchor)
        elif isinstance(event, yaml.ScalarEvent):
            values += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                return f"{event.start_mark.line + 1}: alias *{event.anchor} refers to itself"
            values += sizes.get(event.anchor, 0)  # an undefined alias: the composer says so
        if values > MAX_VALUES:
            return (f"{event.start_mark.line + 1}: more than {MAX_VALUES} values once aliases "
                    "are expanded; a config needs far fewer")
    return None


def read_limited(path: Path) -> str:
    # A regular file of at most the limit, read without blocking: a FIFO, /dev/zero or a huge
    # file is refused before anything is read (ce_lab.safe_io).
    from ce_lab.safe_io import UnreadableFile, read_limited_bytes

    try:
        raw = read_limited_bytes(path, MAX_FILE_BYTES)
    except UnreadableFile as e:
        if "(a directory)" in e.reason:
            raise IsADirectoryError(path) from None
        if "limit" in e.reason:
            raise ConfigError(f"{path}: larger than {MAX_FILE_TEXT}, the limit for config and "
                              "batch files") from None
        raise ConfigError(f"{path}: {e.reason}") from None
    return raw.decode("utf-8")


def read_yaml_mapping(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """A YAML file's top-level mapping and its key lines; ConfigError for anything else."""
    path = Path(path)
    try:
        text = read_limited(path)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path is a folder, not a file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    try:
        problem = shape_problem(text)
        if problem:
            raise ConfigError(f"{path}:{problem}")
        data = yaml.safe_load(text)
        marks, dup = key_lines(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}{line}: malformed YAML: {problem}") from None
    except RecursionError:  # a guard behind MAX_DEPTH: never a traceback
        raise ConfigError(f"{path}: nested too deeply to read") from None
    if dup:
        raise ConfigError(f"{path}:{dup[1]}: duplicate key '{dup[0]}'; keep one of them")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of config keys, not {type(data).__name__}"
        )
    return data, marks
