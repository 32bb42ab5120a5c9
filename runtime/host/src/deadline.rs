//! The call's deadline inside blocking host calls.
//!
//! A call's `timeout_ms` is enforced by epoch interruption, which only fires
//! while the plugin runs WebAssembly code. A plugin blocked in the host
//! (`std::thread::sleep`, a socket read that never gets an answer, an HTTP
//! response that never comes) runs no WebAssembly, so the epoch never
//! interrupts it: the call, and the pipeline with it, would wait for ever.
//!
//! Every way a `wasi:*` call can wait ends up in one of a few functions of
//! `wasi:io`: `poll` and `pollable.block` (sleeps, connects, name lookups,
//! HTTP responses, readiness of any stream), the `blocking-*` methods of
//! `input-stream` and `output-stream`, and dropping a stream (a TCP output
//! stream's drop waits for its pending writes). wasmtime-wasi implements
//! them synchronously by running its async implementation to completion on
//! the ambient tokio runtime (`in_tokio`). This module shadows exactly those
//! functions in the linker with the same async implementation run under a
//! timeout at the call's deadline ([`HostState::remaining`]), so a blocked
//! call ends when a busy one would: with a trap that the instance reports as
//! fault kind `deadline` (and then drops the Store, as after any trap).
//!
//! Shadowing was chosen over running plugin calls on async wasmtime under a
//! timeout: plugin calls stay plain synchronous calls (the async machinery
//! made every call 3-4 times slower when measured for this workload), and
//! only the functions that can wait pay for a timer. The non-blocking
//! functions (`read`, `write`, `check-write`, `pollable.ready`, ...) are
//! wasmtime-wasi's own.
//!
//! The shadows are defined under the `wasi:io` version wasmtime-wasi 48
//! links; a component importing an older 0.2.x version is linked to the
//! same definitions by semver matching, so it is covered too.
//!
//! The timer is tokio's, on the same ambient runtime wasmtime-wasi's own
//! clocks already need (the caller's if there is one, which must then have
//! its time driver enabled, as ferry's runtimes do; else wasmtime-wasi's).
//!
//! Waiting the host does on the plugin's behalf outside `wasi:io` has its
//! own bound: SQL statements (the call's timeout), file operations (local
//! disk I/O on a blocking thread).

use std::future::Future;
use std::time::Duration;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable, ResourceType};
use wasmtime_wasi::p2::bindings::io::poll as wasi_poll;
use wasmtime_wasi::p2::bindings::io::streams as wasi_streams;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamResult};

use crate::store::HostState;

/// The `wasi:io` version wasmtime-wasi 48 links (components importing an
/// older 0.2.x version are served by it through semver matching).
const POLL: &str = "wasi:io/poll@0.2.12";
const STREAMS: &str = "wasi:io/streams@0.2.12";

/// The error a blocking host call ends with at the call's deadline; the
/// instance reports the trap it causes as [`FaultKind::Deadline`](crate::FaultKind).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeadlineReached;

impl std::fmt::Display for DeadlineReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the call reached its deadline while waiting in the host")
    }
}

impl std::error::Error for DeadlineReached {}

/// Runs a host future to completion as wasmtime-wasi's synchronous bindings
/// do, but for at most `remaining` (`None`: no bound, outside a call).
/// The future is polled at least once, so an operation that is ready
/// completes even when the deadline has passed.
fn bounded<F: Future>(remaining: Option<Duration>, future: F) -> wasmtime::Result<F::Output> {
    wasmtime_wasi::runtime::in_tokio(async move {
        match remaining {
            None => Ok(future.await),
            Some(left) => tokio::time::timeout(left, future)
                .await
                .map_err(|_| wasmtime::Error::new(DeadlineReached)),
        }
    })
}

/// The state's remaining time and its resource table, borrowed apart.
fn parts<'a>(
    store: &'a mut StoreContextMut<'_, HostState>,
) -> (Option<Duration>, &'a mut ResourceTable) {
    let state = store.data_mut();
    (state.remaining(), &mut state.table)
}

/// A stream operation's answer in the shape of the WIT function's result:
/// a stream error goes back to the plugin, a trap ends the call.
fn stream_answer<T>(
    table: &mut ResourceTable,
    result: StreamResult<T>,
) -> wasmtime::Result<(Result<T, wasi_streams::StreamError>,)> {
    match result {
        Ok(v) => Ok((Ok(v),)),
        Err(e) => Ok((Err(wasi_streams::Host::convert_stream_error(table, e)?),)),
    }
}

/// Replaces wasmtime-wasi's blocking `wasi:io` functions with ones bounded by
/// the call's deadline. Call after `wasmtime_wasi::p2::add_to_linker_sync`.
pub(crate) fn add_bounded_io_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    {
        let mut poll = linker.instance(POLL)?;
        poll.func_wrap(
            "poll",
            |mut store: StoreContextMut<'_, HostState>,
             (pollables,): (Vec<Resource<DynPollable>>,)| {
                let (left, table) = parts(&mut store);
                let ready = bounded(left, wasi_poll::Host::poll(table, pollables))??;
                Ok((ready,))
            },
        )?;
        poll.func_wrap(
            "[method]pollable.block",
            |mut store: StoreContextMut<'_, HostState>, (pollable,): (Resource<DynPollable>,)| {
                let (left, table) = parts(&mut store);
                bounded(left, wasi_poll::HostPollable::block(table, pollable))??;
                Ok(())
            },
        )?;
    }
    {
        let mut streams = linker.instance(STREAMS)?;
        streams.func_wrap(
            "[method]input-stream.blocking-read",
            |mut store: StoreContextMut<'_, HostState>,
             (stream, len): (Resource<DynInputStream>, u64)| {
                let (left, table) = parts(&mut store);
                let result = bounded(
                    left,
                    wasi_streams::HostInputStream::blocking_read(table, stream, len),
                )?;
                stream_answer(table, result)
            },
        )?;
        streams.func_wrap(
            "[method]input-stream.blocking-skip",
            |mut store: StoreContextMut<'_, HostState>,
             (stream, len): (Resource<DynInputStream>, u64)| {
                let (left, table) = parts(&mut store);
                let result = bounded(
                    left,
                    wasi_streams::HostInputStream::blocking_skip(table, stream, len),
                )?;
                stream_answer(table, result)
            },
        )?;
        streams.func_wrap(
            "[method]output-stream.blocking-write-and-flush",
            |mut store: StoreContextMut<'_, HostState>,
             (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
                let (left, table) = parts(&mut store);
                let result = bounded(
                    left,
                    wasi_streams::HostOutputStream::blocking_write_and_flush(table, stream, bytes),
                )?;
                stream_answer(table, result)
            },
        )?;
        streams.func_wrap(
            "[method]output-stream.blocking-write-zeroes-and-flush",
            |mut store: StoreContextMut<'_, HostState>,
             (stream, len): (Resource<DynOutputStream>, u64)| {
                let (left, table) = parts(&mut store);
                let result = bounded(
                    left,
                    wasi_streams::HostOutputStream::blocking_write_zeroes_and_flush(
                        table, stream, len,
                    ),
                )?;
                stream_answer(table, result)
            },
        )?;
        streams.func_wrap(
            "[method]output-stream.blocking-flush",
            |mut store: StoreContextMut<'_, HostState>, (stream,): (Resource<DynOutputStream>,)| {
                let (left, table) = parts(&mut store);
                let result = bounded(
                    left,
                    wasi_streams::HostOutputStream::blocking_flush(table, stream),
                )?;
                stream_answer(table, result)
            },
        )?;
        streams.func_wrap(
            "[method]output-stream.blocking-splice",
            |mut store: StoreContextMut<'_, HostState>,
             (dst, src, len): (Resource<DynOutputStream>, Resource<DynInputStream>, u64)| {
                let (left, table) = parts(&mut store);
                let result = bounded(
                    left,
                    wasi_streams::HostOutputStream::blocking_splice(table, dst, src, len),
                )?;
                stream_answer(table, result)
            },
        )?;
        // Dropping a stream waits for what it still has to do (a TCP output
        // stream flushes its pending writes), so the destructors are bounded
        // too.
        streams.resource(
            "input-stream",
            ResourceType::host::<DynInputStream>(),
            |mut store: StoreContextMut<'_, HostState>, rep: u32| {
                let (left, table) = parts(&mut store);
                bounded(
                    left,
                    wasi_streams::HostInputStream::drop(table, Resource::new_own(rep)),
                )?
            },
        )?;
        streams.resource(
            "output-stream",
            ResourceType::host::<DynOutputStream>(),
            |mut store: StoreContextMut<'_, HostState>, rep: u32| {
                let (left, table) = parts(&mut store);
                bounded(
                    left,
                    wasi_streams::HostOutputStream::drop(table, Resource::new_own(rep)),
                )?
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}
