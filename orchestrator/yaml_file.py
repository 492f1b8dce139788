"""Reading a YAML config safely: no arbitrary objects, YAML 1.2 floats, and no
file that expands past ``MAX_CONFIG_NODES`` values through aliases.

Every problem is one ``ConfigError`` line naming the file and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from orchestrator.contract.bounded import ReadRefused, read_bounded
from orchestrator.contract.limits import MAX_CONFIG_BYTES
from orchestrator.errors import ConfigError
from orchestrator.runner_spec import kind_of

__all__ = ["MAX_CONFIG_NODES", "parse_yaml", "read_config_file"]

# libyaml's parser when PyYAML has it (7x faster on a 100,000-seed list); the
# resolvers and constructors below are Python either way.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# A config expands to at most this many YAML nodes, aliases counted each time
# they are used. Ample for 100,000 seeds; a "billion laughs" file of ten lines
# that expands to 10**9 nodes is refused before anything is built from it.
MAX_CONFIG_NODES = 2_000_000


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """A safe loader (no arbitrary objects) with two changes.

    PyYAML follows YAML 1.1, where ``1e-3`` (no dot) is a string; researchers
    write learning rates that way and mean a float, as YAML 1.2 does.

    Aliases are shared when loaded, but everything after loading (overrides,
    the fingerprint, the run's JSON) walks them once per use; so the node
    graph's expanded size is measured before it is constructed."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        return self.construct_document(node)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class _TooBig(Exception):
    pass


def _check_expanded_size(root: yaml.Node) -> None:
    """Count the nodes ``root`` stands for once every alias is expanded, in time
    linear in the nodes actually written (each shared node is sized once)."""
    size: dict[int, int] = {}  # collections only; a scalar counts 1
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            total = 1 + sum([size.get(id(c), 1) for c in children])
            if total > MAX_CONFIG_NODES:
                raise _TooBig(
                    f"it expands to over {MAX_CONFIG_NODES:,} values (aliases counted "
                    "each time they are used); write the values out or use fewer aliases"
                )
            size[key] = total
            continue
        if key in size or isinstance(node, yaml.ScalarNode):
            continue
        if key in open_nodes:  # reached again from inside itself: DFS order proves it
            raise _TooBig("an alias refers to a block that contains it; remove the loop")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend(
            (c, False) for c in children if not isinstance(c, yaml.ScalarNode) and id(c) not in size
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def parse_yaml(text: str) -> Any:
    """Raises yaml.YAMLError, or ConfigError for a file that expands too far."""
    try:
        return yaml.load(text, Loader=_Loader)
    except _TooBig as exc:
        raise ConfigError(str(exc)) from None
    except RecursionError:
        raise ConfigError("the YAML is nested too deeply; flatten it") from None


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = read_bounded(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path} (give the path to a YAML file)") from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path} is a folder, not a config file; give the path to a YAML file"
        ) from None
    except ReadRefused as exc:
        raise ConfigError(f"{exc}; give the path to a YAML file") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the config {path} ({exc.strerror}); check its permissions"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}); is it really the YAML config?"
        ) from None
    if not text.strip():
        raise ConfigError(
            f"{path} is empty; write a config in it (see conf/examples/quickstart.yaml)"
        )
    try:
        loaded = parse_yaml(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: {problem}{where}; fix the YAML syntax there") from None
    if loaded is None:
        raise ConfigError(
            f"{path} holds only comments; write a config in it (see conf/examples/quickstart.yaml)"
        )
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, not a {kind_of(loaded)}"
        )
    return loaded
