//! `ferry-deny-sockets IN.wasm OUT.wasm`: removes the `wasi:sockets/*`
//! imports of a component by composing it with a stub component that
//! exports those interfaces and traps if any of their functions is called.
//!
//! Why: componentize-py links CPython with a wasi-libc that has socket
//! support, so every Python component imports `wasi:sockets/*` whether or
//! not it ever opens a socket, and the ferry host refuses a component that
//! imports `wasi:sockets` without a `network` grant. A mapper that never
//! touches the network should not need one. After this step the component
//! imports only what it can use without one (files, clocks, random, stdio);
//! Python code that still tries a socket traps, and the host rebuilds the
//! instance, as for any broken plugin.
//!
//! The approach: decode the component's world, make a world that exports
//! the socket interfaces it imports (and imports what they depend on),
//! generate a core module with `unreachable` bodies for it
//! (`wit_component::dummy_module`), encode it as a component, and plug it
//! into the original with `wac-graph`.

use std::collections::HashSet;

use anyhow::{Context, Result, bail};
use indexmap::IndexMap;
use wac_graph::{CompositionGraph, EncodeOptions, plug, types::Package};
use wit_component::{ComponentEncoder, StringEncoding, dummy_module, embed_component_metadata};
use wit_parser::decoding::{DecodedWasm, decode};
use wit_parser::{
    Docs, InterfaceId, ManglingAndAbi, Resolve, Stability, World, WorldItem, WorldKey,
};

const DENIED: &str = "wasi:sockets/";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        bail!("usage: ferry-deny-sockets IN.wasm OUT.wasm");
    };
    let bytes = std::fs::read(input).with_context(|| format!("reading {input}"))?;
    let (out, denied) = deny(&bytes)?;
    std::fs::write(output, &out).with_context(|| format!("writing {output}"))?;
    if denied.is_empty() {
        eprintln!("ferry-deny-sockets: {input} imports no socket interface; copied as is");
    } else {
        eprintln!(
            "ferry-deny-sockets: {input}: stubbed {} ({} -> {} bytes)",
            denied.join(", "),
            bytes.len(),
            out.len()
        );
    }
    Ok(())
}

/// The component without its socket imports, and the names of the
/// interfaces stubbed.
fn deny(component: &[u8]) -> Result<(Vec<u8>, Vec<String>)> {
    let (resolve, world_id) = match decode(component).context("decoding the component's world")? {
        DecodedWasm::Component(resolve, world) => (resolve, world),
        DecodedWasm::WitPackage(..) => bail!("expected a component, found a WIT package"),
    };
    let world = &resolve.worlds[world_id];
    let sockets: IndexMap<WorldKey, WorldItem> = world
        .imports
        .iter()
        .filter(|(key, _)| resolve.name_world_key(key).starts_with(DENIED))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if sockets.is_empty() {
        return Ok((component.to_vec(), Vec::new()));
    }
    let names = sockets.keys().map(|k| resolve.name_world_key(k)).collect();
    let stub = stub_component(&resolve, world, sockets).context("building the stub component")?;

    let mut graph = CompositionGraph::new();
    let app = Package::from_bytes("app", None, component.to_vec(), graph.types_mut())
        .context("registering the component")?;
    let stub = Package::from_bytes("deny-sockets", None, stub, graph.types_mut())
        .context("registering the stub")?;
    let app = graph.register_package(app)?;
    let stub = graph.register_package(stub)?;
    plug(&mut graph, vec![stub], app).context("plugging the stub into the component")?;
    let out = graph
        .encode(EncodeOptions::default())
        .context("encoding the composed component")?;
    Ok((out, names))
}

/// A component exporting `exports` with trapping bodies. It imports the
/// interfaces they use types from (wasi:io, wasi:clocks), as the original
/// does, in the original's order.
fn stub_component(
    resolve: &Resolve,
    original: &World,
    exports: IndexMap<WorldKey, WorldItem>,
) -> Result<Vec<u8>> {
    let mut needed: HashSet<InterfaceId> = HashSet::new();
    let mut todo: Vec<InterfaceId> = exports
        .values()
        .filter_map(|item| match item {
            WorldItem::Interface { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    while let Some(id) = todo.pop() {
        for dep in resolve.interface_direct_deps(id) {
            if needed.insert(dep) {
                todo.push(dep);
            }
        }
    }
    let imports: IndexMap<WorldKey, WorldItem> = original
        .imports
        .iter()
        .filter(|(key, item)| {
            !exports.contains_key(*key)
                && matches!(item, WorldItem::Interface { id, .. } if needed.contains(id))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut resolve = resolve.clone();
    let world = resolve.worlds.alloc(World {
        name: "deny-sockets".to_string(),
        imports,
        exports,
        package: original.package,
        docs: Docs::default(),
        stability: Stability::default(),
        includes: Vec::new(),
        span: Default::default(),
    });
    let mut module = dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .context("embedding the stub's world")?;
    ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
        .context("encoding the stub component")
}
