//! Slurm: `sbatch --parsable` submits the job script (the scheduler's options on its command
//! line), `squeue` and `sacct` say where a job stands, `scancel` stops it.
//!
//! State, as submitit reads it: first `squeue --states=all` (the controller knows the job while
//! it waits, runs, and for MinJobAge seconds after it ended), then `sacct` (the accounting
//! database, when the cluster has one; `Slurm accounting storage is disabled` otherwise). A job
//! both have forgotten is `unknown`; the run folder's own summary then says how it ended.
//!
//! Signals: `scancel` sends SIGTERM to every process of the job (the script `exec`s roadseg, so
//! roadseg gets it), waits KillWait (30 s by default) and sends SIGKILL; the time limit does the
//! same. roadseg checkpoints on SIGTERM within a step, so both leave a resumable run. Pause is
//! `scancel --signal=STOP --full` (squeue then says STOPPED; the job keeps its allocation, which
//! `scontrol suspend` would free but only operators may use).

use std::path::Path;
use std::time::Duration;

use super::job_file::check_slurm_id;
use super::tool::{args, run, run_ok};
use super::{EngineState, EngineStatus, JobError};

const HINT: &str = "Slurm's client commands (sbatch, squeue, scancel) must be on PATH: run on a \
                    login node, or install slurm-client";
/// Slurm commands answer within seconds unless the controller is unreachable (MessageTimeout).
const LIMIT: Duration = Duration::from_secs(60);

/// The scheduler options of a submission.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// GPUs for the job (`--gpus`).
    pub gpus: Option<u32>,
    /// Time limit, `[D-]HH:MM:SS` or minutes (`--time`).
    pub time: Option<String>,
    /// More `sbatch` arguments, passed as they are (`--sbatch-arg=--requeue`).
    pub extra: Vec<String>,
}

/// `sbatch`'s arguments for `script`: `--parsable`, the job's name, where Slurm writes its own
/// messages (`output`, with `%j`/`%A_%a`), the options, `--array=0-N` for N+1 runs.
pub fn sbatch_args(
    options: &SlurmOptions,
    name: &str,
    output: &Path,
    array: Option<usize>,
    script: &Path,
) -> Result<Vec<String>, JobError> {
    let path = |p: &Path| {
        p.to_str().map(str::to_string).ok_or_else(|| {
            JobError::Invalid(format!("{}: the path is not valid UTF-8", p.display()))
        })
    };
    let mut a = args(["--parsable", "--job-name"]);
    a.push(name.to_string());
    a.push("--output".into());
    a.push(path(output)?);
    if let Some(p) = &options.partition {
        a.extend(["--partition".to_string(), p.clone()]);
    }
    if let Some(g) = options.gpus {
        a.push(format!("--gpus={g}"));
    }
    if let Some(t) = &options.time {
        a.extend(["--time".to_string(), t.clone()]);
    }
    if let Some(last) = array {
        a.push(format!("--array=0-{last}"));
    }
    a.extend(options.extra.iter().cloned());
    a.push(path(script)?);
    Ok(a)
}

/// Submits; returns the job id and the argument vector run (for job.json).
pub fn submit(sbatch_args: Vec<String>) -> Result<(String, Vec<String>), JobError> {
    let ran = run_ok("sbatch", &sbatch_args, None, LIMIT, HINT)?;
    let id = parse_parsable(&ran.stdout_text()).map_err(|reason| JobError::Unexpected {
        command: "sbatch --parsable".into(),
        reason,
    })?;
    let mut command = vec!["sbatch".to_string()];
    command.extend(sbatch_args);
    Ok((id, command))
}

/// `sbatch --parsable` prints `ID` or `ID;CLUSTER`.
pub fn parse_parsable(out: &str) -> Result<String, String> {
    let line = out
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    let id = line.split(';').next().unwrap_or("").to_string();
    check_slurm_id(&id).map(|()| id)
}

/// Where job `id` (`123` or `123_4`) stands.
pub fn status(id: &str) -> Result<EngineStatus, JobError> {
    check_slurm_id(id).map_err(JobError::Invalid)?;
    let base = id.split('_').next().unwrap_or(id);
    // squeue: a job it no longer knows is an error ("Invalid job id specified"), not empty.
    let ran = run(
        "squeue",
        &args([
            "--noheader",
            "--states=all",
            "--jobs",
            base,
            "--format=%i|%T|%r",
        ]),
        None,
        LIMIT,
        HINT,
    )?;
    if ran.success
        && let Some(found) = parse_squeue(&ran.stdout_text(), id)
    {
        return Ok(found);
    }
    let sacct = run(
        "sacct",
        &args([
            "--noheader",
            "--parsable2",
            "--allocations",
            "--jobs",
            base,
            "--format=JobID,State,ExitCode",
        ]),
        None,
        LIMIT,
        HINT,
    );
    match sacct {
        Ok(ran) if ran.success => Ok(parse_sacct(&ran.stdout_text(), id).unwrap_or_else(|| {
            EngineStatus::new(
                EngineState::Unknown,
                Some("neither squeue nor sacct knows the job".into()),
            )
        })),
        Ok(ran) => Ok(EngineStatus::new(
            EngineState::Unknown,
            Some(format!(
                "the job left the queue and sacct cannot say how it ended ({})",
                first_line(&ran.stderr)
            )),
        )),
        Err(JobError::Missing { .. }) => Ok(EngineStatus::new(
            EngineState::Unknown,
            Some("the job left the queue and there is no sacct".into()),
        )),
        Err(e) => Err(e),
    }
}

/// Asks Slurm to stop job `id` (SIGTERM, then SIGKILL after KillWait).
pub fn cancel(id: &str) -> Result<(), JobError> {
    check_slurm_id(id).map_err(JobError::Invalid)?;
    run_ok("scancel", &args([id]), None, LIMIT, HINT).map(drop)
}

/// Freezes (`pause`) or thaws every process of job `id`.
pub fn pause(id: &str, pause: bool) -> Result<(), JobError> {
    check_slurm_id(id).map_err(JobError::Invalid)?;
    let signal = if pause {
        "--signal=STOP"
    } else {
        "--signal=CONT"
    };
    run_ok("scancel", &args([signal, "--full", id]), None, LIMIT, HINT).map(drop)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

/// The line of `squeue --format=%i|%T|%r` about job `id`.
pub fn parse_squeue(out: &str, id: &str) -> Option<EngineStatus> {
    out.lines().find_map(|line| {
        let mut fields = line.trim().split('|');
        let (job, state, reason) = (fields.next()?, fields.next()?, fields.next().unwrap_or(""));
        if !id_matches(job.trim(), id) {
            return None;
        }
        let state = state.trim();
        let reason = reason.trim();
        let ours = map_state(state);
        let detail = match reason {
            "" | "None" | "(null)" if state.eq_ignore_ascii_case(ours.name()) => None,
            "" | "None" | "(null)" => Some(state.to_string()),
            r => Some(format!("{state} ({r})")),
        };
        Some(EngineStatus::new(ours, detail))
    })
}

/// The line of `sacct --parsable2 --format=JobID,State,ExitCode` about job `id` (steps such as
/// `123.batch` are skipped).
pub fn parse_sacct(out: &str, id: &str) -> Option<EngineStatus> {
    out.lines().find_map(|line| {
        let mut fields = line.trim().split('|');
        let (job, state) = (fields.next()?.trim(), fields.next()?.trim());
        if job.contains('.') || !id_matches(job, id) {
            return None;
        }
        let exit = fields.next().map(str::trim).unwrap_or("");
        // `CANCELLED by 1000`: the word is the state.
        let word = state.split_whitespace().next().unwrap_or("");
        let ours = map_state(word);
        let detail = match exit {
            "" | "0:0" if state.eq_ignore_ascii_case(ours.name()) => None,
            "" | "0:0" => Some(state.to_string()),
            e => Some(format!("{state}, exit code {e}")),
        };
        Some(EngineStatus::new(ours, detail))
    })
}

/// Whether `listed` (as squeue and sacct print job ids: `12`, `12_3`, `12_[2-4,7%2]`) names the
/// job `id` (`12` or `12_3`).
pub fn id_matches(listed: &str, id: &str) -> bool {
    if listed == id {
        return true;
    }
    let (Some((job, tasks)), Some((want_job, want_task))) =
        (listed.split_once('_'), id.split_once('_'))
    else {
        return false;
    };
    let Ok(want) = want_task.parse::<u64>() else {
        return false;
    };
    if job != want_job {
        return false;
    }
    let Some(ranges) = tasks.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return false;
    };
    // `%N` limits how many run at once; it is not a task.
    let ranges = ranges.split('%').next().unwrap_or("");
    ranges.split(',').any(|range| {
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        matches!((low.parse::<u64>(), high.parse::<u64>()), (Ok(l), Ok(h)) if (l..=h).contains(&want))
    })
}

/// Slurm's job state names (squeue's long form, sacct's first word) as ours.
pub fn map_state(state: &str) -> EngineState {
    match state {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING"
        | "PD" | "CF" | "RQ" => EngineState::Queued,
        "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" | "R" | "CG" => EngineState::Running,
        "SUSPENDED" | "STOPPED" | "S" | "ST" => EngineState::Suspended,
        "COMPLETED" | "CD" => EngineState::Completed,
        "CANCELLED" | "PREEMPTED" | "REVOKED" | "CA" | "PR" => EngineState::Cancelled,
        "TIMEOUT" | "DEADLINE" | "TO" | "DL" => EngineState::Timeout,
        "FAILED" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "SPECIAL_EXIT" | "F" | "NF"
        | "OOM" | "BF" => EngineState::Failed,
        _ => EngineState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `squeue --noheader --states=all --jobs 2 --format=%i|%T|%r` of a four-task array on a
    /// two-CPU node (Slurm 22.05.8), half a second after `sbatch --array=0-3`, then 5 s later.
    const SQUEUE_ARRAY_STARTING: &str =
        "2_[2-3]|PENDING|Resources\n2_1|RUNNING|None\n2_0|RUNNING|None\n";
    const SQUEUE_ARRAY_LATER: &str =
        "2_1|COMPLETED|None\n2_0|COMPLETED|None\n2_3|RUNNING|None\n2_2|RUNNING|None\n";
    /// A single job waiting behind the array, and one stopped with `scancel --signal=STOP --full`.
    const SQUEUE_PENDING: &str = "3|PENDING|Priority\n";
    const SQUEUE_STOPPED: &str = "7|STOPPED|None\n";
    /// `sacct -j 28097634 --format=JobID,State,ExitCode,Elapsed,MaxRSS -P` on a production
    /// cluster (a header, then the allocation and its batch step).
    const SACCT_COMPLETED: &str = "JobID|State|ExitCode|Elapsed|MaxRSS\n28097634|COMPLETED|0:0|00:04:14|\n28097634.batch|COMPLETED|0:0|00:04:14|3268572K\n";
    /// submitit's `test_read_info` example: steps, an array task, a pending range with a limit.
    const SACCT_SUBMITIT: &str = "JobID|State\n5610980|RUNNING\n5610980.ext+|RUNNING\n5610980.0|RUNING\n20956421_0|RUNNING\n20956421_[2-4%25]|PENDING\n";

    #[test]
    fn squeue_lines_give_each_task_its_state() {
        let s = |out, id| parse_squeue(out, id).map(|s| s.state);
        assert_eq!(s(SQUEUE_ARRAY_STARTING, "2_0"), Some(EngineState::Running));
        assert_eq!(s(SQUEUE_ARRAY_STARTING, "2_3"), Some(EngineState::Queued));
        assert_eq!(s(SQUEUE_ARRAY_STARTING, "2_4"), None);
        assert_eq!(s(SQUEUE_ARRAY_LATER, "2_1"), Some(EngineState::Completed));
        assert_eq!(
            parse_squeue(SQUEUE_PENDING, "3").unwrap().detail.as_deref(),
            Some("PENDING (Priority)")
        );
        assert_eq!(s(SQUEUE_PENDING, "33"), None, "no prefix match");
        assert_eq!(s(SQUEUE_STOPPED, "7"), Some(EngineState::Suspended));
    }

    #[test]
    fn sacct_lines_skip_steps_and_read_ranges() {
        let done = parse_sacct(SACCT_COMPLETED, "28097634").unwrap();
        assert_eq!(done.state, EngineState::Completed);
        assert_eq!(done.detail, None, "nothing to add to \"completed\"");
        let s = |id| parse_sacct(SACCT_SUBMITIT, id).map(|s| s.state);
        assert_eq!(s("5610980"), Some(EngineState::Running));
        assert_eq!(s("20956421_0"), Some(EngineState::Running));
        assert_eq!(s("20956421_3"), Some(EngineState::Queued));
        assert_eq!(s("20956421_5"), None);
        let cancelled = parse_sacct("12|CANCELLED by 1000|0:15\n", "12").unwrap();
        assert_eq!(cancelled.state, EngineState::Cancelled);
        assert_eq!(
            cancelled.detail.as_deref(),
            Some("CANCELLED by 1000, exit code 0:15")
        );
        assert_eq!(
            parse_sacct("12|TIMEOUT|0:0\n", "12").unwrap().state,
            EngineState::Timeout
        );
    }

    #[test]
    fn array_ids_match_as_submitit_reads_them() {
        assert!(id_matches("20_[2-7,12-17,22%56]", "20_13"));
        assert!(id_matches("20_[2-7,12-17,22%56]", "20_22"));
        assert!(!id_matches("20_[2-7,12-17,22%56]", "20_8"));
        assert!(id_matches("20_[0%1]", "20_0"));
        assert!(!id_matches("21_[0-3]", "20_1"));
        assert!(!id_matches("2_[x-y]", "2_1"));
    }

    #[test]
    fn sbatch_output_gives_the_id() {
        assert_eq!(parse_parsable("4242\n").unwrap(), "4242");
        assert_eq!(parse_parsable("4242;cluster-a\n").unwrap(), "4242");
        assert!(parse_parsable("Submitted batch job 4242").is_err());
        assert!(parse_parsable("").is_err());
    }

    #[test]
    fn options_go_on_sbatch_s_command_line() {
        let options = SlurmOptions {
            partition: Some("gpu".into()),
            gpus: Some(2),
            time: Some("01:00:00".into()),
            extra: vec!["--requeue".into(), "--mail-type=END".into()],
        };
        let a = sbatch_args(
            &options,
            "roadseg-run 1",
            Path::new("/r/run 1/slurm-%j.out"),
            Some(2),
            Path::new("/r/run 1/job.sh"),
        )
        .unwrap();
        assert_eq!(
            a,
            [
                "--parsable",
                "--job-name",
                "roadseg-run 1",
                "--output",
                "/r/run 1/slurm-%j.out",
                "--partition",
                "gpu",
                "--gpus=2",
                "--time",
                "01:00:00",
                "--array=0-2",
                "--requeue",
                "--mail-type=END",
                "/r/run 1/job.sh"
            ]
        );
    }
}
