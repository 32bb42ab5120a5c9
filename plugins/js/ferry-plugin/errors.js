// Expected failures: throw one from a plugin method.
//
// - `InvalidConfig`: the settings given to `open` are wrong; the pipeline
//   does not start.
// - `Retryable`: a passing failure; the host calls again later.
// - `Fatal`: the call cannot succeed; the batch goes to the dead-letter store.
//
// Anything else thrown traps: the host drops the instance and builds a new one.

export class PluginError extends Error {
  constructor(tag, message) {
    super(message);
    this.tag = tag;
  }
  /** The `plugin-error` variant, as the bindings lower it. */
  get payload() {
    return { tag: this.tag, val: this.message };
  }
}

export class InvalidConfig extends PluginError {
  constructor(message) {
    super('invalid-config', message);
  }
}

export class Retryable extends PluginError {
  constructor(message) {
    super('retryable', message);
  }
}

export class Fatal extends PluginError {
  constructor(message) {
    super('fatal', message);
  }
}
