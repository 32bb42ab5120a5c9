//! What the export macros expand to call. Not a public API: it may change
//! in any release.

use std::cell::RefCell;

pub use wit_bindgen;

use crate::batch::{Batch, TextList};
use crate::mapper::{MapOutput, Mapper};
use crate::resolver::{Resolution, Resolver, resolve_with_view};
use crate::sink::{Sink, SinkCommit, WriteReport};
use crate::source::{Polled, Source};
use crate::types;
use crate::validator::{Validator, Violation, Violations};
use crate::{PluginError, config};

/// The one instance of a plugin's type in a component instance.
pub type Slot<T> = RefCell<Option<T>>;

fn open_into<T>(slot: &Slot<T>, made: Result<T, PluginError>) -> Result<(), PluginError> {
    let value = made?;
    let mut s = slot
        .try_borrow_mut()
        .map_err(|_| PluginError::fatal("open was called while the plugin was busy"))?;
    *s = Some(value);
    Ok(())
}

fn with<T, R>(
    slot: &Slot<T>,
    f: impl FnOnce(&mut T) -> Result<R, PluginError>,
) -> Result<R, PluginError> {
    let mut s = slot
        .try_borrow_mut()
        .map_err(|_| PluginError::fatal("the plugin was called while busy"))?;
    match s.as_mut() {
        Some(value) => f(value),
        None => Err(PluginError::fatal("not opened")),
    }
}

/// `mapper.open`.
pub fn mapper_open<M: Mapper>(slot: &Slot<M>, config: &str) -> Result<(), PluginError> {
    open_into(slot, config::parse(config).and_then(M::open))
}

/// `mapper.map`.
pub fn mapper_map<M: Mapper>(
    slot: &Slot<M>,
    records: types::Batch,
) -> Result<MapOutput, PluginError> {
    with(slot, |m| m.map_raw(records))
}

/// `source.open`.
pub fn source_open<S: Source>(
    slot: &Slot<S>,
    config: &str,
    checkpoint: Option<Vec<u8>>,
) -> Result<(), PluginError> {
    open_into(
        slot,
        config::parse(config).and_then(|c| S::open(c, checkpoint.as_deref())),
    )
}

/// `source.poll`.
pub fn source_poll<S: Source>(slot: &Slot<S>, max_records: u32) -> Result<Polled, PluginError> {
    with(slot, |s| s.poll(max_records))
}

/// `source.commit`.
pub fn source_commit<S: Source>(slot: &Slot<S>, checkpoint: Vec<u8>) -> Result<(), PluginError> {
    with(slot, |s| s.commit(&checkpoint))
}

/// `sink.open`.
pub fn sink_open<S: Sink>(slot: &Slot<S>, config: &str) -> Result<(), PluginError> {
    open_into(slot, config::parse(config).and_then(S::open))
}

/// `sink.write`.
pub fn sink_write<S: Sink>(
    slot: &Slot<S>,
    records: types::Batch,
) -> Result<WriteReport, PluginError> {
    let batch = Batch::from_raw(records)?;
    with(slot, |s| s.write(&batch))
}

/// `sink.flush`.
pub fn sink_flush<S: Sink>(slot: &Slot<S>) -> Result<(), PluginError> {
    with(slot, |s| s.flush())
}

/// `sink.fetch`.
pub fn sink_fetch<S: Sink>(
    slot: &Slot<S>,
    keys: types::Texts,
) -> Result<types::Batch, PluginError> {
    let count = keys.offsets.len().saturating_sub(1);
    let keys = TextList::from_raw(keys, count, "keys")?;
    with(slot, |s| s.fetch(&keys))
}

/// `sink-commit.resume`.
pub fn sink_resume<S: SinkCommit>(
    slot: &Slot<S>,
    token: Option<Vec<u8>>,
) -> Result<(), PluginError> {
    with(slot, |s| s.resume(token.as_deref()))
}

/// `sink-commit.position`.
pub fn sink_position<S: SinkCommit>(slot: &Slot<S>) -> Result<Vec<u8>, PluginError> {
    with(slot, |s| s.position())
}

/// `validator.open`.
pub fn validator_open<V: Validator>(slot: &Slot<V>, config: &str) -> Result<(), PluginError> {
    open_into(slot, config::parse(config).and_then(V::open))
}

/// `validator.validate`.
pub fn validator_validate<V: Validator>(
    slot: &Slot<V>,
    records: types::Batch,
) -> Result<Vec<Violation>, PluginError> {
    let batch = Batch::from_raw(records)?;
    let mut out = Violations::new();
    with(slot, |v| v.validate(&batch, &mut out))?;
    Ok(out.into_vec())
}

/// `resolver.open`.
pub fn resolver_open<R: Resolver>(slot: &Slot<R>, config: &str) -> Result<(), PluginError> {
    open_into(slot, config::parse(config).and_then(R::open))
}

/// `resolver.resolve`.
pub fn resolver_resolve<R: Resolver>(
    slot: &Slot<R>,
    left: types::Batch,
    right: types::Batch,
    ancestor: types::Batch,
) -> Result<(Vec<Resolution>, types::Batch), PluginError> {
    with(slot, |r| resolve_with_view(r, left, right, ancestor))
}
