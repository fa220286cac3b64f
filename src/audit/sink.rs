//! Where the writer's bytes go. A trait so that tests can make writes and syncs fail on cue
//! (running as root, permission bits stop nothing); the real implementation is [`FileSink`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::files;

/// The writer's file operations. Every method is called from the writer thread only.
pub trait Sink: Send + 'static {
    /// Appends bytes to the active log file.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Bytes in the active file.
    fn len(&self) -> u64;
    /// True when the active file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Seals the active file as the segment whose first entry is `first_seq` and starts an
    /// empty active file. Called only after a successful sync.
    fn rotate(&mut self, first_seq: u64) -> io::Result<()>;
    /// Appends a signed note to the on-box checkpoint file and makes it durable.
    fn append_checkpoint(&mut self, note: &[u8]) -> io::Result<()>;
}

/// The active log file and the on-box checkpoint file.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    file: File,
    len: u64,
}

impl FileSink {
    /// Opens (creating) the active log file for appending. Recovery has run before.
    pub fn open(path: &Path) -> io::Result<FileSink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
            len,
        })
    }
}

impl Sink for FileSink {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn rotate(&mut self, first_seq: u64) -> io::Result<()> {
        self.file.sync_all()?;
        let sealed = files::segment_path(&self.path, first_seq);
        std::fs::rename(&self.path, &sealed)?;
        // The rename must be durable before the new file exists, or a crash could leave both
        // an old-named full file and a new empty one.
        files::sync_dir(&self.path)?;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&self.path)?;
        files::sync_dir(&self.path)?;
        self.file = file;
        self.len = 0;
        Ok(())
    }

    fn append_checkpoint(&mut self, note: &[u8]) -> io::Result<()> {
        let path = files::checkpoints_path(&self.path);
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut buf = note.to_vec();
        buf.push(b'\n');
        f.write_all(&buf)?;
        f.sync_data()
    }
}

/// A sink that fails on cue, for tests of the failure semantics.
pub struct FailingSink {
    inner: Box<dyn Sink>,
    /// The n-th (1-based) sync and every later one fails.
    fail_sync_from: Option<u64>,
    /// The n-th (1-based) write and every later one fails.
    fail_write_from: Option<u64>,
    syncs: u64,
    writes: u64,
}

impl FailingSink {
    pub fn new(inner: Box<dyn Sink>) -> Self {
        Self {
            inner,
            fail_sync_from: None,
            fail_write_from: None,
            syncs: 0,
            writes: 0,
        }
    }
    /// Syncs from the n-th on fail with EIO.
    pub fn fail_sync_from(mut self, n: u64) -> Self {
        self.fail_sync_from = Some(n);
        self
    }
    /// Writes from the n-th on fail with ENOSPC.
    pub fn fail_write_from(mut self, n: u64) -> Self {
        self.fail_write_from = Some(n);
        self
    }
}

impl Sink for FailingSink {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writes += 1;
        if self.fail_write_from.is_some_and(|n| self.writes >= n) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.inner.write_all(bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.syncs += 1;
        if self.fail_sync_from.is_some_and(|n| self.syncs >= n) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        self.inner.sync_data()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn rotate(&mut self, first_seq: u64) -> io::Result<()> {
        self.inner.rotate(first_seq)
    }
    fn append_checkpoint(&mut self, note: &[u8]) -> io::Result<()> {
        self.inner.append_checkpoint(note)
    }
}
