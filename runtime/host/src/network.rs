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
//!   metadata address 169.254.169.254 does not open them, nor one that
//!   resolves to an IPv6 address standing for them: IPv4-mapped, NAT64,
//!   6to4; see [`is_special`]);
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
//! Every refusal is logged and reported to the [`AuditSink`], capped and
//! rate-limited per plugin instance (see [`crate::audit`]).

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
///
/// Its strings may come from the plugin: [`Denial::new`] caps them, and
/// every denial is capped again before it is logged or audited (see
/// [`crate::audit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// What kind of access: `network`, `filesystem` or `sql`.
    pub capability: &'static str,
    /// What was asked for, such as `tcp connect 169.254.169.254:80`.
    pub target: String,
    /// Why it was refused.
    pub reason: String,
}

/// Receives the run-time denials of a plugin instance that its rate limit
/// lets through (capped), and the counts of those it suppressed.
pub trait AuditSink: Send + Sync {
    /// Records a denial for `stage` of `pipeline`, whose component has `digest`.
    fn denied(&self, pipeline: &str, stage: &str, digest: &str, denial: &Denial);

    /// Records that `count` denials of `capability` were counted instead of
    /// recorded one by one, and `why`. By default, as a denial whose target
    /// is `suppressed <count>`.
    fn suppressed(
        &self,
        pipeline: &str,
        stage: &str,
        digest: &str,
        capability: &'static str,
        count: u64,
        why: &str,
    ) {
        self.denied(
            pipeline,
            stage,
            digest,
            &Denial::suppressed(capability, count, why),
        );
    }
}

/// Loopback, link-local, private, shared, unspecified, broadcast or
/// multicast: addresses a plugin reaches only through an entry naming them.
///
/// An IPv6 address that carries an IPv4 one is judged by the IPv4 address:
/// IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`),
/// IPv4-translated (`::ffff:0:0:0/96`), Teredo (`2001::/32`, the client's
/// address), NAT64
/// (`64:ff9b::/96`, RFC 6052: a NAT64 gateway turns `64:ff9b::7f00:1` into
/// a connection to 127.0.0.1 from its own side) and 6to4 (`2002::/16`, RFC
/// 3056: `2002:a9fe:a9fe::` reaches 169.254.169.254 through a relay). A
/// public IPv4 address behind them is public; a loopback, private or
/// link-local one is special. The local-use NAT64 prefix `64:ff9b:1::/48`
/// (RFC 8215) can embed IPv4 addresses anywhere in it as its operator
/// chooses, so all of it is special. IPv6 loopback, unspecified, multicast,
/// link-local (`fe80::/10`), site-local (`fec0::/10`) and unique local
/// (`fc00::/7`) addresses are special.
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
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return is_special(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001)
        }
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped, IPv4-compatible
/// (but not `::` and `::1`, which are IPv6's own), IPv4-translated, NAT64
/// well-known prefix, 6to4, Teredo (the client address).
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    let last = std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6].iter().all(|&x| x == 0) && !v6.is_loopback() && !v6.is_unspecified() {
        return Some(last);
    }
    // IPv4-translated (SIIT, RFC 2765) and NAT64's well-known prefix.
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] || s[..6] == [0x0064, 0xff9b, 0, 0, 0, 0] {
        return Some(last);
    }
    if s[0] == 0x2002 {
        return Some(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    // Teredo (RFC 4380): the client's IPv4 address, bits inverted.
    if s[0] == 0x2001 && s[1] == 0 {
        return Some(std::net::Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]));
    }
    None
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
    identity: crate::store::Identity,
}

impl HttpHooks {
    pub(crate) fn new(policy: NetworkPolicy, identity: crate::store::Identity) -> Self {
        HttpHooks {
            policy: Arc::new(policy),
            identity,
        }
    }
}

/// Logs and audits a denial through the instance's rate limit, capped
/// (see [`crate::audit`]).
pub(crate) fn report(identity: &crate::store::Identity, denial: Denial) {
    identity.gate.report(denial);
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
            // The URI is the plugin's: any password in it is not the audit
            // log's business, and it is cut before formatting.
            let uri = ferry_manifest::redact_url(&request.uri().to_string()).into_owned();
            let target = format!(
                "http {} {}",
                crate::audit::cap(request.method().as_str(), 32),
                crate::audit::cap(&uri, crate::audit::MAX_QUOTED_BYTES)
            );
            report(&self.identity, Denial::new("network", target, reason));
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
            report(
                &identity,
                Denial::new(
                    "network",
                    format!("{} {addr}", describe(use_)),
                    reason.clone(),
                ),
            );
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
    fn ipv6_forms_of_special_ipv4_addresses_are_special_and_of_public_ones_public() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        for special in [
            // IPv4-mapped and IPv4-compatible
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "::1",
            "::",
            // NAT64, RFC 6052 well-known prefix: the gateway connects to the
            // embedded address from its own network
            "64:ff9b::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.0.1",
            "64:ff9b::100.64.0.1",
            // NAT64 local-use, RFC 8215: the operator places the address
            "64:ff9b:1::",
            "64:ff9b:1:abcd::8.8.8.8",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
            // 6to4, RFC 3056: 2002:<v4>::/48
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:101:1::1",
            "2002:a00:1::",
            // IPv4-translated; Teredo with client 127.0.0.1 (inverted)
            "::ffff:0:7f00:1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            // IPv6's own
            "fe80::1",
            "fec0::1",
            "fd00::1",
            "ff02::1",
        ] {
            assert!(is_special(ip(special)), "{special} must be special");
        }
        for public in [
            "::ffff:93.184.216.34",
            "64:ff9b::93.184.216.34",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
            "2606:4700::1111",
            "2001:0:4136:e378:8000:63bf:a247:27dd",
            "2001:db8::1:2",
            "64:ff9b:2::1",
        ] {
            assert!(!is_special(ip(public)), "{public} must be public");
        }
        let p = policy(&[("*", None), ("localhost", None)]);
        for special in [
            "[64:ff9b::a9fe:a9fe]:80",
            "[2002:7f00:1::]:5432",
            "[64:ff9b:1::1]:80",
        ] {
            let e = p
                .check(addr(special), SocketAddrUse::TcpConnect)
                .expect_err(special);
            assert!(e.contains("no grant names it"), "{e}");
        }
        let literal = policy(&[("64:ff9b::a9fe:a9fe", Some(80))]);
        assert!(
            literal
                .check(addr("[64:ff9b::a9fe:a9fe]:80"), SocketAddrUse::TcpConnect)
                .is_ok(),
            "naming the literal allows it"
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
