//! AEGIS beside the real K8sGPT (`cargo xtask bench --vs-k8sgpt`): K8sGPT built from its pinned
//! source, the local control plane with the demo incidents plus 1,000 and then 10,000 filler pods,
//! both tools run in turn with the same kubeconfig (the release `aegis analyze --all
//! --no-verify`, `k8sgpt analyze -o json` with its default analyzers and no AI backend) and
//! measured and judged alike by `aegis_e2e::versus`. In between, AEGIS alone at 5,000 pods, the
//! size of SPEC §13's live target (< 1 s, < 150 MB).

use std::path::Path;

use aegis_e2e::binaries::Binaries;
use aegis_e2e::cluster::Cluster;
use aegis_e2e::demo::apply_and_wait;
use aegis_e2e::k8sgpt::K8sgpt;
use aegis_e2e::versus::{self, Filler};
use anyhow::Result;

use crate::operator_bench::thousands;

/// Runs the comparison with `aegis` (a release build) in `dir`; returns the report's table and
/// a line per size saying how far apart the two were.
pub fn run(aegis: &Path, dir: &Path) -> Result<String> {
    crate::operator_bench::fresh_runtime(dir)?.block_on(compare(aegis, dir))
}

async fn compare(aegis: &Path, dir: &Path) -> Result<String> {
    let binaries = Binaries::ensure()?;
    let k8sgpt = K8sgpt::ensure()?;
    let measurer = crate::measurer()?;
    eprintln!("starting the control plane in {}…", dir.display());
    let cluster = Cluster::start(&binaries, &dir.join("cluster")).await?;
    apply_and_wait(&binaries, &cluster).await;
    let client = cluster.client().await?;
    let mut filler = Filler::default();
    let mut rows = String::new();
    let mut ratios = String::new();
    let mut live_target = String::new();
    for pods in [1_000, LIVE_TARGET_PODS, 10_000] {
        eprintln!("growing the filler to {pods} pods…");
        filler.grow(&client, pods).await?;
        let scratch = dir.join(format!("runs-{pods}"));
        let size = format!("{} + demo", thousands(pods));
        if pods == LIVE_TARGET_PODS {
            eprintln!("AEGIS analyses {pods} filler pods…");
            let (ours, _) = versus::run_aegis(aegis, &measurer, &cluster, &scratch, &[])?;
            rows.push_str(&versus::rows(&size, &filler, &[&ours]));
            let met = ours.wall.as_secs_f64() < 1.0 && ours.peak_mb < 150.0;
            live_target = format!(
                "- SPEC §13, live analysis of {size} pods: {:.2} s and {:.1} MB against < 1 s and \
                 < 150 MB: {}.\n",
                ours.wall.as_secs_f64(),
                ours.peak_mb,
                if met { "meets" } else { "MISSES" }
            );
            continue;
        }
        eprintln!("K8sGPT analyses {pods} filler pods…");
        let theirs = versus::run_k8sgpt(&k8sgpt, &measurer, &cluster, &scratch)?;
        eprintln!("AEGIS analyses {pods} filler pods…");
        let (ours, _) = versus::run_aegis(aegis, &measurer, &cluster, &scratch, &[])?;
        rows.push_str(&versus::rows(&size, &filler, &[&ours, &theirs]));
        ratios.push_str(&format!(
            "- {size}: AEGIS {:.0}× faster, {:.1}× fewer API requests, {:.1}× less peak memory.\n",
            theirs.wall.as_secs_f64() / ours.wall.as_secs_f64().max(1e-3),
            theirs.request_count() as f64 / ours.request_count().max(1) as f64,
            theirs.peak_mb / ours.peak_mb.max(1e-3),
        ));
    }
    Ok(format!("{}{rows}\n{ratios}{live_target}", versus::HEADER))
}

/// The size of SPEC §13's live target, measured for AEGIS alone.
const LIVE_TARGET_PODS: usize = 5_000;
