//! `test-fs-probe`: a mapper that tries the file access each record asks
//! for and reports what happened, for the host's sandbox tests. Not a user
//! plugin.
//!
//! Each input record has `op` (`read` or `write`) and `path`; the output is
//! the same record with `result`: `ok` (and, for a read, `content`) or
//! `denied: <the error>`. `raw-read` skips libc and asks the host directly:
//! it opens `path` relative to the granted folder named by `dir` with
//! `wasi:filesystem`, so even an absolute path reaches the host's check. The tests feed it escapes (`..`, absolute paths
//! outside the grants, a symlink pointing out of a granted folder, a write
//! into a read-only grant) and check each one is denied.

use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The plugin; it takes no configuration.
pub struct FsProbe;

impl Mapper for FsProbe {
    type Config = ();

    fn open(_: ()) -> Result<Self, PluginError> {
        Ok(FsProbe)
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            let op = row
                .text("op")
                .map_err(|e| PluginError::fatal(e.to_string()))?;
            let path = row
                .text("path")
                .map_err(|e| PluginError::fatal(e.to_string()))?;
            let (result, content) = match op {
                "read" => match std::fs::read_to_string(path) {
                    Ok(text) => ("ok".to_string(), Some(text)),
                    Err(e) => (format!("denied: {e}"), None),
                },
                "write" => match std::fs::write(path, b"written by test-fs-probe") {
                    Ok(()) => ("ok".to_string(), None),
                    Err(e) => (format!("denied: {e}"), None),
                },
                "raw-read" => {
                    let dir = row
                        .text("dir")
                        .map_err(|e| PluginError::fatal(e.to_string()))?;
                    match raw_read(dir, path) {
                        Ok(text) => ("ok".to_string(), Some(text)),
                        Err(e) => (format!("denied: {e}"), None),
                    }
                }
                other => return Err(PluginError::fatal(format!("unknown op {other}"))),
            };
            let mut b = out.emit_copy(&row);
            b.set("result", result.as_str());
            if let Some(text) = &content {
                b.set("content", text.as_str());
            }
        }
        Ok(())
    }
}

/// Opens `path` relative to the granted folder `dir` through
/// `wasi:filesystem` itself and reads it.
fn raw_read(dir: &str, path: &str) -> Result<String, String> {
    use wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let (root, _) = wasi::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, name)| name == dir)
        .ok_or_else(|| format!("no granted folder {dir}"))?;
    let file = root
        .open_at(
            PathFlags::empty(),
            path,
            OpenFlags::empty(),
            DescriptorFlags::READ,
        )
        .map_err(|e| format!("{e:?}"))?;
    let stream = file.read_via_stream(0).map_err(|e| format!("{e:?}"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(format!("{e:?}")),
        }
    }
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

ferry_plugin::export_mapper!(FsProbe, wit = "../../../wit");
