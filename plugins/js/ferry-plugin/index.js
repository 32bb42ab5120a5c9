// `ferry-plugin`: the JavaScript helper layer for ferry plugins built with
// componentize-js. It hides the contract's columnar layout
// (`wit/ferry.wit`) the way the Rust SDK does: a plugin reads records as
// rows (`Batch`, `Row`, `row.get('email')`), writes them with a
// `BatchBuilder`, and throws `InvalidConfig`, `Retryable` or `Fatal` for
// expected failures. A plugin module exports the interface of its world:
//
//     export const mapper = exportMapper(MyMapper);          // mapper-plugin
//     export const validator = exportValidator(MyValidator); // validator-plugin
//     export const source = exportSource(MySource);          // source-plugin
//     export const sink = exportSink(MySink);                // sink-plugin
//     export const resolver = exportResolver(MyResolver);    // resolver-plugin
//
// `scripts/polyglot.sh` builds the plugins of this repository into
// components; `ferry plugin build` builds a project `ferry plugin new` made. See `plugin.js` for the
// shape of each kind and `values.js` for how field values look in
// JavaScript (integers are bigints). Reading files: `fs.js`.

export * as config from './config.js';
export * as csv from './csv.js';
export * as json from './json.js';
export * as log from './log.js';
export * as values from './values.js';
export { Batch, BatchBuilder, DELETE, Row, RowBuilder, UPSERT } from './batch.js';
export { Fatal, InvalidConfig, PluginError, Retryable } from './errors.js';
export {
  CAUGHT_UP,
  FINISHED,
  MORE,
  Mapped,
  Polled,
  Resolutions,
  Violations,
  WriteReport,
  exportMapper,
  exportResolver,
  exportSink,
  exportSource,
  exportValidator,
} from './plugin.js';
export { Json, Timestamp } from './values.js';
