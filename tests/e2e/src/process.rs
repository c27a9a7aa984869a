//! Programs run in their own process groups, recorded in a run directory so that another
//! process (`cargo xtask … down`) can stop them.
//!
//! Each program logs to `<dir>/logs/<program>.log`; `<dir>/pids` lists `program pid` lines.
//! Stopping sends SIGTERM to the groups in reverse order of start, then SIGKILL past 10 s.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The programs started for one run directory; dropping it stops them unless detached.
#[derive(Debug)]
pub struct Group {
    dir: PathBuf,
    children: Vec<(String, Child)>,
    detached: bool,
}

impl Group {
    /// A group recording its programs in `dir` (which must exist).
    pub fn new(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir.join("logs"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            children: Vec::new(),
            detached: false,
        })
    }

    /// Starts `path` as `program` with `args` and extra environment variables.
    pub fn spawn(
        &mut self,
        program: &str,
        path: &Path,
        args: &[String],
        env: &[(&str, OsString)],
    ) -> Result<()> {
        let log = File::create(self.dir.join("logs").join(format!("{program}.log")))?;
        let child = Command::new(path)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {program} ({})", path.display()))?;
        let mut pids = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("pids"))?;
        std::io::Write::write_all(&mut pids, format!("{program} {}\n", child.id()).as_bytes())?;
        self.children.push((program.to_owned(), child));
        Ok(())
    }

    /// Stops `program` (SIGTERM to its group, SIGKILL past 10 s) and starts it again with
    /// `args`; its earlier log is kept as `<program>.<n>.log`.
    pub fn restart(&mut self, program: &str, path: &Path, args: &[String]) -> Result<()> {
        let position = self
            .children
            .iter()
            .position(|(name, _)| name == program)
            .with_context(|| format!("{program} was not started here"))?;
        let (_, mut child) = self.children.remove(position);
        let pid = Pid::from_raw(i32::try_from(child.id()).context("a pid")?);
        stop_groups(&[pid]);
        child.wait()?;
        let pids = self.dir.join("pids");
        let gone = format!("{program} {pid}");
        let mut kept = String::new();
        for line in fs::read_to_string(&pids)?.lines().filter(|l| *l != gone) {
            kept.push_str(line);
            kept.push('\n');
        }
        fs::write(&pids, kept)?;
        let logs = self.dir.join("logs");
        let earlier = (1..1000)
            .map(|n| logs.join(format!("{program}.{n}.log")))
            .find(|p| !p.exists())
            .context("a free log name")?;
        fs::rename(logs.join(format!("{program}.log")), earlier)?;
        self.spawn(program, path, args, &[])
    }

    /// Leaves the programs running after this value is dropped; [`stop_dir`] stops them later.
    pub fn detach(&mut self) {
        self.detached = true;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        let _ = stop_dir(&self.dir);
        for (_, child) in &mut self.children {
            let _ = child.wait();
        }
    }
}

/// The programs recorded in `dir`, and whether each still runs.
pub fn programs(dir: &Path) -> Vec<(String, bool)> {
    let Ok(text) = fs::read_to_string(dir.join("pids")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (name, pid) = line.split_once(' ')?;
            let pid = Pid::from_raw(pid.trim().parse().ok()?);
            Some((name.to_owned(), alive(pid)))
        })
        .collect()
}

/// Stops every program recorded in `dir`: SIGTERM to each process group (last started first),
/// SIGKILL to what is left after 10 s. Returns the programs stopped.
pub fn stop_dir(dir: &Path) -> Result<Vec<String>> {
    let text = match fs::read_to_string(dir.join("pids")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let groups: Vec<(String, Pid)> = text
        .lines()
        .filter_map(|line| {
            let (name, pid) = line.split_once(' ')?;
            Some((name.to_owned(), Pid::from_raw(pid.trim().parse().ok()?)))
        })
        .collect();
    let pids: Vec<Pid> = groups.iter().map(|(_, pid)| *pid).collect();
    stop_groups(&pids);
    fs::remove_file(dir.join("pids"))?;
    Ok(groups.into_iter().map(|(name, _)| name).collect())
}

/// SIGTERM to each process group (last started first), SIGKILL to what is left after 10 s.
fn stop_groups(groups: &[Pid]) {
    for pid in groups.iter().rev() {
        let _ = killpg(*pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && groups.iter().any(|pid| alive(*pid)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in groups {
        if alive(*pid) {
            let _ = killpg(*pid, Signal::SIGKILL);
        }
    }
}

/// Whether a process group still has a member that is not a zombie of ours.
fn alive(group: Pid) -> bool {
    killpg(group, None).is_ok() && !is_zombie(group)
}

fn is_zombie(pid: Pid) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// A plain HTTP/1.1 GET on loopback: status and body (0 when nothing answers).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Polls `check` until it succeeds or `timeout` passes.
pub async fn poll<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    while Instant::now() < deadline {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    match last_error {
        Some(e) => anyhow::bail!("{what} not ready within {} s: {e:#}", timeout.as_secs()),
        None => anyhow::bail!("{what} not ready within {} s", timeout.as_secs()),
    }
}
