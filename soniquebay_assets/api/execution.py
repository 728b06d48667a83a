"""graphql-core's execution with a shortcut for plain values.

Most of a listing's fields are a key of the row dict returning a string or a number. graphql-core runs each one
through resolve info, argument coercion, an awaitable check and value completion: about 10 us per field, 6 ms for
a 50-row page. A field that has graphene's default resolver, no arguments and a scalar (or list of scalars) type
is read and serialized directly here; everything else, and every null in a non-null field (so the error is
graphql-core's own), goes the ordinary way. Measured on the bench catalog: a 50-row tracks page 22 ms -> see
`soniquebay bench api`."""

from __future__ import annotations

import functools
from typing import Any

from graphene.types.field import source_resolver
from graphene.types.resolver import dict_or_attr_resolver
from graphql import (
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    is_leaf_type,
)
from graphql.execution.execute import ExecutionContext, get_field_def
from graphql.pyutils import Path, Undefined

_SLOW = None


def never_awaitable(_value: Any) -> bool:
    return False  # every resolver of this schema is synchronous


def _plain_field(field_def: Any, nodes: list) -> tuple | None:
    """(key, default, leaf type, non-null, is list, items non-null) for a plain field, else None."""
    if field_def is None or any(node.arguments for node in nodes):
        return None
    resolve = field_def.resolve
    if not isinstance(resolve, functools.partial) or resolve.keywords:
        return None
    if resolve.func is dict_or_attr_resolver and len(resolve.args) == 2:
        key, default = resolve.args
    elif resolve.func is source_resolver and len(resolve.args) == 1:
        key, default = resolve.args[0], None
    else:
        return None
    field_type, non_null = field_def.type, False
    if isinstance(field_type, GraphQLNonNull):
        field_type, non_null = field_type.of_type, True
    is_list, items_non_null = False, False
    if isinstance(field_type, GraphQLList):
        field_type, is_list = field_type.of_type, True
        if isinstance(field_type, GraphQLNonNull):
            field_type, items_non_null = field_type.of_type, True
    if not is_leaf_type(field_type):
        return None
    return key, default, field_type, non_null, is_list, items_non_null


class PlainFieldsExecution(ExecutionContext):
    """ExecutionContext whose plain fields skip the per-field machinery (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[int, tuple[Any, list]] = {}

    def _plan(self, parent_type: GraphQLObjectType, fields: dict[str, list]) -> list:
        # the same `fields` dict serves every row of a list (graphql-core caches sub-field collection)
        cached = self._plans.get(id(fields))
        if cached is not None and cached[0] is fields:
            return cached[1]
        plan = []
        for response_name, nodes in fields.items():
            field_def = get_field_def(self.schema, parent_type, nodes[0])
            plan.append((response_name, nodes, _plain_field(field_def, nodes) if not self.middleware_manager else None))
        self._plans[id(fields)] = (fields, plan)
        return plan

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Path | None,
                       fields: dict[str, list]) -> Any:
        results: dict[str, Any] = {}
        is_dict = isinstance(source_value, dict)
        for response_name, nodes, plain in self._plan(parent_type, fields):
            if plain is not None:
                value = _plain_value(source_value, is_dict, plain)
                if value is not Undefined:
                    results[response_name] = value
                    continue
            result = self.execute_field(parent_type, source_value, nodes, Path(path, response_name,
                                                                                parent_type.name))
            if result is not Undefined:
                results[response_name] = result
        return results


def _plain_value(source: Any, is_dict: bool, plain: tuple) -> Any:
    """The serialized value, or Undefined when graphql-core must handle it (nulls in non-null, odd values)."""
    key, default, leaf, non_null, is_list, items_non_null = plain
    value = source.get(key, default) if is_dict else getattr(source, key, default)
    if value is None:
        return Undefined if non_null else None
    try:
        if not is_list:
            serialized = leaf.serialize(value)
            return Undefined if serialized is Undefined or serialized is None else serialized
        if not isinstance(value, list | tuple):
            return Undefined
        out = []
        for item in value:
            if item is None:
                if items_non_null:
                    return Undefined
                out.append(None)
                continue
            serialized = leaf.serialize(item)
            if serialized is Undefined or serialized is None:
                return Undefined
            out.append(serialized)
        return out
    except Exception:  # noqa: BLE001 - the ordinary path reports the error as GraphQL does
        return Undefined
