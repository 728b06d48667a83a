"""Limits on what one GraphQL operation may ask: nesting depth and an estimated cost (rows x fields), checked
before anything runs, so a single request can neither recurse through albums -> tracks -> album -> ... nor ask
for millions of rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    value_from_ast,
)

MAX_DEPTH = 8  # the deepest useful query (track > similar > track > album > artists > image) has 6
MAX_COST = 20_000
# A list field without a size argument is counted as this many rows (its typical length), else LIST_ESTIMATE.
# A connection's `nodes` are the rows its `first` already counted.
LIST_ESTIMATES = {"nodes": 1, "tracks": 25, "albums": 10, "artists": 3, "candidates": 5, "external": 2}
LIST_ESTIMATE = 10
# Arguments that say how many rows a field returns, with the most the server serves.
SIZE_ARGUMENTS = {"first": 200, "k": 100}


class LimitExceeded(Exception):
    """The operation asks for more than one request may."""


@dataclass(frozen=True)
class Measure:
    depth: int
    cost: int


def measure(schema: GraphQLSchema, operation: OperationDefinitionNode,
            fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any] | None) -> Measure:
    """Depth and cost of a validated operation (introspection fields are free: tools need them)."""
    root = schema.get_root_type(operation.operation)
    depth, cost = _selection(schema, root, operation.selection_set, fragments, variables or {})
    return Measure(depth, cost)


def check(schema: GraphQLSchema, operation: OperationDefinitionNode,
          fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any] | None) -> Measure:
    found = measure(schema, operation, fragments, variables)
    if found.depth > MAX_DEPTH:
        raise LimitExceeded(f"this query nests {found.depth} levels deep; the most allowed is {MAX_DEPTH}: "
                            "ask for the nested objects in a second query")
    if found.cost > MAX_COST:
        raise LimitExceeded(f"this query could return about {found.cost} values; the most allowed is {MAX_COST}: "
                            "ask for fewer rows (first, k) or fewer nested lists")
    return found


def _named(field_type: Any) -> tuple[Any, bool]:
    is_list = False
    while isinstance(field_type, GraphQLNonNull | GraphQLList):
        is_list = is_list or isinstance(field_type, GraphQLList)
        field_type = field_type.of_type
    return field_type, is_list


def _selection(schema: GraphQLSchema, parent: Any, selection_set: SelectionSetNode | None,
               fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any],
               seen: frozenset[str] = frozenset()) -> tuple[int, int]:
    """(deepest nesting below, cost) of a selection set on `parent`."""
    if selection_set is None:
        return 0, 0
    depth, cost = 0, 0
    for node in selection_set.selections:
        if isinstance(node, FieldNode):
            name = node.name.value
            if name.startswith("__"):
                continue
            definition = parent.fields.get(name) if isinstance(parent, GraphQLObjectType) else None
            if definition is None:
                continue
            child_type, is_list = _named(definition.type)
            multiplier = _rows(node, definition, variables, is_list)
            below, inner = _selection(schema, child_type, node.selection_set, fragments, variables, seen)
            depth = max(depth, 1 + below if node.selection_set else 0)
            cost += 1 + multiplier * inner
        elif isinstance(node, InlineFragmentNode):
            target = schema.get_type(node.type_condition.name.value) if node.type_condition else parent
            below, inner = _selection(schema, target, node.selection_set, fragments, variables, seen)
            depth, cost = max(depth, below), cost + inner
        elif isinstance(node, FragmentSpreadNode):
            fragment = fragments.get(node.name.value)
            if fragment is None or node.name.value in seen:
                continue  # validation reports unknown fragments and cycles
            target = schema.get_type(fragment.type_condition.name.value)
            below, inner = _selection(schema, target, fragment.selection_set, fragments, variables,
                                      seen | {node.name.value})
            depth, cost = max(depth, below), cost + inner
    return depth, cost


def _rows(node: FieldNode, definition: Any, variables: dict[str, Any], is_list: bool) -> int:
    """How many rows a field may return: its size argument (as given or its default, capped), else an estimate."""
    for name, cap in SIZE_ARGUMENTS.items():
        argument = definition.args.get(name)
        if argument is None:
            continue
        given = next((a for a in node.arguments or () if a.name.value == name), None)
        value = value_from_ast(given.value, argument.type, variables) if given is not None else argument.default_value
        if isinstance(value, int) and not isinstance(value, bool):
            return max(1, min(value, cap))
        return cap
    return LIST_ESTIMATES.get(node.name.value, LIST_ESTIMATE) if is_list else 1


def root_fields(operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]) -> set[str]:
    """Names of the fields an operation asks at its root (through fragments too)."""
    names: set[str] = set()
    pending, seen = [operation.selection_set], set()
    while pending:
        selection_set = pending.pop()
        for node in selection_set.selections if selection_set else ():
            if isinstance(node, FieldNode):
                names.add(node.name.value)
            elif isinstance(node, InlineFragmentNode):
                pending.append(node.selection_set)
            elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
                seen.add(node.name.value)
                if node.name.value in fragments:
                    pending.append(fragments[node.name.value].selection_set)
    return names
