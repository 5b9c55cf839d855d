"""Content-addressed node ids, computed before anything runs.

A node is one artifact of one stage. Its id is the first 12 hex digits of the
sha256 of the canonical JSON of ``{stage, version, params, parents}``, where
``parents`` maps a role name to the parent's node id. Changing a parameter changes
the id of that node and of everything downstream; reverting it gives back the old
ids, whose nodes are still in the store, so nothing re-runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sae_difficulty.utils.io import to_jsonable

ID_LENGTH = 12


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the bytes that are hashed."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def node_id(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:ID_LENGTH]


@dataclass(eq=False)
class Node:
    """One artifact: a stage, the parameters that matter to it and its parents."""

    stage: str
    key: str
    version: str
    params: dict[str, Any]
    parents: dict[str, Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = to_jsonable(self.params)
        self.spec: dict[str, Any] = {
            "stage": self.stage,
            "version": self.version,
            "params": self.params,
            "parents": {role: parent.id for role, parent in sorted(self.parents.items())},
        }
        self.id: str = node_id(self.spec)

    def __repr__(self) -> str:
        return f"Node({self.stage}/{self.id} {self.key})"


class Plan:
    """All nodes one config reaches, addressable by id and by a readable key."""

    def __init__(self, versions: Mapping[str, str]):
        self.versions = dict(versions)
        self.nodes: dict[str, Node] = {}
        self.by_key: dict[str, Node] = {}

    def add(self, stage: str, key: str, params: Mapping[str, Any], parents: Mapping[str, Node] | None = None) -> Node:
        """Declare a node; declaring the same key twice must give the same node."""
        if stage not in self.versions:
            raise KeyError(f"stage {stage!r} has no code version; known stages: {sorted(self.versions)}")
        node = Node(stage, key, self.versions[stage], dict(params), dict(parents or {}))
        existing = self.by_key.get(key)
        if existing is not None:
            if existing.id != node.id:
                raise ValueError(f"node key {key!r} declared twice with different specs")
            return existing
        # Two keys may share one id (same stage, params and parents): they are the same artifact.
        self.nodes.setdefault(node.id, node)
        self.by_key[key] = node
        return self.nodes[node.id]

    def __getitem__(self, node_id_: str) -> Node:
        return self.nodes[node_id_]

    def __contains__(self, node_id_: str) -> bool:
        return node_id_ in self.nodes

    def key(self, key: str) -> Node:
        return self.by_key[key]

    def stage(self, stage: str) -> list[Node]:
        return sorted((n for n in self.nodes.values() if n.stage == stage), key=lambda n: n.key)

    def ancestors(self, nodes: Iterable[Node]) -> set[str]:
        """Ids of the given nodes and everything upstream of them."""
        seen: set[str] = set()
        stack = list(nodes)
        while stack:
            node = stack.pop()
            if node.id in seen:
                continue
            seen.add(node.id)
            stack.extend(node.parents.values())
        return seen
