//! Real services for the job-engine tests, on this machine: a single-node Slurm cluster
//! (munged, slurmctld, slurmd) and an OpenSSH server on 127.0.0.1 with a key made for the
//! tests. Each is started once per test process, in a temporary folder with free ports, and
//! stopped when the process exits.
//!
//! Without the programs (a laptop running `cargo test`) a test prints that it was skipped and
//! why; under `CI=true` a missing program fails the test instead, so CI never passes by
//! skipping. `.ci/run` installs them (slurm-wlm, munge, openssh-server).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Pid files of the daemons to stop, and folders to remove, at exit.
static CLEANUP: Mutex<Vec<(Vec<PathBuf>, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn stop_services() {
    let Ok(list) = CLEANUP.lock() else { return };
    for (pid_files, dir) in list.iter() {
        for pid_file in pid_files {
            let pid = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok());
            if let Some(pid) = pid.filter(|&p| p > 1) {
                // SAFETY: kill(2) on a daemon this process started (its pid file).
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        // Give the daemons a moment to let go of their files.
        std::thread::sleep(Duration::from_millis(300));
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn register_cleanup(pid_files: Vec<PathBuf>, dir: PathBuf) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registers a plain extern "C" function to run at process exit.
        unsafe { libc::atexit(stop_services) };
    });
    CLEANUP.lock().unwrap().push((pid_files, dir));
}

/// Whether a missing service fails the test (CI) or skips it (a developer's machine).
fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Says why `test` cannot run here: a failure under CI, a printed skip elsewhere.
fn unavailable(test: &str, why: &str) {
    if required() {
        panic!(
            "{test}: {why} (CI=true: the job-engine tests must run; .ci/run installs what they need)"
        );
    }
    // Straight to stderr, past the test harness's capture: a skip must be seen.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn hostname() -> String {
    let out = Command::new("hostname")
        .arg("-s")
        .output()
        .expect("hostname -s");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run_ok(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("{what} was not ready within {} s", limit.as_secs()))
}

/// The roadseg program for jobs, as a hard link made once: the jobs start seconds after the
/// test, and the shared build folder's binary may be rebuilt meanwhile.
pub fn roadseg_for_jobs() -> &'static Path {
    static BIN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BIN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("roadseg");
        let exe = Path::new(env!("CARGO_BIN_EXE_roadseg"));
        if std::fs::hard_link(exe, &bin).is_err() {
            std::fs::copy(exe, &bin).unwrap();
        }
        (dir, bin)
    })
    .1
}

/// A running single-node Slurm cluster.
pub struct Slurm {
    /// Its slurm.conf: pass it as SLURM_CONF to every Slurm command (roadseg's included).
    pub conf: PathBuf,
}

/// The test cluster, started on first use; `None` (after saying so) where Slurm is missing.
pub fn slurm(test: &str) -> Option<&'static Slurm> {
    static SLURM: OnceLock<Result<Slurm, String>> = OnceLock::new();
    match SLURM.get_or_init(start_slurm) {
        Ok(slurm) => Some(slurm),
        Err(why) => {
            unavailable(test, why);
            None
        }
    }
}

fn start_slurm() -> Result<Slurm, String> {
    let programs = [
        "munged",
        "slurmctld",
        "slurmd",
        "sbatch",
        "squeue",
        "scancel",
        "scontrol",
    ];
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| find(p).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} not installed (apt-get install slurm-wlm munge)",
            missing.join(", ")
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("roadseg-slurm-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    for sub in ["state", "spool"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let pid_files = ["munged.pid", "slurmctld.pid", "slurmd.pid"]
        .map(|f| dir.join(f))
        .to_vec();
    register_cleanup(pid_files, dir.clone());

    // munge: a key of our own, a socket in our folder.
    let key = dir.join("munge.key");
    let bytes: Vec<u8> = (0..1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&key, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let socket = dir.join("munge.sock");
    run_ok(
        Command::new(find("munged").unwrap())
            .arg("--force")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", dir.join("munged.pid").display()))
            .arg(format!("--log-file={}", dir.join("munged.log").display()))
            .arg(format!("--seed-file={}", dir.join("munged.seed").display())),
        "munged",
    );

    let host = hostname();
    let user = user();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let d = dir.display();
    let conf = dir.join("slurm.conf");
    std::fs::write(
        &conf,
        format!(
            "# A one-node cluster for roadseg's tests.\n\
             ClusterName=roadsegtest\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld}\n\
             SlurmdPort={slurmd}\n\
             SlurmUser={user}\n\
             SlurmdUser={user}\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={d}/munge.sock\n\
             CredType=cred/munge\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\n\
             # No cgroups in containers; processes found through /proc.\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             # No accounting daemon: sacct has nothing; squeue --states=all knows a job for\n\
             # MinJobAge seconds after it ended.\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             MinJobAge=600\n\
             # SIGTERM, then SIGKILL this much later: roadseg checkpoints well within it.\n\
             KillWait=10\n\
             SchedulerType=sched/backfill\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             ReturnToService=2\n\
             MpiDefault=none\n\
             SwitchType=switch/none\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN\n\
             PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            ctld = free_port(),
            slurmd = free_port(),
        ),
    )
    .unwrap();
    run_ok(
        Command::new(find("slurmctld").unwrap())
            .args(["-i", "-f"])
            .arg(&conf),
        "slurmctld",
    );
    run_ok(
        Command::new(find("slurmd").unwrap()).arg("-f").arg(&conf),
        "slurmd",
    );
    let idle = || {
        Command::new("sinfo")
            .args(["--noheader", "--format=%T"])
            .env("SLURM_CONF", &conf)
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
    };
    wait_for("the Slurm node", Duration::from_secs(60), idle).map_err(|why| {
        let log = std::fs::read_to_string(dir.join("slurmctld.log")).unwrap_or_default();
        format!("{why}; slurmctld.log ends:\n{}", tail(&log, 15))
    })?;
    Ok(Slurm { conf })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running sshd and a client config that reaches it as `roadseg-test`.
pub struct Sshd {
    /// The ssh client config: pass it as ROADSEG_SSH_CONFIG.
    pub config: PathBuf,
    pub alias: &'static str,
}

/// The test sshd, started on first use; `None` (after saying so) where OpenSSH is missing.
pub fn sshd(test: &str) -> Option<&'static Sshd> {
    static SSHD: OnceLock<Result<Sshd, String>> = OnceLock::new();
    match SSHD.get_or_init(start_sshd) {
        Ok(sshd) => Some(sshd),
        Err(why) => {
            unavailable(test, why);
            None
        }
    }
}

fn start_sshd() -> Result<Sshd, String> {
    let missing: Vec<&str> = ["sshd", "ssh", "scp", "ssh-keygen"]
        .into_iter()
        .filter(|p| find(p).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} not installed (apt-get install openssh-server openssh-client)",
            missing.join(", ")
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("roadseg-sshd-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    register_cleanup(vec![dir.join("sshd.pid")], dir.clone());
    for key in ["host_key", "user_key"] {
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key)),
            "ssh-keygen",
        );
    }
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
    if is_root() {
        // sshd's privilege separation folder, which a container may lack.
        let _ = std::fs::create_dir_all("/run/sshd");
    }
    let port = free_port();
    let d = dir.display();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nStrictModes no\n\
             # The tests slow training down on the other side too.\n\
             AcceptEnv ROADSEG_TEST_*\n\
             # scp speaks SFTP (OpenSSH 9).\n\
             Subsystem sftp internal-sftp\n"
        ),
    )
    .unwrap();
    let config = dir.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host roadseg-test\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n\
             IdentityFile {d}/user_key\n  IdentitiesOnly yes\n  IdentityAgent none\n\
             UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking accept-new\n\
             SendEnv ROADSEG_TEST_*\n",
            user = user()
        ),
    )
    .unwrap();
    run_ok(
        Command::new(find("sshd").unwrap())
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .arg("-E")
            .arg(dir.join("sshd.log")),
        "sshd",
    );
    let reachable = || {
        Command::new("ssh")
            .args(["-F"])
            .arg(&config)
            .args(["-o", "BatchMode=yes", "roadseg-test", "true"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    wait_for("sshd", Duration::from_secs(30), reachable).map_err(|why| {
        let log = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
        format!("{why}; sshd.log ends:\n{}", tail(&log, 15))
    })?;
    Ok(Sshd {
        config,
        alias: "roadseg-test",
    })
}

/// Runs roadseg with `args` and extra environment (SLURM_CONF, ROADSEG_SSH_CONFIG, the tests'
/// step delay).
pub fn roadseg_with(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roadseg"));
    command.args(args).env(
        "ROADSEG_DATA_DIR",
        std::env::temp_dir().join("roadseg-test-data"),
    );
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run roadseg")
}

/// [`roadseg_with`] that must succeed; its stdout.
pub fn ok_with(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> String {
    let out = roadseg_with(args, env);
    assert!(
        out.status.success(),
        "roadseg {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `roadseg status RUN --json`.
pub fn status(run: &Path, env: &[(&str, &std::ffi::OsStr)]) -> serde_json::Value {
    let out = ok_with(&["status", run.to_str().unwrap(), "--json"], env);
    serde_json::from_str(&out).unwrap()
}

/// Polls `roadseg status` until `done` holds (or `limit` passes: a failure showing the last
/// answer and the run's train.log); returns the last answer and the engine states seen, in
/// order, each once.
pub fn follow_until(
    run: &Path,
    env: &[(&str, &std::ffi::OsStr)],
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, Vec<String>) {
    let start = Instant::now();
    let mut states: Vec<String> = Vec::new();
    loop {
        let answer = status(run, env);
        let state = answer["state"].as_str().unwrap_or("none").to_string();
        if states.last() != Some(&state) {
            states.push(state);
        }
        if done(&answer) {
            return (answer, states);
        }
        if start.elapsed() > limit {
            let log = std::fs::read_to_string(run.join("train.log")).unwrap_or_default();
            panic!(
                "{}: not done within {} s; states {states:?}; last status {answer}; train.log:\n{}",
                run.display(),
                limit.as_secs(),
                tail(&log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// The submission flags for `engine` with the roadseg program made for jobs.
pub fn submit_flags(engine: &str) -> Vec<String> {
    [
        "--submit",
        engine,
        "--roadseg-bin",
        roadseg_for_jobs().to_str().unwrap(),
    ]
    .map(str::to_string)
    .to_vec()
}

/// What [`cancel_mid_run_then_resume`] saw when the job had stopped.
pub struct Cancelled {
    /// `roadseg status --json` after the cancel.
    pub status: serde_json::Value,
    /// The last step logged, where the checkpoint is.
    pub at_step: u64,
}

/// The cancel-and-resume story every engine must tell: a 4-epoch TINY run of `data` submitted
/// to `engine` (each step slowed by `slow`'s delay) is cancelled with `roadseg cancel --wait`
/// inside its second epoch; it stops there with its last checkpoint at the last logged step
/// and a `stopped` summary; `--resume RUN --submit engine` then finishes it, with the same
/// curve as a run that never stopped.
pub fn cancel_mid_run_then_resume(
    dir: &Path,
    data: &Path,
    engine: &str,
    slow: &[(&str, &std::ffi::OsStr)],
    fast: &[(&str, &std::ffi::OsStr)],
) -> Cancelled {
    let limit = Duration::from_secs(180);
    let straight = dir.join("straight");
    super::train_tiny(data, &straight, 4);
    let expected = super::metric_lines(&straight);
    let steps_per_epoch = expected
        .iter()
        .filter(|l| l["split"] == "train" && l["epoch"] == 1)
        .count() as u64;

    let run = dir.join("cancelled");
    ok_with(
        &super::refs(&super::tiny_args(
            data,
            &run,
            4,
            &super::refs(&submit_flags(engine)),
        )),
        slow,
    );
    // Into the second epoch, past the first checkpoint.
    follow_until(&run, slow, limit, |a| {
        a["progress"]["step"].as_u64().unwrap_or(0) > steps_per_epoch
    });
    ok_with(&["cancel", run.to_str().unwrap(), "--wait"], slow);
    let (status, _) = follow_until(&run, slow, limit, |a| {
        a["progress"]["finished"] == "stopped"
    });
    assert_eq!(status["state"], "cancelled", "{status}");
    let at_step = super::last_train_step(&run);
    assert!(
        at_step > steps_per_epoch && at_step < 4 * steps_per_epoch,
        "stopped at {at_step}"
    );
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let state = json(&run.join("checkpoints/last/state.json"));
    assert_eq!(
        state["step"].as_u64(),
        Some(at_step),
        "the checkpoint is where it stopped"
    );
    assert!(json(&run.join("job.json"))["cancel_requested_at"].is_string());

    let mut resume = vec![
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--device",
        "cpu",
    ];
    let flags = submit_flags(engine);
    resume.extend(super::refs(&flags));
    ok_with(&resume, fast);
    follow_until(&run, fast, limit, |a| {
        a["state"] == "completed" && a["progress"]["finished"] == "completed"
    });
    super::assert_same_curve(&expected, &super::metric_lines(&run));
    Cancelled { status, at_step }
}
