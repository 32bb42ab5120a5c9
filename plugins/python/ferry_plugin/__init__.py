"""`ferry_plugin`: the Python helper layer for ferry plugins built with
componentize-py. It hides the contract's columnar layout (`wit/ferry.wit`)
the way the Rust SDK does: a plugin reads records as rows (`Batch`, `Row`,
`row["email"]`, `row.fields()`), writes them with a `BatchBuilder`, and
raises `InvalidConfig`, `Retryable` or `Fatal` for expected failures.

A plugin is one module (`app.py`) with its class and one export line:

    Mapper = ferry_plugin.export_mapper(MyMapper)          # mapper-plugin
    Validator = ferry_plugin.export_validator(MyValidator) # validator-plugin
    Source = ferry_plugin.export_source(MySource)          # source-plugin
    Sink = ferry_plugin.export_sink(MySink)                # sink-plugin
    Resolver = ferry_plugin.export_resolver(MyResolver)    # resolver-plugin

`scripts/polyglot.sh` builds the plugins of this repository into
components; `ferry plugin build` builds a project `ferry plugin new` made. See `plugin.py` for the
shape of each kind and `values.py` for how field values look in Python.
"""

from . import config, csv, log  # noqa: F401
from .batch import DELETE, UPSERT, Batch, BatchBuilder, Row, RowBuilder  # noqa: F401
from .errors import Fatal, InvalidConfig, PluginError, Retryable  # noqa: F401
from .plugin import (  # noqa: F401
    CAUGHT_UP,
    FINISHED,
    MORE,
    Mapped,
    Polled,
    Resolutions,
    Violations,
    WriteReport,
    export_mapper,
    export_resolver,
    export_sink,
    export_source,
    export_validator,
    parse_config,
)
from .values import (  # noqa: F401
    Json,
    Timestamp,
    describe,
    display,
    format_rfc3339,
    from_json,
    json_text,
    kind,
    parse_date,
    parse_rfc3339,
    quote,
    rust_float,
    shown,
)
