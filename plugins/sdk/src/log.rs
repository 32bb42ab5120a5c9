//! Logging through the host: lines go to the host's log, tagged with the
//! pipeline, the stage and the plugin digest.
//!
//! ```
//! ferry_plugin::log::info!("opened {} files", 2);
//! ferry_plugin::log::warn!("skipping line {}", 17);
//! ```
//!
//! Off wasm (unit tests on the build machine) the lines go to standard
//! error instead, since there is no host to call.

pub use crate::host::Level;

/// Whether the host writes lines at `level` (its log filter), so a plugin
/// can skip building a message nobody reads. The macros below check it
/// before formatting. Needs a host of contract 0.1.1 or later.
pub fn enabled(level: Level) -> bool {
    #[cfg(target_arch = "wasm32")]
    return crate::host::log_enabled(level);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = level;
        true
    }
}

/// Writes one line at `level`. The macros below format and call this.
pub fn write(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

#[doc(hidden)]
#[macro_export]
macro_rules! __ferry_log {
    ($level:ident, $($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::$level) {
            $crate::log::write($crate::log::Level::$level, &::std::format!($($arg)+))
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __ferry_log_trace { ($($arg:tt)+) => { $crate::__ferry_log!(Trace, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __ferry_log_debug { ($($arg:tt)+) => { $crate::__ferry_log!(Debug, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __ferry_log_info { ($($arg:tt)+) => { $crate::__ferry_log!(Info, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __ferry_log_warn { ($($arg:tt)+) => { $crate::__ferry_log!(Warn, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __ferry_log_error { ($($arg:tt)+) => { $crate::__ferry_log!(Error, $($arg)+) }; }

/// Logs at debug level, with `format!` arguments.
pub use crate::__ferry_log_debug as debug;
/// Logs at error level, with `format!` arguments.
pub use crate::__ferry_log_error as error;
/// Logs at info level, with `format!` arguments.
pub use crate::__ferry_log_info as info;
/// Logs at trace level, with `format!` arguments.
pub use crate::__ferry_log_trace as trace;
/// Logs at warn level, with `format!` arguments.
pub use crate::__ferry_log_warn as warn;
