//! A throwaway PostgreSQL cluster for the sections that cut its connections, restart it or put
//! it at a distance, so the machine's own server is left alone: `initdb` from the installed
//! server binaries, trust authentication, optionally inside a network namespace.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub struct Cluster {
    pub host: String,
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    netns: Option<String>,
    dir: tempfile::TempDir,
}

fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// A cluster listening on `host` (inside `netns` when given); `None` without server
    /// binaries.
    pub fn start(host: &str, netns: Option<&str>) -> Option<Self> {
        let bin = server_bin()?;
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            // initdb refuses to run as root; the cluster belongs to the postgres user.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown for the throwaway cluster");
        }
        let cluster = Self {
            host: host.to_owned(),
            port: free_port(),
            bin,
            data: dir.path().join("data"),
            netns: netns.map(str::to_owned),
            dir,
        };
        cluster.run(&[
            "initdb",
            "-D",
            &cluster.data.display().to_string(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        std::fs::write(
            cluster.data.join("pg_hba.conf"),
            "local all all trust\nhost all all 0.0.0.0/0 trust\n",
        )
        .unwrap();
        let options = format!(
            "-p {} -k {} -c listen_addresses={host} -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            cluster.port,
            cluster.dir.path().display()
        );
        cluster.pg_ctl(&["-o", &options, "start"]);
        Some(cluster)
    }

    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@{}:{}/{database}?sslmode=disable",
            self.host, self.port
        )
    }

    /// `pg_ctl restart -m fast`: sessions ended, the server down until it accepts again.
    pub fn restart(&self) {
        self.pg_ctl(&["-m", "fast", "restart"]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data.display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let mut all = vec!["pg_ctl", "-D", &data, "-l", &log, "-w"];
        all.extend_from_slice(args);
        self.run(&all);
    }

    fn run(&self, args: &[&str]) {
        let program = self.bin.join(args[0]);
        let mut command = match &self.netns {
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns]);
                c
            }
            None => Command::new("env"),
        };
        if is_root() {
            command.args(["runuser", "-u", "postgres", "--"]);
        }
        let output = command
            .arg(program)
            .args(&args[1..])
            .current_dir(self.dir.path())
            .output()
            .expect("running the PostgreSQL server binaries");
        assert!(
            output.status.success(),
            "{} failed: {}{}\nserver log:\n{}",
            args[0],
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let mut command = match &self.netns {
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns]);
                c
            }
            None => Command::new("env"),
        };
        if is_root() {
            command.args(["runuser", "-u", "postgres", "--"]);
        }
        let _ = command
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        std::thread::sleep(Duration::from_millis(50));
    }
}
