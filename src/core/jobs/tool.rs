//! Running the engines' programs (sbatch, squeue, ssh, kubectl, ...): always an argument vector
//! through `std::process::Command`, never a shell string, with a time limit, so a hung
//! scheduler or network cannot hang the studio's follower or `roadseg status` for good.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::JobError;

/// What a finished command left.
#[derive(Debug)]
pub struct Ran {
    pub success: bool,
    pub status: String,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Ran {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A command line for messages, each word quoted where a shell would need it.
pub fn describe(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(super::script::word)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `program args`, feeding `stdin`, for at most `limit`; a command that runs longer is
/// killed and reported as failed. `hint` says how to get the program when it is missing.
pub fn run(
    program: &str,
    args: &[String],
    stdin: Option<&[u8]>,
    limit: Duration,
    hint: &'static str,
) -> Result<Ran, JobError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(match stdin {
            Some(_) => Stdio::piped(),
            None => Stdio::null(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => JobError::Missing {
                program: program.to_string(),
                hint,
                source,
            },
            _ => JobError::Failed {
                command: describe(program, args),
                status: "could not start".into(),
                stderr: source.to_string(),
            },
        })?;
    // Readers on their own threads: a chatty command must not block on a full pipe while we
    // wait for it.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::Builder::new()
            .name("job-tool-output".into())
            .spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A command that exits without reading its input closes the pipe: its own exit
        // status says what went wrong.
        let _ = pipe.write_all(bytes);
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("no answer within {} s", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(e.to_string()),
        }
    };
    let take = |t: std::io::Result<std::thread::JoinHandle<Vec<u8>>>| {
        t.ok().and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let (stdout, stderr) = (take(stdout), take(stderr));
    let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
    match status {
        Ok(status) => Ok(Ran {
            success: status.success(),
            status: status.to_string(),
            stdout,
            stderr,
        }),
        Err(why) => Err(JobError::Failed {
            command: describe(program, args),
            status: why,
            stderr,
        }),
    }
}

/// [`run`], and a failure (non-zero exit) as an error carrying the command's stderr.
pub fn run_ok(
    program: &str,
    args: &[String],
    stdin: Option<&[u8]>,
    limit: Duration,
    hint: &'static str,
) -> Result<Ran, JobError> {
    let ran = run(program, args, stdin, limit, hint)?;
    if ran.success {
        return Ok(ran);
    }
    let stderr = match ran.stderr.is_empty() {
        true => ran.stdout_text().trim().to_string(),
        false => ran.stderr,
    };
    Err(JobError::Failed {
        command: describe(program, args),
        status: ran.status,
        stderr,
    })
}

/// Owned strings from string slices, for argument vectors.
pub fn args<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_exit_status_come_back() {
        let ran = run(
            "sh",
            &args(["-c", "printf out; printf err >&2; exit 3"]),
            None,
            Duration::from_secs(10),
            "",
        )
        .unwrap();
        assert!(!ran.success);
        assert_eq!(ran.stdout, b"out");
        assert_eq!(ran.stderr, "err");
        let err = run_ok(
            "sh",
            &args(["-c", "echo bad >&2; exit 1"]),
            None,
            Duration::from_secs(10),
            "",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bad") && err.contains("sh -c"), "{err}");
    }

    #[test]
    fn input_is_fed_and_a_hung_command_is_killed() {
        let ran = run("cat", &[], Some(b"fed"), Duration::from_secs(10), "").unwrap();
        assert_eq!(ran.stdout, b"fed");
        let started = Instant::now();
        let err = run("sleep", &args(["30"]), None, Duration::from_millis(300), "")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no answer within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_program_says_how_to_get_it() {
        let err = run(
            "roadseg-no-such-program",
            &[],
            None,
            Duration::from_secs(1),
            "install it",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("roadseg-no-such-program") && err.contains("install it"),
            "{err}"
        );
    }
}
