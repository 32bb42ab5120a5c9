//! TLS for PostgreSQL connections: tokio-postgres' `MakeTlsConnect` over
//! tokio-rustls, with rustls' ring provider (the TLS stack wasmtime-wasi-http
//! already brings).
//!
//! - [`Tls::Require`]: encrypted, the server's certificate is not checked
//!   (libpq's `sslmode=require`); handshake signatures are still verified.
//! - [`Tls::VerifyFull`]: the chain must lead to a trusted root — the PEM
//!   `ca_file` if given, else the Mozilla roots of webpki-roots — and the
//!   certificate must name the host (DNS name or IP address) of the URL.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use super::Tls;

/// Makes a TLS session per connection; cheap to clone.
#[derive(Clone)]
pub(crate) struct MakeRustls {
    /// None for [`Tls::Disable`]: tokio-postgres then never asks for TLS.
    config: Option<Arc<ClientConfig>>,
}

impl MakeRustls {
    /// The connector for a connection's TLS settings. Reads `ca_file` now.
    pub(crate) fn new(tls: Tls, ca_file: Option<&Path>) -> Result<MakeRustls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let config = match tls {
            Tls::Disable => return Ok(MakeRustls { config: None }),
            Tls::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCertCheck {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth(),
            Tls::VerifyFull => {
                let mut roots = RootCertStore::empty();
                match ca_file {
                    Some(path) => {
                        let certs = CertificateDer::pem_file_iter(path)
                            .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
                        if certs.is_empty() {
                            return Err(format!(
                                "ca_file {} holds no PEM certificate",
                                path.display()
                            ));
                        }
                        for cert in certs {
                            roots.add(cert).map_err(|e| {
                                format!("ca_file {}: unusable certificate: {e}", path.display())
                            })?;
                        }
                    }
                    None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        Ok(MakeRustls {
            config: Some(Arc::new(config)),
        })
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        // tokio-postgres asks for a connector even when TLS is off: fail
        // only if a handshake is actually attempted.
        Ok(RustlsConnect {
            config: self.config.clone(),
            domain: domain.to_string(),
        })
    }
}

/// One pending handshake.
pub(crate) struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    domain: String,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let config = self
                .config
                .ok_or_else(|| io::Error::other("TLS is disabled for this connection"))?;
            let name = ServerName::try_from(self.domain.clone()).map_err(|_| {
                io::Error::other(format!("`{}` is not a valid TLS server name", self.domain))
            })?;
            let connector = tokio_rustls::TlsConnector::from(config);
            let tls = connector.connect(name, stream).await?;
            Ok(RustlsStream(tls))
        })
    }
}

/// A TLS session over a socket.
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> tokio_postgres::tls::TlsStream for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM then runs without channel binding (`channel_binding=prefer`).
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// `Tls::Require`: any certificate is accepted (as libpq's
/// `sslmode=require`), but the handshake signatures must still verify.
#[derive(Debug)]
struct NoCertCheck {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoCertCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// An error with the errors it wraps: "error performing TLS handshake:
/// invalid peer certificate: UnknownIssuer" (tokio-postgres' own messages
/// leave the cause out).
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}

/// Whether a connection failed on a TLS handshake that was refused on
/// purpose: a certificate that does not verify, a refused protocol, a
/// server without TLS. Such a failure will not pass by itself (unlike an
/// I/O error in the middle of a handshake).
pub(crate) fn is_tls_failure(err: &tokio_postgres::Error) -> bool {
    let mut plain_io = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return true;
            }
            plain_io = true;
        }
        cur = e.source();
    }
    // tokio-postgres' own refusals ("server does not support TLS").
    !plain_io
        && err
            .to_string()
            .starts_with("error performing TLS handshake")
}
