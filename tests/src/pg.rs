//! A real PostgreSQL server for the tests, started on first use and stopped
//! when the test process ends.
//!
//! - The binaries: `$FERRY_PG_BIN` if set, else `pg_config --bindir`, else
//!   the highest `/usr/lib/postgresql/<version>/bin`, else `PATH`
//!   (`scripts/setup.sh` installs Debian's `postgresql`).
//! - PostgreSQL refuses to run as root, and CI runs the tests as root: then
//!   the server's folder belongs to user `postgres` and `initdb` / `pg_ctl`
//!   run through `runuser -u postgres --`.
//! - The server listens on 127.0.0.1 on a free port (trust authentication,
//!   user `postgres`), its socket in its own temp folder, with
//!   `wal_level=logical` and room for replication slots (CDC tests use
//!   `pg_recvlogical`), and `fsync=off`.
//! - Rust runs no destructor for a static, and a test process may be killed:
//!   a watchdog (`sh`, in a process group of its own so that Ctrl-C on the
//!   test run does not kill it first) waits for the test process to go away,
//!   then stops the server (`pg_ctl stop -m immediate`) and removes the
//!   folder. Servers from [`Postgres::start_with`] are also stopped on drop.

// Test support: a server that cannot start fails the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

const NOT_INSTALLED: &str =
    "PostgreSQL is not installed: run scripts/setup.sh (installs the Debian package postgresql)";

/// A running server.
pub struct Postgres {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its temp folder: `data/`, the socket, `server.log`.
    dir: PathBuf,
    bin_dir: PathBuf,
    /// Run server tools as user `postgres` (we are root).
    as_postgres: bool,
    databases: AtomicU32,
    watchdog: Option<Child>,
    /// Stop the server on drop (not the static one: statics never drop).
    stop_on_drop: bool,
}

/// The test binary's shared server, started on first use.
pub fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut pg = Postgres::start_with(|_| Vec::new());
        pg.stop_on_drop = false;
        pg
    })
}

/// Where the PostgreSQL server binaries are.
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(find_bin_dir).clone()
}

fn find_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERRY_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("initdb").exists(),
            "FERRY_PG_BIN={} has no initdb. {NOT_INSTALLED}",
            dir.display()
        );
        return dir;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").exists() {
                return dir;
            }
        }
    }
    panic!("{NOT_INSTALLED}");
}

fn is_root() -> bool {
    // The effective uid is the second field of `Uid:`.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn runuser() -> &'static str {
    ["/usr/sbin/runuser", "/sbin/runuser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("runuser")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Postgres {
    /// Starts a server of its own (stopped on drop). `prepare` runs first
    /// with the server's temp folder, may write files there (certificates:
    /// the folder is handed to user `postgres` afterwards), and returns
    /// extra `postgresql.conf` settings such as `("ssl", "on")`.
    pub fn start_with(prepare: impl FnOnce(&Path) -> Vec<(String, String)>) -> Postgres {
        static SERVERS: AtomicU32 = AtomicU32::new(0);
        let bin_dir = bin_dir();
        let as_postgres = is_root();
        // /tmp rather than $TMPDIR as root: user postgres must reach it.
        let base = if as_postgres {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "ferry-pg-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the server's temp folder");
        let extra = prepare(&dir);
        let mut pg = Postgres {
            port: 0,
            dir,
            bin_dir,
            as_postgres,
            databases: AtomicU32::new(0),
            watchdog: None,
            stop_on_drop: true,
        };
        // Before anything that can fail: whatever happens, the folder (and a
        // server, once started) goes away with the test process.
        pg.watchdog = Some(pg.start_watchdog());
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot hand {} to user postgres (does the user exist? {NOT_INSTALLED})",
                pg.dir.display()
            );
        }
        pg.initdb(&extra);
        pg.start_server();
        pg
    }

    /// A command for a server tool, as user `postgres` when we are root.
    fn server_tool(&self, tool: &str) -> Command {
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new(runuser());
            cmd.args(["-u", "postgres", "--"]).arg(self.bin(tool));
            cmd
        } else {
            Command::new(self.bin(tool))
        };
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        cmd
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn initdb(&self, extra: &[(String, String)]) {
        let out = self
            .server_tool("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut settings: Vec<(String, String)> = [
            ("listen_addresses", "127.0.0.1"),
            ("wal_level", "logical"),
            ("max_replication_slots", "20"),
            ("max_wal_senders", "20"),
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("shared_buffers", "16MB"),
            ("max_connections", "100"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        settings.push((
            "unix_socket_directories".into(),
            self.dir.to_string_lossy().into_owned(),
        ));
        settings.extend(extra.iter().cloned());
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("postgresql.conf"))
            .expect("postgresql.conf");
        writeln!(conf, "\n# ferry tests").expect("postgresql.conf");
        for (key, value) in settings {
            writeln!(conf, "{key} = {}", quote(&value)).expect("postgresql.conf");
        }
    }

    fn start_server(&mut self) {
        let log = self.dir.join("server.log");
        for _attempt in 0..5 {
            let port = free_port();
            let out = self
                .server_tool("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {port}"))
                .arg("start")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .expect("pg_ctl runs");
            if out.status.success() {
                self.port = port;
                return;
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("could not bind") || text.contains("already in use") {
                continue; // someone took the port meanwhile
            }
            panic!(
                "PostgreSQL did not start:\n{}{}\n--- server.log ---\n{text}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("PostgreSQL did not find a free port in 5 tries");
    }

    /// `sh` waiting for this process to end, then stopping the server and
    /// removing its folder.
    fn start_watchdog(&self) -> Child {
        let pg_ctl = self.bin("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "{} -u postgres -- {} -D {} stop -m immediate -w",
                runuser(),
                quote(&pg_ctl.to_string_lossy()),
                quote(&self.data().to_string_lossy())
            )
        } else {
            format!(
                "{} -D {} stop -m immediate -w",
                quote(&pg_ctl.to_string_lossy()),
                quote(&self.data().to_string_lossy())
            )
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; \
             if [ -f {pidfile} ]; then {stop}; fi; rm -rf {dir}",
            pid = std::process::id(),
            pidfile = quote(&self.data().join("postmaster.pid").to_string_lossy()),
            dir = quote(&self.dir.to_string_lossy()),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("the watchdog starts")
    }

    /// A PostgreSQL binary, such as `bin("pg_recvlogical")`.
    pub fn bin(&self, tool: &str) -> PathBuf {
        self.bin_dir.join(tool)
    }

    /// A fresh, empty database with a unique name (`<hint>_<pid>_<n>`).
    pub fn create_database(&self, hint: &str) -> String {
        let clean: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!(
            "{clean}_{}_{}",
            std::process::id(),
            self.databases.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        name
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL through `psql -X -q -At -v ON_ERROR_STOP=1`; returns its
    /// output, panics with its errors.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let mut child = Command::new(self.bin("psql"))
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(db)
            .args(["-f", "-"])
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql runs");
        child
            .stdin
            .take()
            .expect("psql's stdin")
            .write_all(sql.as_bytes())
            .expect("SQL to psql");
        let out = child.wait_with_output().expect("psql ends");
        assert!(
            out.status.success(),
            "psql failed on database {db}:\n{sql}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("psql prints UTF-8")
    }

    /// A client of the sync `postgres` crate, for seeding and checking.
    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname={db} application_name=ferry-tests",
                self.port
            ),
            postgres::NoTls,
        )
        .expect("a connection to the test server")
    }

    /// The server's temp folder (its log is `server.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.stop_on_drop {
            return;
        }
        let _ = self
            .server_tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}
