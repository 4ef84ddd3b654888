//! A throwaway PostgreSQL cluster on loopback: initdb into a temporary folder, a free port, scram-sha-256 auth, TLS with a generated certificate. Stopped and removed on drop.

use std::error::Error as _;
use std::fs::Permissions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use attest_core::watchdog::Watchdog;
use tempfile::TempDir;
use tokio_postgres::{config::SslMode, NoTls};

const HOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Another process may grab the port between our probe and the server's bind.
const BIND_ATTEMPTS: usize = 5;
const MISSING: &str = "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's \
                       `postgresql` package or set PG_BINDIR to the folder holding them";
/// Loopback only. Durability is worthless in a throwaway cluster; a fast start is not.
const SETTINGS: &str = "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
                        -c full_page_writes=off -c shared_buffers=16MB \
                        -c password_encryption=scram-sha-256";

pub struct PostgresOptions {
    pub superuser_password: String,
    pub tls: bool,
    /// The server's `max_connections`; 50 when unset.
    pub max_connections: Option<u32>,
}

/// A running cluster; stopped and removed by [`TempPostgres::stop`] or on drop.
pub struct TempPostgres {
    /// Removed on drop, after the server is stopped.
    _dir: TempDir,
    root: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    password: String,
    ca_cert: Option<PathBuf>,
    max_connections: u32,
    /// uid and gid of the `postgres` user when we run as root, which PostgreSQL refuses.
    run_as: Option<(u32, u32)>,
    /// Stops the server and removes its folder if this process dies without doing so (even
    /// by SIGKILL; see [`Watchdog`]).
    watchdog: Option<Watchdog>,
}

impl TempPostgres {
    /// Finds the binaries (PG_BINDIR env var, else `pg_config --bindir`, else the newest
    /// /usr/lib/postgresql/*/bin); a clear error naming Debian's `postgresql` package when missing.
    pub async fn start(options: PostgresOptions) -> Result<TempPostgres, String> {
        let bin_dir = find_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("attest-pg-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
        let root = dir.path().to_path_buf();
        // The folder belongs to our effective uid: as root, hand it to `postgres`.
        let owner = std::fs::metadata(&root).map_err(|e| format!("cannot read {root:?}: {e}"))?;
        let run_as = (owner.uid() == 0).then(postgres_user).transpose()?;
        let mut pg = TempPostgres {
            _dir: dir,
            root,
            bin_dir,
            port: 0,
            password: options.superuser_password,
            ca_cert: None,
            max_connections: options.max_connections.unwrap_or(50),
            run_as,
            watchdog: None,
        };
        pg.chown(&pg.root)?;
        pg.watchdog = Some(pg.watchdog()?);
        let pwfile = pg.write("pwfile", &pg.password)?;
        let mut initdb = pg.command("initdb");
        let auth = ["--auth=scram-sha-256", "--username=postgres"];
        initdb.arg("-D").arg(pg.root.join("data")).args(auth);
        initdb.args(["-E", "UTF8", "--locale=C", "--no-sync"]);
        initdb.arg(format!("--pwfile={}", pwfile.display()));
        let initdb = run(initdb, "initdb").await;
        let _ = std::fs::remove_file(&pwfile);
        initdb?;
        // `host` lines take TLS and plain TCP alike.
        let hba = "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n";
        pg.write("data/pg_hba.conf", hba)?;
        if options.tls {
            pg.ca_cert = Some(pg.write_certificates()?);
        }
        for attempt in 1..=BIND_ATTEMPTS {
            pg.port = free_port()?;
            match pg.resume().await {
                Ok(()) => return Ok(pg),
                Err(_) if attempt < BIND_ATTEMPTS && pg.log_tail().contains("could not bind") => {}
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// PEM of the CA that signed the server certificate (for verify-full); `None` without TLS.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// Where pg_dump and pg_restore live, matching the server's version.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Connects as the superuser to `dbname` (plain TCP, no TLS), for test setup and assertions.
    pub async fn superuser_client(&self, dbname: &str) -> Result<tokio_postgres::Client, String> {
        let mut config = tokio_postgres::Config::new();
        config.host(HOST).port(self.port).user(SUPERUSER);
        config.dbname(dbname).password(&self.password);
        config.connect_timeout(Duration::from_secs(5));
        let connected = config.ssl_mode(SslMode::Disable).connect(NoTls).await;
        let (client, connection) = connected.map_err(|e| {
            // Display leaves out the cause: the server's message, or the I/O error.
            let cause = e.source().map_or(String::new(), |c| format!(": {c}"));
            let port = self.port;
            format!("cannot connect to the temporary PostgreSQL on {HOST}:{port}: {e}{cause}")
        })?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Stops the server immediately and removes the data directory (also done on drop).
    pub async fn stop(self) {
        // Drop does it all; it blocks for a moment, so off the async threads.
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }

    /// Stops the server but keeps the data directory, for tests of "server down mid-run".
    pub async fn pause(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-m", "fast", "-t", "30"]).await
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub async fn resume(&self) -> Result<(), String> {
        // A fresh log per start, so "could not bind" is about this one.
        let log = self.root.join("server.log").display().to_string();
        let _ = std::fs::remove_file(&log);
        // pg_ctl hands `-o` to /bin/sh, hence the quoting.
        let file = |name: &str| shell_quote(&self.root.join(name).display().to_string());
        let (port, socket_dir) = (self.port, file("."));
        let max = self.max_connections;
        let mut options = format!(
            "-p {port} -c unix_socket_directories={socket_dir} -c max_connections={max} {SETTINGS}"
        );
        if self.ca_cert.is_some() {
            let (cert, key) = (file("server.crt"), file("server.key"));
            options += &format!(" -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}");
        }
        let args = ["start", "-l", &log, "-o", &options, "-w", "-t", "30"];
        let log_tail = |e| {
            let why = format!("the temporary PostgreSQL did not start on {HOST}:{port}: {e}");
            format!("{why}\nits log ends with:\n{}", self.log_tail())
        };
        let clock = Instant::now();
        self.pg_ctl(&args).await.map_err(log_tail)?;
        loop {
            match self.superuser_client("postgres").await {
                Ok(_) => return Ok(()),
                Err(e) if clock.elapsed() > READY_TIMEOUT => return Err(log_tail(e)),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// A command from `bin_dir`, run as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command.current_dir(&self.root).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            // std also drops supplementary groups when root switches uid.
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Once this process is gone, stops the server and removes the cluster's files.
    fn watchdog(&self) -> Result<Watchdog, String> {
        let script = r#"read -r line
"$0" -D "$1/data" stop -m immediate -t 10 >/dev/null 2>&1; rm -rf "$1" 2>/dev/null"#;
        Watchdog::start(script, |shell| {
            shell.arg(self.bin_dir.join("pg_ctl")).arg(&self.root);
            if let Some((uid, gid)) = self.run_as {
                shell.uid(uid).gid(gid);
            }
        })
        .map_err(|e| format!("cannot start the PostgreSQL watchdog: {e}"))
    }

    /// `pg_ctl ACTION [OPTIONS]` on the cluster's data directory.
    fn pg_ctl_command(&self, args: &[&str]) -> Command {
        let mut command = self.command("pg_ctl");
        command.arg("-D").arg(self.root.join("data")).args(args);
        command
    }

    async fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        run(self.pg_ctl_command(args), &format!("pg_ctl {}", args[0])).await
    }

    /// The last lines of the server log, to explain a failed start.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn chown(&self, path: &Path) -> Result<(), String> {
        let (uid, gid) = (self.run_as.map(|r| r.0), self.run_as.map(|r| r.1));
        std::os::unix::fs::chown(path, uid, gid)
            .map_err(|e| format!("cannot give {} to the postgres user: {e}", path.display()))
    }

    /// Writes a file in the cluster's folder, private to the server's user as PostgreSQL
    /// insists for its key (the folder itself is private too).
    fn write(&self, name: &str, content: &str) -> Result<PathBuf, String> {
        let path = self.root.join(name);
        std::fs::write(&path, content)
            .and_then(|()| std::fs::set_permissions(&path, Permissions::from_mode(0o600)))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        self.chown(&path)?;
        Ok(path)
    }

    /// A CA, and a server certificate it signs for `localhost` and 127.0.0.1; returns the CA path.
    fn write_certificates(&self) -> Result<PathBuf, String> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
        let tls = |e: rcgen::Error| format!("cannot generate the test TLS certificate: {e}");
        let ca_key = KeyPair::generate().map_err(tls)?;
        let mut ca = CertificateParams::default();
        let ca_name = "attest temporary PostgreSQL CA";
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).map_err(tls)?;
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().map_err(tls)?;
        let mut server =
            CertificateParams::new(["localhost", HOST].map(String::from)).map_err(tls)?;
        let dn = &mut server.distinguished_name;
        dn.push(DnType::CommonName, "localhost");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = server.signed_by(&key, &issuer).map_err(tls)?;
        self.write("server.crt", &cert.pem())?;
        self.write("server.key", &key.serialize_pem())?;
        self.write("ca.crt", &ca_cert.pem())
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // -t bounds the wait, so drop cannot hang on a stuck server; fails harmlessly when paused.
        let _ = self
            .pg_ctl_command(&["stop", "-m", "immediate", "-t", "10"])
            .output();
        if let Some(mut watchdog) = self.watchdog.take() {
            watchdog.stand_down();
        }
    }
}

/// Runs a command to completion; its stderr explains a failure.
async fn run(command: Command, what: &str) -> Result<(), String> {
    let output = tokio::process::Command::from(command).output().await;
    let output = output.map_err(|e| format!("cannot run {what}: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.success() {
        true => Ok(()),
        false => Err(format!("{what} failed: {}", stderr.trim())),
    }
}

/// The folder of the server programs, found by attest-core's one search for PostgreSQL
/// programs, so the sandbox and `pg-backup` agree on which installation they use.
fn find_bin_dir() -> Result<PathBuf, String> {
    let initdb = attest_core::pg::find_program("initdb").map_err(|e| format!("{e}; {MISSING}"))?;
    let dir = initdb.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.join("pg_ctl").is_file() {
        Ok(dir)
    } else {
        Err(format!(
            "{}: no pg_ctl beside initdb; {MISSING}",
            dir.display()
        ))
    }
}

/// uid and gid of the `postgres` system user, from /etc/passwd.
fn postgres_user() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.len() > 3 && fields[0] == "postgres")
        .and_then(|fields| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
        .ok_or_else(|| {
            "PostgreSQL refuses to run as root and there is no `postgres` user to run it as; \
             install Debian's `postgresql` package (it creates the user) or run as another user"
                .to_owned()
        })
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind((HOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port on {HOST}: {e}"))
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;
    use tokio_postgres::{error::SqlState, Client};

    const PASSWORD: &str = "s3cret-Pw";

    async fn started(tls: bool) -> TempPostgres {
        let clock = Instant::now();
        let superuser_password = PASSWORD.to_owned();
        let options = PostgresOptions {
            superuser_password,
            tls,
            max_connections: None,
        };
        let pg = TempPostgres::start(options).await.unwrap();
        eprintln!("start (tls: {tls}) took {:?}", clock.elapsed());
        pg
    }

    /// Connects as the superuser over TCP; with TLS required and verified against the cluster's
    /// own CA when it has one.
    async fn connect(pg: &TempPostgres, password: &str) -> Result<Client, tokio_postgres::Error> {
        let (host, port) = (pg.host(), pg.port());
        let text = format!("host={host} port={port} user=postgres password={password}");
        let mut config: tokio_postgres::Config = text.parse()?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ca) = pg.ca_cert_path() {
            let pem = std::fs::read(ca).unwrap();
            roots.add_parsable_certificates(rustls_pemfile::certs(&mut &pem[..]).flatten());
            config.ssl_mode(SslMode::Require);
        }
        let tls = rustls::ClientConfig::builder().with_root_certificates(roots);
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls.with_no_client_auth());
        let (client, connection) = config.connect(tls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    #[tokio::test]
    async fn password_auth_pause_resume_and_stop() {
        let pg = started(false).await;
        assert!(pg.bin_dir().join("pg_dump").is_file() && pg.ca_cert_path().is_none());
        let client = connect(&pg, PASSWORD).await.unwrap();
        let row = client.query_one("SELECT version()", &[]).await.unwrap();
        assert!(row.get::<_, String>(0).contains("PostgreSQL"));
        let wrong = connect(&pg, "wrong").await.err().unwrap();
        assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD));

        let sql = "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)";
        client.batch_execute(sql).await.unwrap();
        pg.pause().await.unwrap();
        assert!(pg.superuser_client("postgres").await.is_err());
        pg.resume().await.unwrap();
        let client = pg.superuser_client("postgres").await.unwrap();
        let row = client.query_one("SELECT n FROM kept", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 7);

        let (port, root) = (pg.port(), pg.root.clone());
        pg.stop().await;
        let refused = TcpStream::connect((HOST, port)).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(!root.exists());
    }

    #[tokio::test]
    async fn tls_verified_against_the_generated_ca_and_drop() {
        let pg = started(true).await;
        let client = connect(&pg, PASSWORD).await.unwrap();
        let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
        assert!(client.query_one(sql, &[]).await.unwrap().get::<_, bool>(0));
        // Plain TCP is still accepted next to TLS.
        pg.superuser_client("postgres").await.unwrap();

        let (port, root) = (pg.port(), pg.root.clone());
        drop(pg);
        assert!(TcpStream::connect((HOST, port)).await.is_err());
        assert!(!root.exists());
    }
}
