"""Arrow fields that carry their description (units) as field metadata."""

from __future__ import annotations

import pyarrow as pa


def described(name: str, typ: pa.DataType, description: str) -> pa.Field:
    return pa.field(name, typ, metadata={"description": description})
