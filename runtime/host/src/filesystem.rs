//! File access denials as audit events.
//!
//! wasmtime-wasi already confines a plugin to its preopened folders (cap-std
//! refuses `..` out of a folder, absolute paths and symlinks leading out) and
//! enforces read-only grants. What it does not do is tell anyone: the plugin
//! gets an error code and the host never hears of it. So the functions of
//! `wasi:filesystem/types` that take a path are shadowed here by thin
//! wrappers that call wasmtime-wasi's own implementation and, when the answer
//! is a refusal (`not-permitted`, `access`, `read-only`), report it to the
//! plugin's [`AuditSink`](crate::AuditSink) and the log before handing the
//! same error code back to the plugin.
//!
//! A path that names no granted folder at all (`/etc/passwd` when only `/in`
//! is granted) is refused inside the plugin by its own libc, which maps
//! absolute paths onto preopens; such a request never reaches the host, so
//! there is nothing to audit. Requests that do reach the host, through a
//! granted folder, are all checked and audited; the paths in the audit
//! record are the plugin's, so each is cut to
//! [`MAX_QUOTED_BYTES`](crate::audit::MAX_QUOTED_BYTES) before it is
//! formatted.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::FsResult;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorStat, ErrorCode, Host, HostDescriptor, NewTimestamp,
    OpenFlags, PathFlags,
};

use crate::audit::quote;
use crate::network::Denial;
use crate::store::HostState;

/// The interface wasmtime-wasi 48 links (a component importing an older
/// 0.2.x version is served by it through semver matching).
const TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Error codes that mean "refused by the sandbox or the host's permissions",
/// as opposed to "no such file" and the like.
fn is_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotPermitted | ErrorCode::Access | ErrorCode::ReadOnly
    )
}

/// Turns wasmtime-wasi's answer into the plugin's, auditing a refusal.
fn answer<T>(
    state: &mut HostState,
    result: FsResult<T>,
    target: impl FnOnce() -> String,
) -> wasmtime::Result<(Result<T, ErrorCode>,)> {
    match result {
        Ok(v) => Ok((Ok(v),)),
        Err(e) => {
            let code = Host::convert_error_code(&mut state.filesystem(), e)?;
            if is_refusal(code) {
                state.report_denial(Denial::new(
                    "filesystem",
                    target(),
                    format!("{code:?}: outside the plugin's file grants"),
                ));
            }
            Ok((Err(code),))
        }
    }
}

/// What an open asks for, for the audit record.
fn open_intent(oflags: OpenFlags, flags: DescriptorFlags) -> &'static str {
    if flags.contains(DescriptorFlags::WRITE)
        || oflags.intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE)
    {
        "write"
    } else {
        "read"
    }
}

/// Replaces wasmtime-wasi's path-taking `descriptor` methods with audited
/// ones. Call after `wasmtime_wasi::p2::add_to_linker_sync`.
pub(crate) fn add_audited_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(TYPES)?;
    types.func_wrap(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, path_flags, path, oflags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            let state = store.data_mut();
            let intent = open_intent(oflags, flags);
            let result = HostDescriptor::open_at(
                &mut state.filesystem(),
                fd,
                path_flags,
                path.clone(),
                oflags,
                flags,
            );
            answer(state, result, || {
                format!("open {} for {intent}", quote(&path))
            })
        },
    )?;
    types.func_wrap(
        "[method]descriptor.stat-at",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, path_flags, path): (Resource<Descriptor>, PathFlags, String)| {
            let state = store.data_mut();
            let result: FsResult<DescriptorStat> =
                HostDescriptor::stat_at(&mut state.filesystem(), fd, path_flags, path.clone());
            answer(state, result, || format!("stat {}", quote(&path)))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.set-times-at",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, path_flags, path, atim, mtim): (
            Resource<Descriptor>,
            PathFlags,
            String,
            NewTimestamp,
            NewTimestamp,
        )| {
            let state = store.data_mut();
            let result = HostDescriptor::set_times_at(
                &mut state.filesystem(),
                fd,
                path_flags,
                path.clone(),
                atim,
                mtim,
            );
            answer(state, result, || format!("set times of {}", quote(&path)))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.readlink-at",
        |mut store: StoreContextMut<'_, HostState>, (fd, path): (Resource<Descriptor>, String)| {
            let state = store.data_mut();
            let result = HostDescriptor::readlink_at(&mut state.filesystem(), fd, path.clone());
            answer(state, result, || format!("read link {}", quote(&path)))
        },
    )?;
    type PathOp = fn(
        &mut wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_>,
        Resource<Descriptor>,
        String,
    ) -> FsResult<()>;
    let path_ops: [(&str, &'static str, PathOp); 3] = [
        (
            "[method]descriptor.create-directory-at",
            "create directory",
            |fs, fd, path| HostDescriptor::create_directory_at(fs, fd, path),
        ),
        (
            "[method]descriptor.remove-directory-at",
            "remove directory",
            |fs, fd, path| HostDescriptor::remove_directory_at(fs, fd, path),
        ),
        (
            "[method]descriptor.unlink-file-at",
            "remove file",
            |fs, fd, path| HostDescriptor::unlink_file_at(fs, fd, path),
        ),
    ];
    for (name, verb, op) in path_ops {
        types.func_wrap(
            name,
            move |mut store: StoreContextMut<'_, HostState>,
                  (fd, path): (Resource<Descriptor>, String)| {
                let state = store.data_mut();
                let result = op(&mut state.filesystem(), fd, path.clone());
                answer(state, result, || format!("{verb} {}", quote(&path)))
            },
        )?;
    }
    types.func_wrap(
        "[method]descriptor.rename-at",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, old, new_fd, new): (Resource<Descriptor>, String, Resource<Descriptor>, String)| {
            let state = store.data_mut();
            let result =
                HostDescriptor::rename_at(&mut state.filesystem(), fd, old.clone(), new_fd, new.clone());
            answer(state, result, || {
                format!("rename {} to {}", quote(&old), quote(&new))
            })
        },
    )?;
    types.func_wrap(
        "[method]descriptor.symlink-at",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, target, link): (Resource<Descriptor>, String, String)| {
            let state = store.data_mut();
            let result = HostDescriptor::symlink_at(
                &mut state.filesystem(),
                fd,
                target.clone(),
                link.clone(),
            );
            answer(state, result, || {
                format!("symlink {} to {}", quote(&link), quote(&target))
            })
        },
    )?;
    types.func_wrap(
        "[method]descriptor.link-at",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, old_flags, old, new_fd, new): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| {
            let state = store.data_mut();
            let result = HostDescriptor::link_at(
                &mut state.filesystem(),
                fd,
                old_flags,
                old.clone(),
                new_fd,
                new.clone(),
            );
            answer(state, result, || {
                format!("link {} to {}", quote(&new), quote(&old))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
