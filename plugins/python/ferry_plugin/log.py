"""Log lines through the host: `log.info("...")`, tagged by the host with
the pipeline, the stage and the plugin digest. Outside a component (unit
tests) they go to stderr."""

import sys

try:
    from wit_world.imports import host as _host

    def _log(level, message):
        _host.log(getattr(_host.Level, level.upper()), message)

except ImportError:

    def _log(level, message):
        print(f"[{level}] {message}", file=sys.stderr)


def trace(message):
    _log("trace", message)


def debug(message):
    _log("debug", message)


def info(message):
    _log("info", message)


def warn(message):
    _log("warn", message)


def error(message):
    _log("error", message)
