//! The outbound network allow-list, enforced in `wasi:sockets`' address
//! check, and the audit hook every denial goes through.
//!
//! Rules come from a plugin's `network` grants (`tcp://host:port`). A
//! connection is allowed when a rule of its protocol and port matches its
//! address:
//!
//! - an IP literal matches that address, even a loopback, link-local or
//!   private one: naming it is what allows it;
//! - a name (`db.example.com`) is resolved when the connection is checked
//!   and matches the addresses it resolves to, except loopback, link-local
//!   and private ones (a name that resolves to 127.0.0.1 or to the cloud
//!   metadata address 169.254.169.254 does not open them);
//! - `*` matches any public address;
//! - wildcard names (`*.example.com`) cannot be checked against an address
//!   and match no socket connection.
//!
//! Binding a specific local address, listening and accepting are always
//! refused; the implicit bind a connection makes is allowed.
//!
//! HTTP requests (`http://` and `https://` rules) are checked in the
//! `wasi:http` send hook, where the host sees the name the plugin asked
//! for: a rule matches by scheme, port (80 and 443 by default), and host (an
//! IP literal, the same name, a wildcard name such as `*.example.com`, or
//! `*`). A name is then resolved, and the request is refused when it
//! resolves to a loopback, link-local or private address. (The connection
//! resolves the name again; a DNS answer that changes in between is not
//! caught.)
//!
//! Every refusal is reported to the [`AuditSink`] and logged.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use wasmtime_wasi::sockets::SocketAddrUse;

/// The protocol of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP connections through `wasi:sockets`.
    Tcp,
    /// UDP datagrams through `wasi:sockets`.
    Udp,
    /// Plain HTTP requests through `wasi:http`.
    Http,
    /// HTTPS requests through `wasi:http`.
    Https,
}

/// One allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRule {
    /// Its protocol.
    pub protocol: Protocol,
    /// `*`, a name, a wildcard name, or an IP literal.
    pub host: String,
    /// The port, or any.
    pub port: Option<u16>,
}

/// A refused access, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// What kind of access: `network` or `filesystem`.
    pub capability: &'static str,
    /// What was asked for, such as `tcp connect 169.254.169.254:80`.
    pub target: String,
    /// Why it was refused.
    pub reason: String,
}

/// Receives every run-time denial of a plugin instance.
pub trait AuditSink: Send + Sync {
    /// Records a denial for `stage` of `pipeline`, whose component has `digest`.
    fn denied(&self, pipeline: &str, stage: &str, digest: &str, denial: &Denial);
}

/// Loopback, link-local, private, shared, unspecified, broadcast or
/// multicast: addresses a plugin reaches only through an entry naming them.
pub fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_private()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 0
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_special(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (s[0] & 0xffc0) == 0xfe80
                    || (s[0] & 0xfe00) == 0xfc00
            }
        },
    }
}

/// The allow-list of one plugin instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    rules: Vec<NetRule>,
}

impl NetworkPolicy {
    /// A policy from rules.
    pub fn new(rules: Vec<NetRule>) -> Self {
        NetworkPolicy { rules }
    }

    /// Its rules, in manifest order.
    pub fn rules(&self) -> &[NetRule] {
        &self.rules
    }

    /// Whether any rule uses this protocol.
    pub fn uses(&self, protocol: Protocol) -> bool {
        self.rules.iter().any(|r| r.protocol == protocol)
    }

    /// Whether the access is allowed; the error says why not.
    pub fn check(&self, addr: SocketAddr, use_: SocketAddrUse) -> Result<(), String> {
        match use_ {
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                if addr.ip().is_unspecified() && addr.port() == 0 {
                    Ok(())
                } else {
                    Err(format!("binding the local address {addr} is not allowed"))
                }
            }
            SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => {
                Err("listening for connections is not allowed".to_string())
            }
            SocketAddrUse::TcpConnect => self.matches(Protocol::Tcp, addr),
            // A datagram may come only from a peer it may be sent to.
            SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => self.matches(Protocol::Udp, addr),
        }
    }

    fn matches(&self, protocol: Protocol, addr: SocketAddr) -> Result<(), String> {
        let ip = addr.ip();
        let special = is_special(ip);
        for rule in self
            .rules
            .iter()
            .filter(|r| r.protocol == protocol && r.port.is_none_or(|p| p == addr.port()))
        {
            let host = rule.host.as_str();
            if let Ok(literal) = host.parse::<IpAddr>() {
                if literal == ip {
                    return Ok(());
                }
            } else if host == "*" {
                if !special {
                    return Ok(());
                }
            } else if !host.starts_with("*.") && !special {
                let resolved = (host, addr.port())
                    .to_socket_addrs()
                    .map(|it| it.map(|a| a.ip()).collect::<Vec<_>>());
                if resolved.is_ok_and(|ips| ips.contains(&ip)) {
                    return Ok(());
                }
            }
        }
        Err(if special {
            format!("{ip} is a loopback, link-local or private address and no grant names it")
        } else {
            format!("no network grant allows {addr}")
        })
    }
}

impl NetworkPolicy {
    /// Whether an HTTP request to `uri` is allowed; the error says why not.
    pub fn check_http(&self, uri: &http::Uri) -> Result<(), String> {
        let protocol = match uri.scheme_str() {
            Some("http") => Protocol::Http,
            Some("https") => Protocol::Https,
            other => return Err(format!("scheme {other:?} is not allowed")),
        };
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if protocol == Protocol::Http { 80 } else { 443 });
        let literal = host.parse::<IpAddr>().ok();
        let named = self
            .rules
            .iter()
            .filter(|r| r.protocol == protocol && r.port.is_none_or(|p| p == port))
            .any(|r| match (r.host.parse::<IpAddr>().ok(), literal) {
                (Some(rule_ip), Some(ip)) => rule_ip == ip,
                (Some(_), None) => false,
                (None, Some(ip)) => r.host == "*" && !is_special(ip),
                (None, None) => {
                    r.host == "*"
                        || r.host == host
                        || r.host
                            .strip_prefix("*.")
                            .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")))
                }
            });
        if !named {
            return Err(format!(
                "no network grant allows {}://{host}:{port}",
                uri.scheme_str().unwrap_or("")
            ));
        }
        if literal.is_none() {
            let resolved = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host}: {e}"))?;
            for addr in resolved {
                if is_special(addr.ip()) {
                    return Err(format!(
                        "{host} resolves to {}, a loopback, link-local or private address that no grant names",
                        addr.ip()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The `wasi:http` hooks of one plugin instance: the allow-list in the send
/// hook, denials to the audit log.
pub(crate) struct HttpHooks {
    policy: Arc<NetworkPolicy>,
    audit: Option<Arc<dyn AuditSink>>,
    identity: crate::store::Identity,
}

impl HttpHooks {
    pub(crate) fn new(
        policy: NetworkPolicy,
        audit: Option<Arc<dyn AuditSink>>,
        identity: crate::store::Identity,
    ) -> Self {
        HttpHooks {
            policy: Arc::new(policy),
            audit,
            identity,
        }
    }
}

pub(crate) fn report(
    audit: Option<&Arc<dyn AuditSink>>,
    identity: &crate::store::Identity,
    denial: Denial,
) {
    tracing::warn!(
        pipeline = %identity.pipeline,
        stage = %identity.stage,
        "denied {}: {}",
        denial.target,
        denial.reason
    );
    if let Some(audit) = audit {
        audit.denied(
            &identity.pipeline,
            &identity.stage,
            &identity.digest,
            &denial,
        );
    }
}

type SendFuture = Box<
    dyn std::future::Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
            )>,
        > + Send,
>;

impl wasmtime_wasi_http::WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> SendFuture {
        _ = fut;
        if let Err(reason) = self.policy.check_http(request.uri()) {
            let target = format!("http {} {}", request.method(), request.uri());
            report(
                self.audit.as_ref(),
                &self.identity,
                Denial {
                    capability: "network",
                    target,
                    reason,
                },
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }
}

/// Installs the policy into a WASI context builder, reporting denials.
pub(crate) fn install(
    builder: &mut wasmtime_wasi::WasiCtxBuilder,
    policy: NetworkPolicy,
    audit: Option<Arc<dyn AuditSink>>,
    identity: crate::store::Identity,
) {
    if !policy.uses(Protocol::Tcp) && !policy.uses(Protocol::Udp) {
        return;
    }
    builder
        .allow_tcp(policy.uses(Protocol::Tcp))
        .allow_udp(policy.uses(Protocol::Udp))
        .allow_ip_name_lookup(true);
    let policy = Arc::new(policy);
    builder.socket_addr_check(move |addr, use_| {
        let decision = policy.check(addr, use_);
        if let Err(reason) = &decision {
            let denial = Denial {
                capability: "network",
                target: format!("{} {addr}", describe(use_)),
                reason: reason.clone(),
            };
            tracing::warn!(
                pipeline = %identity.pipeline,
                stage = %identity.stage,
                "denied {}: {}",
                denial.target,
                denial.reason
            );
            if let Some(audit) = &audit {
                audit.denied(
                    &identity.pipeline,
                    &identity.stage,
                    &identity.digest,
                    &denial,
                );
            }
        }
        let allowed = decision.is_ok();
        Box::pin(async move { allowed })
    });
}

fn describe(use_: SocketAddrUse) -> &'static str {
    match use_ {
        SocketAddrUse::TcpBind => "tcp bind",
        SocketAddrUse::TcpListen => "tcp listen",
        SocketAddrUse::TcpAccept => "tcp accept",
        SocketAddrUse::TcpConnect => "tcp connect",
        SocketAddrUse::UdpBind => "udp bind",
        SocketAddrUse::UdpSend => "udp send",
        SocketAddrUse::UdpReceive => "udp receive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[(&str, Option<u16>)]) -> NetworkPolicy {
        NetworkPolicy::new(
            rules
                .iter()
                .map(|(h, p)| NetRule {
                    protocol: Protocol::Tcp,
                    host: h.to_string(),
                    port: *p,
                })
                .collect(),
        )
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn literals_allow_exactly_their_address_even_loopback() {
        let p = policy(&[("127.0.0.1", Some(5432))]);
        assert!(
            p.check(addr("127.0.0.1:5432"), SocketAddrUse::TcpConnect)
                .is_ok()
        );
        assert!(
            p.check(addr("127.0.0.1:5433"), SocketAddrUse::TcpConnect)
                .is_err()
        );
        assert!(
            p.check(addr("127.0.0.2:5432"), SocketAddrUse::TcpConnect)
                .is_err()
        );
    }

    #[test]
    fn star_and_names_never_open_special_ranges() {
        let p = policy(&[("*", None), ("localhost", None)]);
        for special in [
            "127.0.0.1:80",
            "169.254.169.254:80",
            "10.0.0.1:80",
            "192.168.1.1:80",
            "[::1]:80",
            "[fe80::1]:80",
            "[::ffff:127.0.0.1]:80",
        ] {
            let e = p
                .check(addr(special), SocketAddrUse::TcpConnect)
                .expect_err(special);
            assert!(e.contains("no grant names it"), "{e}");
        }
        assert!(
            p.check(addr("93.184.216.34:443"), SocketAddrUse::TcpConnect)
                .is_ok(),
            "a public address"
        );
    }

    #[test]
    fn listening_and_explicit_binds_are_refused() {
        let p = policy(&[("*", None)]);
        assert!(
            p.check(addr("0.0.0.0:0"), SocketAddrUse::TcpBind).is_ok(),
            "the implicit bind of a connect"
        );
        assert!(
            p.check(addr("0.0.0.0:8080"), SocketAddrUse::TcpBind)
                .is_err()
        );
        assert!(
            p.check(addr("0.0.0.0:0"), SocketAddrUse::TcpListen)
                .is_err()
        );
        assert!(
            p.check(addr("93.184.216.34:53"), SocketAddrUse::UdpSend)
                .is_err(),
            "no udp rule"
        );
    }

    #[test]
    fn http_requests_match_scheme_host_and_port_and_special_literals_need_naming() {
        let rules = |list: &[(Protocol, &str, Option<u16>)]| {
            NetworkPolicy::new(
                list.iter()
                    .map(|(p, h, port)| NetRule {
                        protocol: *p,
                        host: h.to_string(),
                        port: *port,
                    })
                    .collect(),
            )
        };
        let uri = |s: &str| s.parse::<http::Uri>().expect("a uri");
        let p = rules(&[
            (Protocol::Http, "127.0.0.1", Some(8080)),
            (Protocol::Https, "*.example.com", Some(443)),
        ]);
        assert!(p.check_http(&uri("http://127.0.0.1:8080/x")).is_ok());
        assert!(p.check_http(&uri("http://127.0.0.1:8081/x")).is_err());
        assert!(
            p.check_http(&uri("https://127.0.0.1:8080/x")).is_err(),
            "the scheme must match"
        );
        assert!(p.check_http(&uri("https://evil.test/")).is_err());
        assert!(
            p.check_http(&uri("http://api.example.com/")).is_err(),
            "https only"
        );
        let any = rules(&[(Protocol::Http, "*", None)]);
        let e = any
            .check_http(&uri("http://169.254.169.254/latest/meta-data"))
            .expect_err("metadata");
        assert!(e.contains("no network grant allows"), "{e}");
        assert!(any.check_http(&uri("http://[::1]:80/")).is_err());
    }
}
