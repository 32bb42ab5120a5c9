//! Which grant each imported interface needs.
//!
//! A component declares every interface it imports; the host refuses, before
//! anything runs, a component that imports something its manifest entry does
//! not grant. Interfaces fall into a few classes:
//!
//! | class | interfaces | needs |
//! |---|---|---|
//! | sql | `ferry:plugin/sql` | nothing to load: only connections named in `sql` grants answer; any other name is denied and audited |
//! | baseline | `ferry:plugin/*`, `wasi:io`, `wasi:clocks`, `wasi:random`, `wasi:cli` stdio, exit and terminal | nothing: stdout is discarded, stderr captured, no terminal |
//! | environment | `wasi:cli/environment` | nothing: the environment is empty and there are no arguments |
//! | files | `wasi:filesystem/*` | nothing to load: only folders named in `files` grants are visible, so without one the plugin sees no file at all |
//! | network | `wasi:sockets/*`, `wasi:http/*` | a `network` grant; each connection is then checked against it (see `network`) |
//! | unknown | anything else | refused: the host does not provide it |

/// What an imported interface gives access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Always available and harmless.
    Baseline,
    /// Environment variables and arguments (empty unless granted).
    Environment,
    /// The filesystem: only folders named in `files` grants.
    Files,
    /// Outbound or inbound network access.
    Network,
    /// Named SQL connections, through the host's drivers.
    Sql,
    /// An interface the host does not provide.
    Unknown,
}

impl Capability {
    /// The class of an import name such as `wasi:filesystem/types@0.2.6`.
    pub fn of(import: &str) -> Capability {
        let name = import.split('@').next().unwrap_or(import);
        let (package, interface) = name.split_once('/').unwrap_or((name, ""));
        match package {
            "ferry:plugin" if interface == "sql" => Capability::Sql,
            "ferry:plugin" | "wasi:io" | "wasi:clocks" | "wasi:random" => Capability::Baseline,
            "wasi:cli" if interface == "environment" => Capability::Environment,
            "wasi:cli" => Capability::Baseline,
            "wasi:filesystem" => Capability::Files,
            "wasi:sockets" | "wasi:http" => Capability::Network,
            _ => Capability::Unknown,
        }
    }

    /// A short name for reports: `baseline`, `environment`, `files`,
    /// `network`, `sql` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Baseline => "baseline",
            Capability::Environment => "environment",
            Capability::Files => "files",
            Capability::Network => "network",
            Capability::Sql => "sql",
            Capability::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Capability;

    #[test]
    fn imports_map_to_the_grant_they_need() {
        assert_eq!(
            Capability::of("wasi:filesystem/preopens@0.2.6"),
            Capability::Files
        );
        assert_eq!(
            Capability::of("wasi:sockets/tcp@0.2.0"),
            Capability::Network
        );
        assert_eq!(
            Capability::of("wasi:http/outgoing-handler@0.2.0"),
            Capability::Network
        );
        assert_eq!(
            Capability::of("wasi:cli/environment@0.2.6"),
            Capability::Environment
        );
        assert_eq!(
            Capability::of("wasi:cli/stderr@0.2.6"),
            Capability::Baseline
        );
        assert_eq!(
            Capability::of("wasi:io/streams@0.2.6"),
            Capability::Baseline
        );
        assert_eq!(
            Capability::of("ferry:plugin/host@0.1.0"),
            Capability::Baseline
        );
        assert_eq!(Capability::of("acme:secrets/vault"), Capability::Unknown);
    }
}
