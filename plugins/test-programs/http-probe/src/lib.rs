//! `test-http-probe`: a mapper that sends the HTTP GET each record asks for
//! through `wasi:http` and reports what happened, for the host's sandbox
//! tests. Not a user plugin.
//!
//! Each input record has `url` (`http://host:port/path`); the output is the
//! same record with `result`: `status <code>` or `denied: <error>`.

use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The plugin; it takes no configuration.
pub struct HttpProbe;

#[cfg(target_arch = "wasm32")]
fn get(url: &str) -> Result<u16, String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, OutgoingBody, OutgoingRequest, Scheme};

    let (scheme, rest) = url.split_once("://").ok_or("the url has no scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "bad scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "bad authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "bad path")?;
    let body = request.body().map_err(|()| "no body")?;
    let response = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    response.subscribe().block();
    match response.get() {
        Some(Ok(Ok(r))) => Ok(r.status()),
        Some(Ok(Err(e))) => Err(format!("{e:?}")),
        Some(Err(())) => Err("the response was already taken".to_string()),
        None => Err("no response".to_string()),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn get(_url: &str) -> Result<u16, String> {
    Err("wasi:http exists only in the wasm build".to_string())
}

impl Mapper for HttpProbe {
    type Config = ();

    fn open(_: ()) -> Result<Self, PluginError> {
        Ok(HttpProbe)
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            let url = row
                .text("url")
                .map_err(|e| PluginError::fatal(e.to_string()))?;
            let result = match get(url) {
                Ok(status) => format!("status {status}"),
                Err(e) => format!("denied: {e}"),
            };
            out.emit_copy(&row).set("result", result.as_str());
        }
        Ok(())
    }
}

ferry_plugin::export_mapper!(HttpProbe, wit = "../../../wit");
