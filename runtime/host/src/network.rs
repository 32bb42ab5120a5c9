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
//! refused; the implicit bind a connection makes is allowed. Every refusal
//! is reported to the [`AuditSink`] and logged.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use wasmtime_wasi::sockets::SocketAddrUse;

/// A transport protocol of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP connections.
    Tcp,
    /// UDP datagrams.
    Udp,
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
    /// What kind of access: `network`.
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
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    rules: Vec<NetRule>,
}

impl NetworkPolicy {
    /// A policy from rules.
    pub fn new(rules: Vec<NetRule>) -> Self {
        NetworkPolicy { rules }
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

/// Installs the policy into a WASI context builder, reporting denials.
pub(crate) fn install(
    builder: &mut wasmtime_wasi::WasiCtxBuilder,
    policy: NetworkPolicy,
    audit: Option<Arc<dyn AuditSink>>,
    identity: crate::store::Identity,
) {
    if policy.rules.is_empty() {
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
}
