//! The [`AuditLog`] handle and the writer thread behind it.
//!
//! The append path is one channel send and one await: callers encode their record on their
//! own task, the writer only prefixes `seq`/`ts`/`prev`, hashes and writes. The writer is a
//! std thread, not a tokio task, because `fdatasync` blocks for up to milliseconds and a
//! blocked runtime worker would stall unrelated requests. A std `mpsc` channel (unbounded:
//! every sender awaits its ack, so the queue never exceeds the requests in flight) lets the
//! thread wait with a timeout for checkpoint intervals and the commit window.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::signature::Ed25519KeyPair;
use tokio::sync::oneshot;

use super::checkpoint::{self, Checkpoint};
use super::config::{AuditConfig, OnMissing};
use super::error::{AuditError, KeyError, WriterFailure};
use super::event::Event;
use super::files::{self, ChainState, RecoveryReport};
use super::offbox;
use super::pace::{self, Pace};
use super::record::{self, TransferRecord};
use super::sink::{FileSink, Sink};
use super::time;

/// What `open` found and did (entries, a cut torn tail, the newest checkpoint).
pub type Recovery = RecoveryReport;

/// Most appends written by one sync.
const MAX_BATCH: usize = 4096;
/// How often an idle writer wakes to check age rotation.
const IDLE_TICK: Duration = Duration::from_secs(1);

enum Cmd {
    Append {
        body: Body,
        ack: oneshot::Sender<Result<u64, AuditError>>,
        /// When it was sent: the writer's [`Pace`] measures the gaps between records.
        sent: Instant,
    },
    Shutdown {
        ack: oneshot::Sender<Result<(), AuditError>>,
    },
    /// The last announced exchange ended without a record: stop waiting for one.
    Nudge,
}

/// Counters for tests, metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Appends acknowledged.
    pub appends: u64,
    /// Successful data syncs of the log file.
    pub syncs: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Entries in the log (the tree size).
    pub entries: u64,
    /// Batches held back for the whole commit window (fewer than four more
    /// records came while other exchanges were in flight). A lone exchange never causes one.
    pub window_timeouts: u64,
}

#[derive(Default)]
struct Counters {
    appends: AtomicU64,
    syncs: AtomicU64,
    checkpoints: AtomicU64,
    entries: AtomicU64,
    window_timeouts: AtomicU64,
}

struct Shared {
    tx: mpsc::Sender<Cmd>,
    failed: Arc<OnceLock<WriterFailure>>,
    /// Governed exchanges in flight that will send a record ([`Preparing`]), and whether
    /// the writer waits for them.
    preparing: Arc<Announced>,
    counters: Arc<Counters>,
    recovery: RecoveryReport,
    on_missing: OnMissing,
    origin: String,
    verifier_key: String,
    offbox_task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    offbox_error: offbox::LastError,
}

/// A handle to the transfer log's writer. Cheap to clone; every clone appends to one log.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("stats", &self.stats())
            .field("failed", &self.shared.failed.get())
            .finish_non_exhaustive()
    }
}

/// A governed exchange in flight, announced to the writer ([`AuditLog::preparing`]).
#[must_use = "the announcement ends when the guard is dropped"]
pub struct Preparing {
    announced: Arc<Announced>,
    tx: mpsc::Sender<Cmd>,
    /// Ends without waking the writer (its record follows at once).
    quiet: bool,
}

impl Preparing {
    fn end_quietly(mut self) {
        self.quiet = true;
    }
}

/// What [`Preparing`] guards share with the writer.
#[derive(Default)]
struct Announced {
    /// Exchanges announced now.
    count: AtomicUsize,
    /// Whether the writer is waiting for them (then the last one to end wakes it).
    awaited: std::sync::atomic::AtomicBool,
}

impl Drop for Preparing {
    fn drop(&mut self) {
        // SeqCst on both sides: either the writer sees the count at zero when it checks, or
        // this sees it waiting and wakes it (a late wake-up is a no-op).
        let last = self.announced.count.fetch_sub(1, Ordering::SeqCst) == 1;
        if last && !self.quiet && self.announced.awaited.load(Ordering::SeqCst) {
            let _ = self.tx.send(Cmd::Nudge);
        }
    }
}

impl std::fmt::Debug for Preparing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Preparing")
    }
}

impl AuditLog {
    /// Loads the signing key, recovers the log (cutting a torn tail, checking the chain and
    /// that no checkpointed entry is missing), and starts the writer and off-box tasks.
    /// Must run inside a tokio runtime.
    pub async fn open(config: AuditConfig) -> Result<AuditLog, AuditError> {
        Self::open_with_sink(config, |s| s).await
    }

    /// [`AuditLog::open`] with the file sink wrapped, e.g. in a [`super::FailingSink`].
    pub async fn open_with_sink<F>(config: AuditConfig, wrap: F) -> Result<AuditLog, AuditError>
    where
        F: FnOnce(Box<dyn Sink>) -> Box<dyn Sink> + Send + 'static,
    {
        let mut config = config;
        config.origin = tokio::task::spawn_blocking({
            let config = config.clone();
            move || resolve_origin(&config)
        })
        .await
        .map_err(|e| AuditError::OpenTask(Arc::new(e)))?;
        let cfg = config.clone();
        let (writer_parts, recovery) = tokio::task::spawn_blocking(move || prepare(&cfg, wrap))
            .await
            .map_err(|e| AuditError::OpenTask(Arc::new(e)))??;
        let (key, sink, recovered, lock) = writer_parts;
        let verifier_key = checkpoint::verifier_key(&config.origin, &checkpoint::public_key(&key));
        let offbox_error: offbox::LastError = Arc::new(Mutex::new(None));
        let (offbox_tx, offbox_task) = match offbox::spawn(&config.offbox, offbox_error.clone()) {
            Some((tx, h)) => (Some(tx), Some(h)),
            None => (None, None),
        };
        let failed = Arc::new(OnceLock::new());
        let counters = Arc::new(Counters::default());
        counters
            .entries
            .store(recovered.chain.next_seq, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        let preparing = Arc::new(Announced::default());
        let now = Instant::now();
        let mut writer = Writer {
            sink,
            active_first_seq: recovered.active_first_seq,
            active_started: recovered.active_started,
            last_cp_size: recovery.last_checkpoint,
            last_cp_at: now,
            chain: recovered.chain,
            key,
            origin: config.origin.clone(),
            every: config.checkpoint_every.max(1),
            interval: config.checkpoint_interval,
            rotate_bytes: config.rotate_bytes,
            rotate_age: config.rotate_age,
            pace: Pace::new(config.commit_window),
            preparing: preparing.clone(),
            failed: failed.clone(),
            counters: counters.clone(),
            offbox: offbox_tx,
            lock: Some(lock),
        };
        std::thread::Builder::new()
            .name("zweck-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditError::io(&config.log, e))?;
        Ok(AuditLog {
            shared: Arc::new(Shared {
                tx,
                failed,
                preparing,
                counters,
                recovery,
                on_missing: config.on_missing_mechanism,
                origin: config.origin.clone(),
                verifier_key,
                offbox_task: tokio::sync::Mutex::new(offbox_task),
                offbox_error,
            }),
        })
    }

    /// Appends one record; returns its seq once it is durable (after fdatasync).
    pub async fn append(&self, record: TransferRecord) -> Result<u64, AuditError> {
        self.append_record(&record).await
    }

    /// [`AuditLog::append`] by reference, for a caller that still needs the record after it
    /// is durable (the incident detector reads its counts).
    pub async fn append_record(&self, record: &TransferRecord) -> Result<u64, AuditError> {
        self.append_prepared(record, None).await
    }

    /// Announces a governed exchange in flight whose record will follow: while any is
    /// announced, the writer waits up to `commit_window` for more records before it syncs,
    /// so under load one `fdatasync` covers many. Dropping the guard (or appending with it)
    /// ends the announcement; an exchange that waits for its own record's sync must not be
    /// announced meanwhile, or the writer would wait the whole window for nothing.
    pub fn preparing(&self) -> Preparing {
        self.shared.preparing.count.fetch_add(1, Ordering::SeqCst);
        Preparing {
            announced: self.shared.preparing.clone(),
            tx: self.shared.tx.clone(),
            quiet: false,
        }
    }

    /// Whether the writer holds records back now, waiting for exchanges in flight (tests).
    #[doc(hidden)]
    pub fn awaiting_in_flight(&self) -> bool {
        self.shared.preparing.awaited.load(Ordering::SeqCst)
    }

    /// [`AuditLog::append_record`] for an exchange announced with [`AuditLog::preparing`]: the
    /// announcement ends just before the record is sent, so the writer never waits for a
    /// record it already holds.
    pub async fn append_prepared(
        &self,
        record: &TransferRecord,
        preparing: Option<Preparing>,
    ) -> Result<u64, AuditError> {
        let encoded = self.encode(record);
        // quietly: this record is what the writer waits for, sent right after
        if let Some(p) = preparing {
            p.end_quietly();
        }
        self.send(Body::Encoded(encoded?)).await
    }

    fn encode(&self, record: &TransferRecord) -> Result<Vec<u8>, AuditError> {
        if let Some(why) = self.shared.failed.get() {
            return Err(AuditError::Failed(why.clone()));
        }
        serde_json::to_vec(record).map_err(|e| AuditError::Encode(Arc::new(e)))
    }

    /// Appends an event entry (`incident`, `containment`) to the same chain, with the same
    /// durability; returns its `seq` (an incident's id is `inc-<seq>`).
    pub async fn append_event(&self, event: Event) -> Result<u64, AuditError> {
        if let Some(why) = self.shared.failed.get() {
            return Err(AuditError::Failed(why.clone()));
        }
        self.send(Body::Event(Box::new(event))).await
    }

    async fn send(&self, body: Body) -> Result<u64, AuditError> {
        let (ack, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Cmd::Append {
                body,
                ack,
                sent: Instant::now(),
            })
            .map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| self.closed_or_failed())?
    }

    /// Writes a final checkpoint, delivers it off-box, and stops the writer. Later appends
    /// fail with `Closed`. Errors if the final checkpoint could not be written on or off box.
    pub async fn shutdown(&self) -> Result<(), AuditError> {
        let (ack, rx) = oneshot::channel();
        let sent = self.shared.tx.send(Cmd::Shutdown { ack }).is_ok();
        let result = if sent {
            rx.await.unwrap_or(Err(AuditError::Closed))
        } else {
            Ok(())
        };
        // The writer dropped its off-box sender on exit; the task ends after delivering.
        if let Some(task) = self.shared.offbox_task.lock().await.take() {
            let _ = task.await;
        }
        result?;
        match self.shared.offbox_error.lock().ok().and_then(|g| g.clone()) {
            Some(e) => Err(AuditError::Offbox(e)),
            None => Ok(()),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> AuditStats {
        let c = &self.shared.counters;
        AuditStats {
            appends: c.appends.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            entries: c.entries.load(Ordering::Relaxed),
            window_timeouts: c.window_timeouts.load(Ordering::Relaxed),
        }
    }

    /// What recovery found when the log was opened.
    pub fn recovery(&self) -> &Recovery {
        &self.shared.recovery
    }

    /// Whether the writer has failed (every append would fail): cheap, for the request path.
    pub fn has_failed(&self) -> bool {
        self.shared.failed.get().is_some()
    }

    /// Why the writer failed, if it did (readiness reports it; appends return it).
    pub fn failure(&self) -> Option<String> {
        self.shared.failed.get().map(ToString::to_string)
    }

    /// The last off-box delivery error, `None` once a delivery succeeded.
    pub fn offbox_error(&self) -> Option<String> {
        self.shared
            .offbox_error
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(ToString::to_string))
    }

    /// The `audit.on_missing_mechanism` setting, for [`super::decide_mechanism`].
    pub fn on_missing_mechanism(&self) -> OnMissing {
        self.shared.on_missing
    }

    /// The origin the checkpoints name (configured, or the log's own, or the default).
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// The signed-note verifier key (`name+hash+base64`) of the checkpoint signer.
    pub fn verifier_key(&self) -> &str {
        &self.shared.verifier_key
    }

    fn closed_or_failed(&self) -> AuditError {
        match self.shared.failed.get() {
            Some(why) => AuditError::Failed(why.clone()),
            None => AuditError::Closed,
        }
    }
}

type Prepared = (
    (
        Ed25519KeyPair,
        Box<dyn Sink>,
        files::Recovered,
        std::fs::File,
    ),
    RecoveryReport,
);

/// Takes the log's lock file (`<log>.lock`, an exclusive advisory lock held for the writer's
/// life): two processes appending to one log would interleave lines and break the hash
/// chain, which an auditor could not tell from tampering. The kernel drops the lock when the
/// process dies, so a crash never leaves it stale.
fn lock_log(log: &std::path::Path) -> Result<std::fs::File, AuditError> {
    let path = files::lock_path(log);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| AuditError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(AuditError::InUse {
            path: log.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(AuditError::io(&path, e)),
    }
}

/// The origin to sign as: the configured one; else the one the log's newest on-box
/// checkpoint names (a log keeps its origin when the default changes, e.g. on upgrade from
/// `zweck/<hostname>`); else the default for this log.
fn resolve_origin(config: &AuditConfig) -> String {
    if config.origin_configured {
        return config.origin.clone();
    }
    files::read_checkpoints(&files::checkpoints_path(&config.log))
        .ok()
        .and_then(|notes| {
            notes.into_iter().flatten().rev().find_map(|n| {
                checkpoint::Checkpoint::parse_body(&n.body)
                    .ok()
                    .map(|c| c.origin)
            })
        })
        .unwrap_or_else(|| config.origin.clone())
}

/// The blocking half of `open`: key, directory, recovery, file.
fn prepare<F>(config: &AuditConfig, wrap: F) -> Result<Prepared, AuditError>
where
    F: FnOnce(Box<dyn Sink>) -> Box<dyn Sink>,
{
    let key_err = |reason: KeyError| AuditError::Key {
        path: config.signing_key.display().to_string(),
        reason,
    };
    let kp = crate::secrets::read_audit_key(&config.signing_key)
        .map_err(|e| key_err(KeyError::Unreadable(Arc::new(e))))?;
    let key = checkpoint::key_from_pkcs8(&kp.serialize_der())
        .map_err(|e| key_err(KeyError::NotEd25519(e)))?;
    if let Some(dir) = config.log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
    }
    let lock = lock_log(&config.log)?;
    let pk = checkpoint::public_key(&key);
    let recovered = files::recover(&config.log, Some((&config.origin, &pk)))?;
    if let Some((bytes, saved)) = &recovered.report.cut {
        tracing::warn!(bytes, saved = %saved.display(), "transfer log: recovered from a torn tail");
    }
    let sink = FileSink::open(&config.log).map_err(|e| AuditError::io(&config.log, e))?;
    let report = recovered.report.clone();
    Ok(((key, wrap(Box::new(sink)), recovered, lock), report))
}

type AppendAck = oneshot::Sender<Result<u64, AuditError>>;

/// What an append carries: a transfer record encoded by the caller, or an event entry the
/// writer encodes once its `seq` is known (an incident's id is its position).
enum Body {
    Encoded(Vec<u8>),
    Event(Box<Event>),
}

impl Body {
    fn encode(self, seq: u64) -> Result<Vec<u8>, AuditError> {
        match self {
            Body::Encoded(b) => Ok(b),
            Body::Event(e) => e.encode(seq).map_err(|e| AuditError::Encode(Arc::new(e))),
        }
    }

    fn len_hint(&self) -> usize {
        match self {
            Body::Encoded(b) => b.len(),
            Body::Event(_) => 512,
        }
    }
}
type ShutdownAck = oneshot::Sender<Result<(), AuditError>>;

fn sort(
    cmd: Cmd,
    pace: &mut Pace,
    appends: &mut Vec<(Body, AppendAck)>,
    shutdowns: &mut Vec<ShutdownAck>,
) {
    match cmd {
        Cmd::Append { body, ack, sent } => {
            pace.arrived(sent);
            appends.push((body, ack));
        }
        Cmd::Shutdown { ack } => shutdowns.push(ack),
        Cmd::Nudge => {}
    }
}

struct Writer {
    sink: Box<dyn Sink>,
    chain: ChainState,
    active_first_seq: u64,
    /// Seconds since the epoch of the active file's first entry.
    active_started: Option<u64>,
    last_cp_size: u64,
    last_cp_at: Instant,
    key: Ed25519KeyPair,
    origin: String,
    every: u64,
    interval: Option<Duration>,
    rotate_bytes: Option<u64>,
    rotate_age: Option<Duration>,
    /// How fast records arrive: whether, and how long, a batch waits for more.
    pace: Pace,
    preparing: Arc<Announced>,
    failed: Arc<OnceLock<WriterFailure>>,
    counters: Arc<Counters>,
    offbox: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// The log's lock file; released (dropped) before a shutdown is acknowledged, so the log
    /// can be reopened as soon as `shutdown` returns.
    lock: Option<std::fs::File>,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Cmd>) {
        loop {
            let first = match rx.recv_timeout(self.idle_wait()) {
                Ok(cmd) => cmd,
                Err(RecvTimeoutError::Timeout) => {
                    self.housekeeping();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Every handle is gone without a shutdown: still seal what was written.
                    let _ = self.final_checkpoint();
                    return;
                }
            };
            let mut appends = Vec::new();
            let mut shutdowns = Vec::new();
            sort(first, &mut self.pace, &mut appends, &mut shutdowns);
            while appends.len() < MAX_BATCH && shutdowns.is_empty() {
                match rx.try_recv() {
                    Ok(cmd) => sort(cmd, &mut self.pace, &mut appends, &mut shutdowns),
                    Err(_) => break,
                }
            }
            self.await_prepared(&rx, &mut appends, &mut shutdowns);
            self.commit(appends);
            if !shutdowns.is_empty() {
                let result = self.final_checkpoint();
                self.lock = None;
                for ack in shutdowns {
                    let _ = ack.send(result.clone());
                }
                return;
            }
            self.housekeeping();
        }
    }

    /// Group commit under load: while other governed exchanges are in flight (announced with
    /// [`AuditLog::preparing`]) and records arrive faster than the commit window ([`Pace`]),
    /// waits for their records until [`pace::TARGET`] more came, none is in flight any more,
    /// or the window is over, so they share this batch's sync instead of each paying one.
    /// Nothing else in flight (an idle proxy, a lone request) or records further apart than
    /// the window: no wait.
    fn await_prepared(
        &mut self,
        rx: &mpsc::Receiver<Cmd>,
        appends: &mut Vec<(Body, AppendAck)>,
        shutdowns: &mut Vec<ShutdownAck>,
    ) {
        if appends.is_empty() || self.preparing.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        let Some(wait) = self.pace.wait() else {
            return;
        };
        let deadline = Instant::now() + wait;
        let enough = (appends.len() + pace::TARGET).min(MAX_BATCH);
        self.preparing.awaited.store(true, Ordering::SeqCst);
        while appends.len() < enough
            && shutdowns.is_empty()
            && self.preparing.count.load(Ordering::SeqCst) > 0
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(cmd) => sort(cmd, &mut self.pace, appends, shutdowns),
                Err(RecvTimeoutError::Timeout) => {
                    self.counters
                        .window_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.preparing.awaited.store(false, Ordering::SeqCst);
    }

    fn idle_wait(&self) -> Duration {
        let mut wait = Duration::from_secs(3600);
        if self.rotate_age.is_some() {
            wait = wait.min(IDLE_TICK);
        }
        if let Some(iv) = self.interval {
            if self.chain.next_seq > self.last_cp_size {
                wait = wait.min(iv.saturating_sub(self.last_cp_at.elapsed()));
            }
        }
        wait.max(Duration::from_millis(1))
    }

    /// Fails the writer for good; returns the failure that counts (the first one).
    fn fail(&self, why: WriterFailure) -> WriterFailure {
        tracing::error!(error = %why, "transfer log failed; governed flows stop until restart");
        self.failed.get_or_init(|| why).clone()
    }

    /// Writes a batch with one sync and acknowledges it.
    fn commit(&mut self, appends: Vec<(Body, AppendAck)>) {
        if appends.is_empty() {
            return;
        }
        if let Some(why) = self.failed.get() {
            for (_, ack) in appends {
                let _ = ack.send(Err(AuditError::Failed(why.clone())));
            }
            return;
        }
        let now = SystemTime::now();
        let ts = time::rfc3339_millis(now);
        if self.sink.is_empty() {
            self.active_started = now.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs());
        }
        let mut buf = Vec::with_capacity(appends.iter().map(|(b, _)| b.len_hint() + 160).sum());
        let mut acks = Vec::with_capacity(appends.len());
        for (body, ack) in appends {
            let seq = self.chain.next_seq;
            let body = match body.encode(seq) {
                Ok(body) => body,
                Err(e) => {
                    // nothing written for it: the next entry takes this seq
                    let _ = ack.send(Err(e));
                    continue;
                }
            };
            let line = record::line(seq, &ts, &self.chain.prev, &body);
            self.chain.advance(&line);
            buf.extend_from_slice(&line);
            buf.push(b'\n');
            acks.push((seq, ack));
        }
        let result = self
            .sink
            .write_all(&buf)
            .map_err(|e| WriterFailure::Write(Arc::new(e)))
            .and_then(|()| {
                self.sink
                    .sync_data()
                    .map_err(|e| WriterFailure::Sync(Arc::new(e)))
            });
        match result {
            Ok(()) => {
                let n = acks.len() as u64;
                self.counters.syncs.fetch_add(1, Ordering::Relaxed);
                self.counters.appends.fetch_add(n, Ordering::Relaxed);
                self.counters
                    .entries
                    .store(self.chain.next_seq, Ordering::Relaxed);
                for (seq, ack) in acks {
                    let _ = ack.send(Ok(seq));
                }
            }
            Err(why) => {
                let why = self.fail(why);
                for (_, ack) in acks {
                    let _ = ack.send(Err(AuditError::Failed(why.clone())));
                }
            }
        }
    }

    /// Checkpoints and rotation that are due.
    fn housekeeping(&mut self) {
        if self.failed.get().is_some() {
            return;
        }
        let new = self.chain.next_seq - self.last_cp_size;
        let interval_due = self
            .interval
            .is_some_and(|iv| new > 0 && self.last_cp_at.elapsed() >= iv);
        if new >= self.every || interval_due {
            if let Err(why) = self.checkpoint() {
                self.fail(why);
                return;
            }
        }
        if self.sink.is_empty() {
            return;
        }
        let by_size = self.rotate_bytes.is_some_and(|b| self.sink.len() >= b);
        let by_age = match (self.rotate_age, self.active_started) {
            (Some(age), Some(started)) => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .is_ok_and(|now| now.as_secs().saturating_sub(started) >= age.as_secs()),
            _ => false,
        };
        if by_size || by_age {
            // Each segment ends on a checkpoint, so a segment can be checked on its own.
            let result = self.checkpoint().and_then(|()| {
                self.sink
                    .rotate(self.active_first_seq)
                    .map_err(|e| WriterFailure::Rotate(Arc::new(e)))
            });
            match result {
                Ok(()) => {
                    self.active_first_seq = self.chain.next_seq;
                    self.active_started = None;
                }
                Err(why) => {
                    self.fail(why);
                }
            }
        }
    }

    fn final_checkpoint(&mut self) -> Result<(), AuditError> {
        if let Some(why) = self.failed.get() {
            return Err(AuditError::Failed(why.clone()));
        }
        self.checkpoint()
            .map_err(|why| AuditError::Failed(self.fail(why)))
    }

    /// Signs the current tree head, appends it on box (synced) and hands it to off-box.
    /// A no-op when nothing is new since the last checkpoint.
    fn checkpoint(&mut self) -> Result<(), WriterFailure> {
        let size = self.chain.next_seq;
        if size == self.last_cp_size {
            return Ok(());
        }
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root: self.chain.frontier.root(),
            extensions: vec![format!("time {}", time::rfc3339_secs(SystemTime::now()))],
        };
        let note = checkpoint::sign(&cp, &self.origin, &self.key);
        self.sink
            .append_checkpoint(note.as_bytes())
            .map_err(|e| WriterFailure::Checkpoint(Arc::new(e)))?;
        self.last_cp_size = size;
        self.last_cp_at = Instant::now();
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        if let Some(tx) = &self.offbox {
            let _ = tx.send(note);
        }
        Ok(())
    }
}
