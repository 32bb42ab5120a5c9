"""Expected failures: raise one from a plugin method.

- `InvalidConfig`: the settings given to `open` are wrong; the pipeline
  does not start.
- `Retryable`: a passing failure; the host calls again later.
- `Fatal`: the call cannot succeed; the batch goes to the dead-letter store.

Any other exception traps: the host drops the instance and builds a new one.
"""


class PluginError(Exception):
    """The base of the three expected failures."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class InvalidConfig(PluginError):
    pass


class Retryable(PluginError):
    pass


class Fatal(PluginError):
    pass
