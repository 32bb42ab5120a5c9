// Builds one JavaScript plugin into a WebAssembly component with
// componentize-js (through its API: `jco componentize` was found to fail
// here with "failed to get path metadata"):
//
//   node plugins/js/build.mjs <source.js> <wit-dir> <world> <out.wasm>
//
// e.g. node plugins/js/build.mjs plugins/js/schema-validator/index.js wit \
//          ferry:plugin/validator-plugin plugins/dist/js-schema-validator.wasm
//
// `<wit-dir>` holds the world (scripts/polyglot.sh assembles one from
// wit/ferry.wit and plugins/js/wit for plugins that import wasi:filesystem).
// `http` and `fetch-event` are disabled: with them the component imports
// wasi:http, which the host refuses without a network grant. scripts/polyglot.sh
// runs this for every plugin whose sources changed.
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile, rename } from 'node:fs/promises';
import path from 'node:path';

const [source, wit, world, out] = process.argv.slice(2);
if (!source || !wit || !world || !out) {
  console.error('usage: node build.mjs <source.js> <wit-dir> <world> <out.wasm>');
  process.exit(2);
}
const { component, imports } = await componentize({
  sourcePath: path.resolve(source),
  witPath: path.resolve(wit),
  worldName: world,
  disableFeatures: ['http', 'fetch-event'],
});
// Network interfaces need a network grant: a plugin that does not need the
// network must not import them.
const unexpected = imports.filter(([iface]) => /^wasi:(http|sockets)\//.test(iface));
if (unexpected.length > 0) {
  console.error(`build.mjs: ${source} imports ${unexpected.map((i) => i.join('#')).join(', ')}`);
  process.exit(1);
}
await writeFile(`${out}.tmp`, component);
await rename(`${out}.tmp`, out);
