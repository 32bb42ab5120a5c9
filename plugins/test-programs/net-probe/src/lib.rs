//! `test-net-probe`: a mapper that tries the network access each record asks
//! for and reports what happened, for the host's sandbox tests. Not a user
//! plugin.
//!
//! Each input record has `op` and `addr`:
//!
//! | op | what it tries |
//! |---|---|
//! | `connect` | a TCP connection to `addr` (`host:port`; a name is resolved through `wasi:sockets`) |
//! | `listen` | a TCP listener on `addr` |
//! | `udp` | a UDP datagram to `addr` from an unbound socket |
//!
//! The output is the same record with `result`: `ok` or `denied: <error>`.
//! Because it uses `std::net`, the component imports `wasi:sockets`, so a
//! manifest must grant it `network` entries or the host refuses it at plan
//! time.

use std::io::Write;

use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The plugin; it takes no configuration.
pub struct NetProbe;

fn attempt(op: &str, addr: &str) -> Result<(), String> {
    match op {
        "connect" => {
            let mut stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
            stream
                .write_all(b"hello from test-net-probe\n")
                .map_err(|e| e.to_string())
        }
        "listen" => std::net::TcpListener::bind(addr)
            .map(drop)
            .map_err(|e| e.to_string()),
        "udp" => {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            socket
                .send_to(b"hello", addr)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        other => Err(format!("unknown op {other}")),
    }
}

impl Mapper for NetProbe {
    type Config = ();

    fn open(_: ()) -> Result<Self, PluginError> {
        Ok(NetProbe)
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            let op = row
                .text("op")
                .map_err(|e| PluginError::fatal(e.to_string()))?;
            let addr = row
                .text("addr")
                .map_err(|e| PluginError::fatal(e.to_string()))?;
            let result = match attempt(op, addr) {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("denied: {e}"),
            };
            out.emit_copy(&row).set("result", result.as_str());
        }
        Ok(())
    }
}

ferry_plugin::export_mapper!(NetProbe, wit = "../../../wit");
