"""The WIT types, from the bindings componentize-py generates for the
plugin's world (`wit_world`), or plain stand-ins with the same fields when
the helper runs outside a component (its unit tests, on the build machine).
"""

from dataclasses import dataclass
from enum import Enum
from typing import List, Optional

try:
    from wit_world.imports.types import (  # noqa: F401
        Batch,
        Column,
        Op,
        PluginError_Fatal,
        PluginError_InvalidConfig,
        PluginError_Retryable,
        RecordIssue,
        Texts,
        Values_Bools,
        Values_Bytes,
        Values_Floats,
        Values_Ints,
        Values_Json,
        Values_Text,
        Values_Timestamps,
    )

    IN_COMPONENT = True
except ImportError:  # outside a component
    IN_COMPONENT = False

    @dataclass
    class Texts:
        offsets: List[int]
        data: bytes

    @dataclass
    class Values_Ints:
        value: List[int]

    @dataclass
    class Values_Floats:
        value: List[float]

    @dataclass
    class Values_Bools:
        value: List[bool]

    @dataclass
    class Values_Text:
        value: Texts

    @dataclass
    class Values_Bytes:
        value: Texts

    @dataclass
    class Values_Timestamps:
        value: List[int]

    @dataclass
    class Values_Json:
        value: Texts

    @dataclass
    class Column:
        name: str
        values: object
        valid: Optional[List[bool]]

    class Op(Enum):
        UPSERT = 0
        DELETE = 1

    @dataclass
    class Batch:
        keys: Texts
        ops: List[Op]
        versions: Optional[List[int]]
        updated_at: Optional[List[int]]
        origins: Optional[Texts]
        columns: List[Column]

    @dataclass
    class RecordIssue:
        row: int
        reason: str

    @dataclass
    class PluginError_InvalidConfig:
        value: str

    @dataclass
    class PluginError_Retryable:
        value: str

    @dataclass
    class PluginError_Fatal:
        value: str
