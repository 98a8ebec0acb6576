//! Following a growing `metrics.jsonl` from the last offset read, as `tail -F` does, for the
//! studio's curves and `roadseg status`. The writer may be another process on this machine, a
//! job on a cluster node writing to shared storage, or the SSH engine's local mirror of a
//! remote run ([`super::ssh`] pulls the new bytes here). What the tailer copes with:
//!
//! - a torn last line (the writer is mid-line, or was killed mid-line): left for the next poll;
//! - a slow writer: each poll returns what was completed since the last one, maybe nothing;
//! - a file that shrinks (a resumed run cuts the lines written after its checkpoint) or is
//!   replaced (a new file under the same name), or whose bytes before our offset changed (cut
//!   and then regrown past our offset between two polls): the tailer starts over and says so,
//!   so the caller redraws from scratch. A rewrite is noticed by the first and the last
//!   [`GUARD`] bytes read; one that leaves both the same and changes only lines in between goes
//!   unnoticed (a resumed run rewrites from its checkpoint to the end, so the last bytes
//!   change);
//! - a damaged complete line: skipped and counted, not fatal (the file is not ours).
//!
//! Each poll reads at most [`MAX_READ`] new bytes, so a huge file is caught up over several
//! polls with bounded memory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::core::train::run_dir::{MetricRecord, RunDirError};

/// Bytes read per poll at most.
pub const MAX_READ: u64 = 8 << 20;
/// Bytes at the start and before the offset compared at each poll to notice a rewritten file:
/// two metric lines or so.
const GUARD: u64 = 256;

/// What one poll found.
#[derive(Debug, Default, PartialEq)]
pub struct TailUpdate {
    /// The file was cut, replaced or rewritten: `records` start from its beginning, and what
    /// the caller had before is void.
    pub reset: bool,
    /// Records completed since the last poll, in file order.
    pub records: Vec<MetricRecord>,
    /// Complete lines that were not metric records (damage), skipped.
    pub skipped: usize,
}

/// Follows one metrics.jsonl.
#[derive(Debug)]
pub struct MetricsTailer {
    path: PathBuf,
    /// Bytes consumed: the end of the last complete line.
    offset: u64,
    /// The last bytes before `offset`, to check they are still there.
    guard: Vec<u8>,
    /// The file's first bytes (up to [`GUARD`]), likewise.
    head: Vec<u8>,
    /// The file's identity when last read (device, inode), to notice a replacement.
    identity: Option<(u64, u64)>,
    /// Whether the file has been seen at all (a vanished file then counts as a reset).
    seen: bool,
}

impl MetricsTailer {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            offset: 0,
            guard: Vec::new(),
            head: Vec::new(),
            identity: None,
            seen: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads what was completed since the last poll. A missing file is no news (the run has
    /// not logged yet), unless it had been seen: then it was removed, a reset.
    pub fn poll(&mut self) -> Result<TailUpdate, RunDirError> {
        let path = self.path.clone();
        let io = |source| RunDirError::Io {
            path: path.clone(),
            source,
        };
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let reset = self.seen && self.offset > 0;
                self.start_over();
                return Ok(TailUpdate {
                    reset,
                    ..TailUpdate::default()
                });
            }
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().map_err(io)?;
        let identity = file_identity(&meta);
        let len = meta.len();
        let mut reset = false;
        if self.seen
            && (len < self.offset
                || identity != self.identity
                || !self.guard_holds(&mut file).map_err(io)?)
        {
            self.start_over();
            reset = true;
        }
        self.seen = true;
        self.identity = identity;

        let want = (len - self.offset).min(MAX_READ);
        let mut bytes = Vec::with_capacity(want as usize);
        file.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        file.take(want).read_to_end(&mut bytes).map_err(io)?;
        // Only complete lines; the torn tail stays for the next poll.
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut update = TailUpdate {
            reset,
            ..TailUpdate::default()
        };
        for line in bytes[..complete].split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<MetricRecord>(line) {
                Ok(record) => update.records.push(record),
                Err(_) => update.skipped += 1,
            }
        }
        if complete > 0 {
            if self.head.len() < GUARD as usize {
                let want = GUARD as usize - self.head.len();
                self.head.extend_from_slice(&bytes[..want.min(complete)]);
            }
            self.offset += complete as u64;
            let keep = (GUARD as usize).min(complete);
            let tail = &bytes[complete - keep..complete];
            if keep < GUARD as usize {
                self.guard.extend_from_slice(tail);
                let excess = self.guard.len().saturating_sub(GUARD as usize);
                self.guard.drain(..excess);
            } else {
                self.guard = tail.to_vec();
            }
        }
        Ok(update)
    }

    fn start_over(&mut self) {
        self.offset = 0;
        self.guard.clear();
        self.head.clear();
        self.identity = None;
    }

    /// Whether the file's first bytes and the bytes just before `offset` are the ones read
    /// there before.
    fn guard_holds(&self, file: &mut File) -> std::io::Result<bool> {
        let same = |file: &mut File, at: u64, expected: &[u8]| -> std::io::Result<bool> {
            if expected.is_empty() {
                return Ok(true);
            }
            file.seek(SeekFrom::Start(at))?;
            let mut now = vec![0; expected.len()];
            match file.read_exact(&mut now) {
                Ok(()) => Ok(now == expected),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
                Err(e) => Err(e),
            }
        };
        Ok(same(file, 0, &self.head)?
            && same(file, self.offset - self.guard.len() as u64, &self.guard)?)
    }
}

#[cfg(unix)]
fn file_identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_identity(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(step: usize) -> String {
        let record = MetricRecord::new("train", 1, step, 1.0 / step as f64, 1e-3);
        format!("{}\n", serde_json::to_string(&record).unwrap())
    }

    fn steps(update: &TailUpdate) -> Vec<usize> {
        update.records.iter().map(|r| r.step).collect()
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn dir(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("roadseg-tail-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    #[test]
    fn new_lines_come_once_and_a_torn_line_waits_for_its_end() {
        let d = dir("torn");
        let path = d.0.join("metrics.jsonl");
        let mut tail = MetricsTailer::new(&path);
        assert_eq!(tail.poll().unwrap(), TailUpdate::default(), "no file yet");
        append(&path, &(line(1) + &line(2)));
        assert_eq!(steps(&tail.poll().unwrap()), [1, 2]);
        assert!(tail.poll().unwrap().records.is_empty(), "nothing new");
        let third = line(3);
        let (head, rest) = third.split_at(20);
        append(&path, head);
        assert!(tail.poll().unwrap().records.is_empty(), "half a line");
        append(&path, rest);
        let update = tail.poll().unwrap();
        assert_eq!(steps(&update), [3]);
        assert!(!update.reset);
    }

    #[test]
    fn a_slow_writer_is_followed_byte_by_byte() {
        let d = dir("slow");
        let path = d.0.join("metrics.jsonl");
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                for step in 1..=5 {
                    for byte in line(step).bytes() {
                        append(&path, std::str::from_utf8(&[byte]).unwrap());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(3));
                }
            })
        };
        let mut tail = MetricsTailer::new(&path);
        let mut seen = Vec::new();
        while !writer.is_finished() || seen.len() < 5 {
            let update = tail.poll().unwrap();
            assert!(!update.reset && update.skipped == 0);
            seen.extend(steps(&update));
            assert!(seen.len() <= 5);
        }
        writer.join().unwrap();
        assert_eq!(seen, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_shrunk_or_replaced_or_rewritten_file_starts_over() {
        let d = dir("reset");
        let path = d.0.join("metrics.jsonl");
        std::fs::write(&path, line(1) + &line(2) + &line(3)).unwrap();
        let mut tail = MetricsTailer::new(&path);
        assert_eq!(steps(&tail.poll().unwrap()), [1, 2, 3]);

        // A resumed run cuts the file at its checkpoint: shorter than what was read.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(line(1).len() as u64).unwrap();
        drop(f);
        append(&path, &line(2));
        let update = tail.poll().unwrap();
        assert!(update.reset);
        assert_eq!(steps(&update), [1, 2]);

        // Replaced by a new file (rename over it).
        let other = d.0.join("new.jsonl");
        std::fs::write(&other, line(7)).unwrap();
        std::fs::rename(&other, &path).unwrap();
        let update = tail.poll().unwrap();
        assert!(update.reset);
        assert_eq!(steps(&update), [7]);

        // Cut and regrown past the offset between two polls: same inode, longer file, but
        // the bytes before our offset changed.
        std::fs::write(&path, line(1) + &line(2) + &line(3)).unwrap();
        let mut tail = MetricsTailer::new(&path);
        assert_eq!(steps(&tail.poll().unwrap()).len(), 3);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(line(1).len() as u64).unwrap();
        drop(f);
        append(&path, &(line(20) + &line(21) + &line(22)));
        let update = tail.poll().unwrap();
        assert!(update.reset);
        assert_eq!(steps(&update), [1, 20, 21, 22]);

        // Removed: a reset with nothing.
        std::fs::remove_file(&path).unwrap();
        let update = tail.poll().unwrap();
        assert!(update.reset && update.records.is_empty());
    }

    #[test]
    fn damaged_lines_are_skipped_and_counted() {
        let d = dir("damage");
        let path = d.0.join("metrics.jsonl");
        std::fs::write(
            &path,
            format!("{}garbage\n{{\"split\":1}}\n{}", line(1), line(2)),
        )
        .unwrap();
        let mut tail = MetricsTailer::new(&path);
        let update = tail.poll().unwrap();
        assert_eq!(steps(&update), [1, 2]);
        assert_eq!(update.skipped, 2);
    }

    #[test]
    fn a_big_file_is_caught_up_in_bounded_reads() {
        let d = dir("big");
        let path = d.0.join("metrics.jsonl");
        let one = line(1);
        let count = (MAX_READ as usize / one.len()) * 2 + 10;
        std::fs::write(&path, one.repeat(count)).unwrap();
        let mut tail = MetricsTailer::new(&path);
        let mut total = 0;
        let mut polls = 0;
        loop {
            let n = tail.poll().unwrap().records.len();
            if n == 0 {
                break;
            }
            total += n;
            polls += 1;
        }
        assert_eq!(total, count);
        assert_eq!(polls, 3);
    }
}
