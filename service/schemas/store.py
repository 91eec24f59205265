"""Store API bodies (`/store/items`, `/store/items/search`, `/store/namespaces`), as the
SDKs send them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from service.schemas.models import StrictBody

MAX_NAMESPACE_DEPTH = 10
# A label holds no period: the SDKs and the stores join labels with them.
MAX_LABEL_CHARS = 128
NamespaceLabel = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LABEL_CHARS, pattern=r"^[^.]+$")
]
RESERVED_ROOT = "langgraph"


def _not_reserved(namespace: list[str]) -> list[str]:
    if namespace and namespace[0] == RESERVED_ROOT:
        raise ValueError(f"the root label {RESERVED_ROOT!r} is reserved")
    return namespace


Namespace = Annotated[
    list[NamespaceLabel],
    Field(min_length=1, max_length=MAX_NAMESPACE_DEPTH),
    AfterValidator(_not_reserved),
]
NamespacePrefix = Annotated[list[NamespaceLabel], Field(max_length=MAX_NAMESPACE_DEPTH)]
ItemKey = Annotated[str, StringConstraints(min_length=1, max_length=512)]
# Minutes; at most ten years.
TtlMinutes = Annotated[float, Field(gt=0, le=10 * 525_600)]
# The stores put field names into their SQL: they take these characters only.
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,256}$")]
FilterValue = StrictStr | StrictBool | StrictInt | StrictFloat | None
FilterOperator = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]
FilterCondition = Annotated[dict[FilterOperator, FilterValue], Field(min_length=1, max_length=6)]
# Each field equal to a value, or meeting every condition given for it.
ValueFilter = Annotated[dict[FieldName, FilterValue | FilterCondition], Field(max_length=32)]


class StorePut(StrictBody):
    namespace: Namespace
    key: ItemKey
    value: dict[str, object]
    # Fields to index for semantic search; no index is configured here, so only `false`
    # or nothing is meaningful (see the README's differences).
    index: bool | list[FieldName] | None = None
    ttl: TtlMinutes | None = None


class StoreDelete(StrictBody):
    namespace: Namespace
    key: ItemKey


class StoreSearch(StrictBody):
    namespace_prefix: NamespacePrefix = Field(default_factory=list)
    filter: ValueFilter | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)
    query: Annotated[str, StringConstraints(max_length=2000)] | None = None
    refresh_ttl: bool | None = None


class StoreNamespaces(StrictBody):
    prefix: NamespacePrefix | None = None
    suffix: NamespacePrefix | None = None
    max_depth: int | None = Field(None, ge=1, le=MAX_NAMESPACE_DEPTH)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)
