//! The job script: a POSIX `sh` script that runs `roadseg train --resume RUN` on the other side
//! (a Slurm node, an SSH host). Every argument in it is quoted with [`quote`], so a run folder
//! named `it's $(rm -rf ~) "x"` or holding a newline is one literal word to the shell, and the
//! script never runs anything a name says. The scheduler's own options go on `sbatch`'s command
//! line as an argument vector, not into `#SBATCH` lines, which have their own quoting rules.
//!
//! `roadseg train --resume` on a prepared run with no checkpoint starts it; with one, it
//! continues it step for step. So the same script serves a first start, a requeue after a
//! node failure and a re-submission after a cancel.

use std::path::Path;

use super::JobError;

/// `text` as one literal shell word: inside single quotes nothing is special, and a single
/// quote is written as `'\''` (close, escaped quote, reopen).
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `text` as a shell word for a command printed for people to copy: as it is when nothing in
/// it is special, else [`quote`]d.
pub fn word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    match plain {
        true => text.to_string(),
        false => quote(text),
    }
}

/// A path as a script word; a path that is not UTF-8 cannot be written into a script.
pub fn quote_path(path: &Path) -> Result<String, JobError> {
    path.to_str().map(quote).ok_or_else(|| {
        JobError::Invalid(format!(
            "{}: the path is not valid UTF-8, so it cannot be written into a job script",
            path.display()
        ))
    })
}

/// What the script runs.
#[derive(Clone, Debug)]
pub struct ScriptSpec<'a> {
    /// The roadseg program on the other side.
    pub program: &'a str,
    /// The run folders as the other side sees them; more than one makes an array script that
    /// picks `runs[$SLURM_ARRAY_TASK_ID]`.
    pub runs: &'a [String],
    /// `--device` of the job's `roadseg train`.
    pub device: &'a str,
    /// `--skip-bad`, as the submission was prepared.
    pub skip_bad: bool,
    /// Which engine wrote it (for the header).
    pub engine: &'a str,
}

/// The script's text.
pub fn job_script(spec: &ScriptSpec) -> String {
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str(&format!(
        "# Written by `roadseg train --submit {}` (roadseg {}).\n",
        spec.engine,
        env!("CARGO_PKG_VERSION")
    ));
    s.push_str(
        "# Runs `roadseg train --resume` on the run folder: the run starts, or continues from its\n\
         # last checkpoint (a requeued or re-submitted job goes on where the last one stopped).\n\
         # SIGTERM (scancel, the time limit) makes roadseg finish its step and checkpoint.\n",
    );
    s.push_str("set -u\n");
    match spec.runs {
        [one] => s.push_str(&format!("run={}\n", quote(one))),
        many => {
            s.push_str("case \"${SLURM_ARRAY_TASK_ID:-}\" in\n");
            for (i, run) in many.iter().enumerate() {
                s.push_str(&format!("  {i}) run={} ;;\n", quote(run)));
            }
            s.push_str(
                "  *) echo \"roadseg job: no run for array task '${SLURM_ARRAY_TASK_ID:-}'\" >&2; exit 2 ;;\n",
            );
            s.push_str("esac\n");
        }
    }
    s.push_str("exec >>\"$run/train.log\" 2>&1\n");
    s.push_str(&format!(
        "exec {} train --resume \"$run\" --device {}{}\n",
        quote(spec.program),
        quote(spec.device),
        if spec.skip_bad { " --skip-bad" } else { "" }
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names that break naive quoting: spaces, both quotes, command substitution, backticks,
    /// variables, globs, a newline, a leading dash, backslashes, non-ASCII.
    pub(crate) const HOSTILE: [&str; 8] = [
        "a run with spaces",
        "it's \"quoted\"",
        "$(touch PWNED)",
        "`touch PWNED`",
        "$HOME and ${PATH} *",
        "line\nbreak",
        "-rf \\ back\\slash",
        "straße ✓",
    ];

    #[test]
    fn quoted_words_reach_a_program_unchanged() {
        let tmp = std::env::temp_dir().join(format!("roadseg-quote-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        let line: Vec<String> = HOSTILE.iter().map(|w| quote(w)).collect();
        let script = format!("printf '%s\\0' {}", line.join(" "));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(&tmp)
            .output()
            .unwrap();
        assert!(out.status.success());
        let words: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .trim_end_matches('\0')
            .split('\0')
            .collect();
        assert_eq!(words, HOSTILE);
        assert!(!tmp.join("PWNED").exists(), "a name ran a command");
        let _ = std::fs::remove_dir_all(&tmp);
    }

    /// Runs a generated script with `printf` standing in for roadseg, and returns the
    /// arguments the program got.
    fn run_script(runs: &[String], task: Option<&str>) -> (bool, Vec<String>, std::path::PathBuf) {
        let tmp = std::env::temp_dir().join(format!(
            "roadseg-script-{}-{}",
            std::process::id(),
            task.unwrap_or("single")
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        // A stand-in program that records its arguments, NUL-separated, in the run folder.
        let program = tmp.join("fake roadseg's");
        std::fs::write(
            &program,
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done >\"$3/args\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let runs: Vec<String> = runs
            .iter()
            .map(|r| {
                let dir = tmp.join(r);
                std::fs::create_dir_all(&dir).unwrap();
                dir.to_str().unwrap().to_string()
            })
            .collect();
        let text = job_script(&ScriptSpec {
            program: program.to_str().unwrap(),
            runs: &runs,
            device: "auto",
            skip_bad: true,
            engine: "slurm",
        });
        let script = tmp.join("job.sh");
        std::fs::write(&script, text).unwrap();
        let mut command = std::process::Command::new("sh");
        command.arg(&script).current_dir(&tmp);
        if let Some(task) = task {
            command.env("SLURM_ARRAY_TASK_ID", task);
        }
        let ok = command.status().unwrap().success();
        let index = task.map_or(0, |t| t.parse().unwrap_or(0));
        let args = std::fs::read(Path::new(&runs[index.min(runs.len() - 1)]).join("args"))
            .map(|bytes| {
                String::from_utf8(bytes)
                    .unwrap()
                    .trim_end_matches('\0')
                    .split('\0')
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        (ok, args, tmp)
    }

    #[test]
    fn the_script_resumes_the_hostile_named_run_and_nothing_else_runs() {
        for name in HOSTILE {
            let (ok, args, tmp) = run_script(&[name.to_string()], None);
            assert!(ok, "{name:?}");
            let run = tmp.join(name);
            assert_eq!(
                args,
                [
                    "train",
                    "--resume",
                    run.to_str().unwrap(),
                    "--device",
                    "auto",
                    "--skip-bad"
                ],
                "{name:?}"
            );
            assert!(!tmp.join("PWNED").exists() && !run.join("PWNED").exists());
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }

    #[test]
    fn an_array_script_picks_the_run_of_its_task() {
        let runs: Vec<String> = HOSTILE[..3].iter().map(|s| s.to_string()).collect();
        for task in ["0", "1", "2"] {
            let (ok, args, tmp) = run_script(&runs, Some(task));
            assert!(ok);
            let run = tmp.join(&runs[task.parse::<usize>().unwrap()]);
            assert_eq!(args[2], run.to_str().unwrap());
            let _ = std::fs::remove_dir_all(&tmp);
        }
        // A task the script does not know fails loudly instead of training some run.
        let (ok, args, tmp) = run_script(&runs, Some("7"));
        assert!(!ok);
        assert!(args.is_empty());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
