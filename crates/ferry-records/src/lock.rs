//! The stage lock: one SSM parameter, `<records path>lock`, created with overwrite off (SSM
//! refuses a second one atomically), holding who holds it, where, since when, and a token that
//! is this run's alone.
//!
//! - A run releases only a lock whose token is its own: a lock another run took over is left.
//! - The holder renews the lock every [`RENEW_EVERY`]; a lock not renewed for [`LOCK_TTL`] is
//!   stale, and so is one whose process is gone from this very host (same host name and boot,
//!   pid not running or running another program). [`staleness`] is the pure rule.
//! - A lock's age is measured by SSM's clock alone: from when SSM last wrote it (the
//!   parameter's `LastModifiedDate`) to the `Date` of SSM's answer, not from the time the
//!   holder wrote into it nor to this machine's present. Either machine's clock may be minutes
//!   or hours off, which would let a live lock be taken over or keep a dead one for hours.
//! - `force` takes over a stale lock only, saying whom it displaced; a live lock is refused.
//! - SSM has no compare-and-delete: two runs forcing one stale lock in the same instant can both
//!   believe they hold it. The loser finds the other token at its next renewal and stops.
//! - A batch (one deploy spread over many CI machines) holds the lock as a whole: its holder
//!   names the batch, and its token is derived from the batch id, so every node of the batch
//!   joins the lock ([`RecordStore::join`]) while its siblings run, and any node (or the batch's
//!   last step) renews or releases it. Nodes come and go, so a batch's lock is stale only by
//!   age, never because one node's process ended.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use aws_sdk_ssm::error::ProvideErrorMetadata;
use serde::{Deserialize, Serialize};

use crate::{RecordError, RecordStore, format_time, now_secs};

/// How often a holder renews its lock.
pub const RENEW_EVERY: Duration = Duration::from_secs(60);
/// A lock not renewed for this long is stale.
pub const LOCK_TTL: Duration = Duration::from_secs(5 * 60);
/// A batch's lock not renewed for this long is stale. Its nodes renew it only while one runs,
/// and the next wave's machines may take minutes to be scheduled and to build the task runner;
/// the batch's own finishing step releases it. A failed batch build, which never finishes,
/// holds the stage this long.
pub const BATCH_LOCK_TTL: Duration = Duration::from_secs(60 * 60);

/// Who holds a stage's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub who: String,
    pub host: String,
    /// E.g. a CodeBuild build id.
    pub build: Option<String>,
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub since: u64,
    /// The command holding it (`deploy`, `remove`, `test-acceptance`).
    #[serde(default)]
    pub command: Option<String>,
    /// The stage name as the holder wrote it.
    #[serde(default)]
    pub stage: Option<String>,
    /// This run's own id: only a run with this token releases or renews the lock.
    #[serde(default)]
    pub token: String,
    /// Last renewal, seconds since the Unix epoch.
    #[serde(default)]
    pub renewed: Option<u64>,
    /// The holder's boot (Linux `boot_id`): a pid is only comparable within one boot.
    #[serde(default)]
    pub boot: Option<String>,
    /// When the holder's process started (clock ticks since boot), so a reused pid is told apart.
    #[serde(default)]
    pub started: Option<u64>,
    /// The holder's pid namespace (Linux `/proc/self/ns/pid`): containers on one host's network
    /// share its name and boot, not their pids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<String>,
    /// The batch holding the lock (one deploy spread over CI machines), joined by its nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// A batch's release id, named by the node that took the lock for it (by when it took it
    /// and its commit): every node and `batch finish` name it, at whatever commit they run, so
    /// the batch makes one release (a retry at a fix commit, a finish at another). `None` in a
    /// plain run's lock and in locks written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Whoever may write the lock parameter wrote these: one line, steering no terminal.
        let shown = |t: &str| ferry_ci::one_line(t).into_owned();
        let who = shown(&self.who);
        // One that names no holder: no made-up host, pid or 1970 date.
        if self.host == "?" && self.pid == 0 && self.since == 0 {
            return write!(
                f,
                "{who} (the `lock` parameter under the stage's records path holds no holder Ferry writes; delete it if no run holds the stage)"
            );
        }
        if let Some(b) = &self.batch {
            write!(f, "batch {}: ", shown(b))?;
        }
        write!(f, "{who} on {} (pid {}", shown(&self.host), self.pid)?;
        if let Some(b) = &self.build {
            write!(f, ", build {}", shown(b))?;
        }
        if let Some(c) = &self.command {
            write!(f, ", `{}`", shown(c))?;
        }
        write!(f, ") since {} UTC", format_time(self.since))
    }
}

/// Why a lock is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// Its process is not running on this host any more.
    DeadProcess { pid: u32 },
    /// Its host has restarted since it was taken.
    Rebooted,
    /// Not renewed for `idle_secs`, more than `ttl_secs` ([`LOCK_TTL`], or [`BATCH_LOCK_TTL`]
    /// for a batch's lock).
    Expired { idle_secs: u64, ttl_secs: u64 },
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::DeadProcess { pid } => write!(f, "pid {pid} is no longer running on this host"),
            Stale::Rebooted => f.write_str("this host has restarted since it was taken"),
            Stale::Expired {
                idle_secs,
                ttl_secs,
            } => write!(
                f,
                "not renewed for {}, more than the {} a live holder allows",
                human(*idle_secs),
                human(*ttl_secs)
            ),
        }
    }
}

/// A duration for messages: `45s`, `6 min`, `2 h`.
pub fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

/// What this host and process look like, for [`staleness`]: the host name, the boot, and which
/// processes run.
pub struct Here<'a> {
    pub host: String,
    pub boot: Option<String>,
    /// When this host booted, seconds since the epoch (Linux).
    pub booted_at: Option<u64>,
    pub pid_ns: Option<String>,
    /// Whether `pid` runs and, when a start time is given, started then.
    pub alive: &'a dyn Fn(u32, Option<u64>) -> bool,
}

impl Here<'static> {
    /// This host, its boot, and its processes.
    pub fn this_host() -> Self {
        Here {
            host: process::host(),
            boot: process::boot(),
            booted_at: process::booted_at(),
            pid_ns: process::pid_ns(),
            alive: &process::alive,
        }
    }
}

/// How long `holder`'s lock may go without renewal: [`BATCH_LOCK_TTL`] for a batch's.
fn ttl(holder: &LockHolder) -> Duration {
    if holder.batch.is_some() {
        BATCH_LOCK_TTL
    } else {
        LOCK_TTL
    }
}

/// When `holder`'s lock counts as stale, for messages: a batch's by age only.
pub fn stale_rule(holder: &LockHolder) -> String {
    let ttl = human(ttl(holder).as_secs());
    if holder.batch.is_some() {
        format!("a batch's lock is stale once not renewed for {ttl}")
    } else {
        format!(
            "a lock is stale once not renewed for {ttl}, or when its process is gone from this host (same boot and pid namespace), or this host restarted since it was written"
        )
    }
}

/// For a batch's lock, how to release it before it goes stale: a failed node stops the batch
/// (CodeBuild skips its finish), and a fix is another commit, so another batch, which the lock
/// refuses for an hour. Empty for any other lock.
pub fn batch_way_out(holder: &LockHolder, stage: &str) -> String {
    match &holder.batch {
        Some(b) => format!(
            ". Once none of that batch's nodes runs (one failed, and the rest were skipped), `batch finish {stage} --batch {}` releases it now, with a release of what it deployed",
            ferry_ci::one_line(b)
        ),
        None => String::new(),
    }
}

/// Whether `holder`'s lock, last written at `last_write` (see [`last_write`]), is stale at
/// `now` (seconds since the epoch), seen from `here`.
pub fn staleness(holder: &LockHolder, last_write: u64, now: u64, here: &Here<'_>) -> Option<Stale> {
    // A batch's nodes end one by one while the batch goes on: only its age counts.
    if holder.host == here.host && holder.batch.is_none() {
        // Written before this host last booted, on a boot of its own: this host restarted
        // since. (Another boot id alone proves nothing: machines made from one image share a
        // name, and a live run on one writes its lock after this one booted.)
        if holder.boot.is_some()
            && here.boot.is_some()
            && holder.boot != here.boot
            && here.booted_at.is_some_and(|b| last_write < b)
        {
            return Some(Stale::Rebooted);
        }
        if sees_its_processes(holder, here) && !(here.alive)(holder.pid, holder.started) {
            return Some(Stale::DeadProcess { pid: holder.pid });
        }
    }
    let idle_secs = now.saturating_sub(last_write);
    let ttl_secs = ttl(holder).as_secs();
    (idle_secs > ttl_secs).then_some(Stale::Expired {
        idle_secs,
        ttl_secs,
    })
}

impl LockHolder {
    /// Whether `other` was written by the very process this was: the same host, boot, pid
    /// namespace, pid and start time (containers on one host share its name, and often pids).
    pub fn same_process(&self, other: &LockHolder) -> bool {
        self.host == other.host
            && self.boot == other.boot
            && self.pid_ns == other.pid_ns
            && self.pid == other.pid
            && self.started == other.started
    }
}

/// Whether this process sees `holder`'s among its own: the same host name, boot and pid
/// namespace (each equal, or unknown to both, as on a system without them, macOS). A host
/// name alone proves nothing on Linux: containers on one host's network share its name and
/// boot, not their processes, and machines made from one image may share a name; a false
/// "dead" would take the lock from a live run.
fn sees_its_processes(holder: &LockHolder, here: &Here<'_>) -> bool {
    holder.host == here.host && holder.boot == here.boot && holder.pid_ns == here.pid_ns
}

/// A batch node marked as at work ([`RecordStore::running_nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningNode {
    pub service: String,
    /// The node's process: host, pid, build.
    pub holder: LockHolder,
    /// Since it last renewed its mark, by SSM's clock.
    pub renewed_secs_ago: u64,
    /// Why the mark is stale (the node was killed, or its machine lost), if it is.
    pub stale: Option<Stale>,
}

impl RunningNode {
    /// The node's process for messages: who, host, pid, build, since when (its batch is known).
    pub fn process(&self) -> LockHolder {
        LockHolder {
            batch: None,
            ..self.holder.clone()
        }
    }
}

/// Whether a node's mark, last written at `last_write`, is stale at `now`: not renewed for
/// [`LOCK_TTL`] (a node renews it every minute while it works), or its process gone from this
/// very host and boot, both known. A host name alone proves nothing here: containers on one
/// host's network share its name, not its processes, and machines made from one image may
/// share one; a false "stale" would have `batch finish` release the lock under a live node.
fn node_staleness(node: &LockHolder, last_write: u64, now: u64, here: &Here<'_>) -> Option<Stale> {
    if sees_its_processes(node, here) && !(here.alive)(node.pid, node.started) {
        return Some(Stale::DeadProcess { pid: node.pid });
    }
    let idle_secs = now.saturating_sub(last_write);
    let ttl_secs = LOCK_TTL.as_secs();
    (idle_secs > ttl_secs).then_some(Stale::Expired {
        idle_secs,
        ttl_secs,
    })
}

/// What taking the lock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    /// With `force`: the stale lock that was replaced, and why it was stale.
    pub displaced: Option<(LockHolder, Stale)>,
}

/// What joining a batch's lock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// The lock was free: this node took it for its batch.
    Took,
    /// Another node of the same batch holds it: this node shares it. `since` is when the batch
    /// took it, `release` the batch's release id (see [`LockHolder::release`]).
    Joined { since: u64, release: Option<String> },
    /// Another batch's lock, not renewed for [`BATCH_LOCK_TTL`] (that batch is over: a failed
    /// batch build never runs its finishing node), was taken over for this batch.
    TookOver { from: Box<LockHolder>, why: Stale },
}

/// What releasing the lock found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    Released,
    /// There was no lock any more.
    Gone,
    /// Another run holds it now (it took the lock over): left in place.
    NotOurs(Box<LockHolder>),
}

/// This process: its host, boot and start time, and liveness of others on this host.
pub mod process {
    /// The host name: the kernel's node name.
    pub fn host() -> String {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    }

    /// The current boot's id (Linux), so pids of an earlier boot are never compared.
    pub fn boot() -> Option<String> {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// When this host booted, seconds since the epoch (Linux: `btime` of `/proc/stat`).
    pub fn booted_at() -> Option<u64> {
        std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
    }

    /// This process's pid namespace (Linux: `pid:[4026531836]`).
    pub fn pid_ns() -> Option<String> {
        std::fs::read_link("/proc/self/ns/pid")
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// When process `pid` started, in clock ticks since boot (Linux).
    pub fn started(pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 22; the command name (field 2) may hold spaces and parentheses.
        let rest = &stat[stat.rfind(')')? + 1..];
        rest.split_whitespace().nth(19)?.parse().ok()
    }

    /// Whether process `pid` has ended and waits only to be reaped (a zombie, Linux): it holds
    /// nothing any more, though a signal test still finds it.
    fn ended(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let rest = &stat[stat.rfind(')')? + 1..];
                rest.split_whitespace()
                    .next()
                    .map(|state| state == "Z" || state == "X")
            })
            .unwrap_or(false)
    }

    /// Whether `pid` runs (and, when `start` is known and readable, is the process that
    /// started then rather than a later one that reused the pid). A process killed a moment
    /// ago that its parent has not reaped yet does not.
    pub fn alive(pid: u32, start: Option<u64>) -> bool {
        let Some(p) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        let exists = match rustix::process::test_kill_process(p) {
            Ok(()) => true,
            Err(e) => e == rustix::io::Errno::PERM,
        };
        exists
            && !ended(pid)
            && match (start, started(pid)) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// A token no other run has: this process, this instant and the process's random hash keys.
fn new_token() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

impl LockHolder {
    /// The holder for this process running `command` on `stage`. `var` looks up environment
    /// variables: who is `USER` (or `USERNAME`, `LOGNAME`, the CI's actor `GITHUB_ACTOR` /
    /// `CODEBUILD_INITIATOR`), else the name of this uid in /etc/passwd, else `uid <n>`.
    pub fn for_this_process(
        var: &dyn Fn(&str) -> Option<String>,
        command: &str,
        stage: &str,
        build: Option<String>,
    ) -> LockHolder {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let uid = rustix::process::getuid().as_raw();
        let who = [
            "USER",
            "USERNAME",
            "LOGNAME",
            "GITHUB_ACTOR",
            "CODEBUILD_INITIATOR",
        ]
        .iter()
        .find_map(|k| var(k))
        .or_else(|| user_name(uid))
        .unwrap_or_else(|| format!("uid {uid}"));
        let pid = std::process::id();
        LockHolder {
            who,
            host: process::host(),
            build,
            pid,
            since: now_secs(),
            command: Some(command.to_string()),
            stage: Some(stage.to_string()),
            token: new_token(),
            renewed: None,
            boot: process::boot(),
            started: process::started(pid),
            pid_ns: process::pid_ns(),
            batch: None,
            release: None,
        }
    }

    /// This holder as a node of `batch`: every node of one batch on one stage gets the same
    /// token, so any of them renews or releases the batch's lock.
    pub fn in_batch(self, batch: &str) -> LockHolder {
        use sha2::Digest as _;
        let stage = self.stage.clone().unwrap_or_default();
        let digest = sha2::Sha256::digest(format!("{stage}\0{batch}").as_bytes());
        let token: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        LockHolder {
            token: format!("batch-{token}"),
            batch: Some(batch.to_string()),
            ..self
        }
    }
}

/// The name of `uid` in /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// A stage's lock as read: its holder, when it was last written ([`last_write`]) and the
/// present, both by SSM's clock (this machine's when SSM did not say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockState {
    pub holder: LockHolder,
    pub last_write: u64,
    pub now: u64,
}

impl LockState {
    /// Whether the lock is stale, seen from this host ([`staleness`], by SSM's clock).
    pub fn staleness(&self) -> Option<Stale> {
        staleness(&self.holder, self.last_write, self.now, &Here::this_host())
    }
}

/// A lock's text as SSM returned it, with its `LastModifiedDate` and the answer's `Date`.
struct StoredLock {
    text: String,
    written: Option<u64>,
    now: u64,
}

impl StoredLock {
    fn state(&self) -> LockState {
        let holder = parse_holder(&self.text);
        LockState {
            last_write: last_write(&holder, self.written),
            now: self.now,
            holder,
        }
    }
}

/// Keeps the `Date` header of SSM's answer: SSM's present, so that a lock's age compares two
/// times of one clock (the reader's clock may be off as much as the holder's).
#[derive(Debug, Clone, Default)]
struct ServerDate(std::sync::Arc<std::sync::Mutex<Option<u64>>>);

impl ServerDate {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self) -> Option<u64> {
        *self.slot()
    }
}

impl aws_sdk_ssm::config::Intercept for ServerDate {
    fn name(&self) -> &'static str {
        "ferry_records::ServerDate"
    }

    fn read_before_deserialization(
        &self,
        context: &aws_sdk_ssm::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _: &aws_sdk_ssm::config::RuntimeComponents,
        _: &mut aws_sdk_ssm::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let date = context
            .response()
            .headers()
            .get("date")
            .and_then(|d| {
                aws_sdk_ssm::primitives::DateTime::from_str(
                    d,
                    aws_sdk_ssm::primitives::DateTimeFormat::HttpDate,
                )
                .ok()
            })
            .and_then(|d| u64::try_from(d.secs()).ok());
        *self.slot() = date;
        Ok(())
    }
}

impl RecordStore {
    /// The stage's lock as stored, with when SSM last wrote it and SSM's present (the `Date`
    /// of its answer; this machine's when SSM did not say).
    async fn read_lock(&self) -> Result<Option<StoredLock>, RecordError> {
        let date = ServerDate::default();
        match self
            .client
            .get_parameter()
            .name(self.lock_name())
            .customize()
            .interceptor(date.clone())
            .send()
            .await
        {
            Ok(out) => Ok(out.parameter().and_then(|p| {
                let written = p
                    .last_modified_date()
                    .and_then(|d| u64::try_from(d.secs()).ok());
                Some(StoredLock {
                    text: p.value()?.to_string(),
                    written,
                    now: date.get().unwrap_or_else(now_secs),
                })
            })),
            Err(e) if e.code() == Some("ParameterNotFound") => Ok(None),
            Err(e) => Err(self.aws("GetParameter", &e)),
        }
    }

    fn lock_name(&self) -> String {
        format!("{}lock", self.path)
    }

    /// The stage's lock, if any, with when it was last written and SSM's present: what
    /// [`staleness`] needs, both by SSM's clock.
    pub async fn lock_state(&self) -> Result<Option<LockState>, RecordError> {
        Ok(self.read_lock().await?.map(|stored| stored.state()))
    }

    /// The lock's current holder, if there is a lock (an unreadable one is described as such).
    pub async fn lock_holder(&self) -> Result<Option<LockHolder>, RecordError> {
        Ok(self
            .get_value(&self.lock_name())
            .await?
            .map(|text| parse_holder(&text)))
    }

    /// Takes the stage's lock for `holder`, or says who holds it (and whether that lock is
    /// stale). With `force`, a stale lock is taken over and named in the result; a live one is
    /// still refused.
    pub async fn lock(&self, holder: &LockHolder, force: bool) -> Result<Acquired, RecordError> {
        let acquired = self.lock_once(holder, force).await;
        if acquired.is_ok() {
            self.hold(Some(&holder.token));
        }
        acquired
    }

    /// What this store (and its clones) holds: set when a lock is taken or joined, cleared when
    /// it is released.
    fn hold(&self, token: Option<&str>) {
        *self.held.lock().expect("held lock") = token.map(String::from);
    }

    /// Checks, right before a stack operation starts, that the lock this store took or joined
    /// is still its own (one GetParameter): between two renewals another run may have taken it
    /// over (a `batch finish` released a batch's lock while a node worked, and a plain deploy
    /// took it). A store that holds no lock checks nothing.
    pub async fn check_held(&self) -> Result<(), RecordError> {
        let Some(token) = self.held.lock().expect("held lock").clone() else {
            return Ok(());
        };
        self.own(self.lock_holder().await?, &token)
    }

    /// Whether the stored lock `current` holds `token`; else the lock was lost (taken over, or
    /// deleted), naming who holds it now.
    fn own(&self, current: Option<LockHolder>, token: &str) -> Result<(), RecordError> {
        match current {
            Some(c) if c.token == token => Ok(()),
            other => Err(RecordError::LockLost {
                stage: self.stage.clone(),
                holder: other.map(Box::new),
            }),
        }
    }

    async fn lock_once(&self, holder: &LockHolder, force: bool) -> Result<Acquired, RecordError> {
        let value = serde_json::to_string(holder).expect("a holder serialises");
        if self.create(&self.lock_name(), &value).await? {
            return Ok(Acquired { displaced: None });
        }
        let Some(stored) = self.read_lock().await? else {
            // Released between our two calls: try once more.
            return if self.create(&self.lock_name(), &value).await? {
                Ok(Acquired { displaced: None })
            } else {
                Err(self.locked(self.lock_holder().await?.unwrap_or_else(unreadable)))
            };
        };
        let state = stored.state();
        let stale = state.staleness();
        let LockState {
            holder: current,
            last_write,
            now,
        } = state;
        match (force, stale) {
            (true, Some(why)) => {
                self.delete_lock_if_unchanged(&stored.text).await?;
                if self.create(&self.lock_name(), &value).await? {
                    Ok(Acquired {
                        displaced: Some((current, why)),
                    })
                } else {
                    Err(self.locked(self.lock_holder().await?.unwrap_or_else(unreadable)))
                }
            }
            (true, None) => Err(RecordError::LockedLive {
                stage: self.stage.clone(),
                renewed_secs_ago: now.saturating_sub(last_write),
                holder: Box::new(current),
            }),
            (false, stale) => Err(RecordError::Locked {
                stage: self.stage.clone(),
                holder: Box::new(current),
                stale,
            }),
        }
    }

    /// Joins the lock for `holder`'s batch: takes it if it is free, shares it if another node
    /// of the same batch holds it (renewing it), takes over another batch's lock that nobody
    /// renewed for [`BATCH_LOCK_TTL`], and otherwise says who holds it, like [`lock`](Self::lock). A
    /// stale lock of a plain run is not taken over here.
    pub async fn join(&self, holder: &LockHolder) -> Result<Joined, RecordError> {
        let joined = self.join_once(holder).await;
        if joined.is_ok() {
            self.hold(Some(&holder.token));
        }
        joined
    }

    async fn join_once(&self, holder: &LockHolder) -> Result<Joined, RecordError> {
        assert!(holder.batch.is_some(), "join is for a batch's nodes");
        let value = serde_json::to_string(holder).expect("a holder serialises");
        for _ in 0..2 {
            if self.create(&self.lock_name(), &value).await? {
                return Ok(Joined::Took);
            }
            let Some(stored) = self.read_lock().await? else {
                // Released between our two calls: try once more.
                continue;
            };
            let state = stored.state();
            let current = &state.holder;
            if current.batch == holder.batch && current.token == holder.token {
                let joined = LockHolder {
                    since: current.since,
                    renewed: Some(now_secs()),
                    release: current.release.clone(),
                    ..holder.clone()
                };
                let value = serde_json::to_string(&joined).expect("a holder serialises");
                self.put_value(&self.lock_name(), &value).await?;
                return Ok(Joined::Joined {
                    since: current.since,
                    release: current.release.clone(),
                });
            }
            let stale = state.staleness();
            if let (Some(_), Some(why @ Stale::Expired { .. })) = (&current.batch, &stale) {
                self.delete_lock_if_unchanged(&stored.text).await?;
                if self.create(&self.lock_name(), &value).await? {
                    return Ok(Joined::TookOver {
                        from: Box::new(state.holder),
                        why: why.clone(),
                    });
                }
                continue;
            }
            return Err(RecordError::Locked {
                stage: self.stage.clone(),
                holder: Box::new(state.holder),
                stale,
            });
        }
        Err(self.locked(self.lock_holder().await?.unwrap_or_else(unreadable)))
    }

    /// [`join`](Self::join), and with `force` also taking over for the batch a stale lock of a
    /// plain run, which `join` leaves (`Joined::TookOver` names it). When a sibling node of the
    /// same batch took it over first, this node joins it.
    pub async fn join_forcing(
        &self,
        holder: &LockHolder,
        force: bool,
    ) -> Result<Joined, RecordError> {
        match self.join(holder).await {
            Err(RecordError::Locked { stale: Some(_), .. }) if force => {
                match self.lock(holder, true).await {
                    Ok(Acquired {
                        displaced: Some((from, why)),
                    }) => Ok(Joined::TookOver {
                        from: Box::new(from),
                        why,
                    }),
                    Ok(Acquired { displaced: None }) => Ok(Joined::Took),
                    // Taken meanwhile: by a sibling node (then this node joins it) or by
                    // another run (then `join` names it).
                    Err(RecordError::Locked { .. } | RecordError::LockedLive { .. }) => {
                        self.join(holder).await
                    }
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// When `holder`'s batch took the stage's lock (seconds since the epoch), which names the
    /// batch's release: for its last step, which writes that release and then releases the
    /// lock. An error when the lock is another's, or there is none.
    pub async fn batch_since(
        &self,
        holder: &LockHolder,
    ) -> Result<(u64, Option<String>), RecordError> {
        let batch = holder.batch.clone().expect("a batch's holder");
        match self.lock_holder().await? {
            Some(current) if current.token == holder.token => Ok((current.since, current.release)),
            Some(other) => Err(RecordError::OtherBatch {
                stage: self.stage.clone(),
                batch,
                holder: Box::new(other),
            }),
            None => Err(RecordError::BatchNotLocked {
                stage: self.stage.clone(),
                batch,
            }),
        }
    }

    /// Deletes the lock if it still holds `text`, the lock just read: a run that took it
    /// meanwhile keeps it.
    async fn delete_lock_if_unchanged(&self, text: &str) -> Result<(), RecordError> {
        if self.get_value(&self.lock_name()).await?.as_deref() == Some(text) {
            self.delete_parameter(&self.lock_name()).await?;
        }
        Ok(())
    }

    fn locked(&self, holder: LockHolder) -> RecordError {
        RecordError::Locked {
            stage: self.stage.clone(),
            holder: Box::new(holder),
            stale: None,
        }
    }

    /// Renews `holder`'s lock. An error says the lock is another run's now (or gone): the
    /// caller should start nothing new.
    pub async fn renew(&self, holder: &LockHolder) -> Result<(), RecordError> {
        self.own(self.lock_holder().await?, &holder.token)?;
        let renewed = LockHolder {
            renewed: Some(now_secs()),
            ..holder.clone()
        };
        let value = serde_json::to_string(&renewed).expect("a holder serialises");
        self.put_value(&self.lock_name(), &value).await?;
        let node = self.node.lock().expect("node mark").clone();
        match node {
            Some(service) => self.put_node(&service, holder).await,
            None => Ok(()),
        }
    }

    /// Renews `holder`'s lock every [`RENEW_EVERY`] for as long as it is polled; returns only
    /// when the lock is lost (taken over, deleted). When renewing has failed for longer than
    /// half of [`LOCK_TTL`] (others may soon see the lock as stale), `failing` is told once per
    /// such spell, so the caller can start nothing new; renewing goes on all the same, since
    /// what is already running still needs the lock.
    pub async fn keep(
        &self,
        holder: &LockHolder,
        failing: &(dyn Fn(&RecordError) + Sync),
    ) -> RecordError {
        self.keep_every(holder, failing, RENEW_EVERY).await
    }

    /// [`keep`](Self::keep), renewing every `every` (tests renew faster).
    pub async fn keep_every(
        &self,
        holder: &LockHolder,
        failing: &(dyn Fn(&RecordError) + Sync),
        every: Duration,
    ) -> RecordError {
        let mut failing_since: Option<tokio::time::Instant> = None;
        let mut told = false;
        loop {
            tokio::time::sleep(every).await;
            match self.renew(holder).await {
                Ok(()) => {
                    failing_since = None;
                    told = false;
                }
                Err(e @ RecordError::LockLost { .. }) => return e,
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() > LOCK_TTL / 2 && !told {
                        told = true;
                        failing(&e);
                    }
                }
            }
        }
    }

    pub(crate) fn node_name(&self, service: &str) -> String {
        format!("{}nodes/{service}", self.path)
    }

    /// Marks `service`'s batch node as at work (`<path>nodes/<service>`, holding `holder`): written
    /// as the node starts, renewed with the lock ([`renew`](Self::renew)), deleted as it ends
    /// ([`unmark_node`](Self::unmark_node)), so that `batch finish` can tell a node still
    /// working, which it waits for, from one killed, whose mark goes stale as a plain run's
    /// lock does ([`running_nodes`](Self::running_nodes)). One parameter per node, as siblings
    /// run at once and SSM has no compare-and-swap.
    pub async fn mark_node(&self, service: &str, holder: &LockHolder) -> Result<(), RecordError> {
        *self.node.lock().expect("node mark") = Some(service.to_string());
        self.put_node(service, holder).await
    }

    async fn put_node(&self, service: &str, holder: &LockHolder) -> Result<(), RecordError> {
        let marked = LockHolder {
            renewed: Some(now_secs()),
            ..holder.clone()
        };
        let value = serde_json::to_string(&marked).expect("a holder serialises");
        self.put_value(&self.node_name(service), &value).await
    }

    /// Deletes `service`'s node mark (absent is fine); renewals no longer write it.
    pub async fn unmark_node(&self, service: &str) -> Result<(), RecordError> {
        {
            let mut node = self.node.lock().expect("node mark");
            if node.as_deref() == Some(service) {
                *node = None;
            }
        }
        self.delete_parameter(&self.node_name(service)).await
    }

    /// The nodes of `holder`'s batch marked as at work ([`mark_node`](Self::mark_node)), by
    /// service, each with its age by SSM's clock and whether it is stale: not renewed for
    /// [`LOCK_TTL`], or its process gone from this host (a node killed, or its machine lost,
    /// never deletes its mark). Marks of other batches are passed over.
    pub async fn running_nodes(
        &self,
        holder: &LockHolder,
    ) -> Result<Vec<RunningNode>, RecordError> {
        self.nodes_of(holder, true).await
    }

    /// [`running_nodes`](Self::running_nodes), read only: another batch's marks are passed over,
    /// not deleted (for a node that does not hold the lock yet, while another batch may take
    /// it).
    pub async fn batch_nodes(&self, holder: &LockHolder) -> Result<Vec<RunningNode>, RecordError> {
        self.nodes_of(holder, false).await
    }

    async fn nodes_of(
        &self,
        holder: &LockHolder,
        clear_others: bool,
    ) -> Result<Vec<RunningNode>, RecordError> {
        let date = ServerDate::default();
        let mut found: Vec<(String, String, Option<u64>)> = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .get_parameters_by_path()
                .path(format!("{}nodes/", self.path))
                .recursive(false)
                .set_next_token(next.take())
                .customize()
                .interceptor(date.clone())
                .send()
                .await
                .map_err(|e| self.aws("GetParametersByPath", &e))?;
            found.extend(page.parameters().iter().map(|p| {
                let written = p
                    .last_modified_date()
                    .and_then(|d| u64::try_from(d.secs()).ok());
                let name = p.name().unwrap_or_default();
                let service = name.rsplit('/').next().unwrap_or_default().to_string();
                (service, p.value().unwrap_or_default().to_string(), written)
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        let mut out = Vec::new();
        let now = date.get().unwrap_or_else(now_secs);
        let here = Here::this_host();
        for (service, text, written) in found {
            let node = serde_json::from_str::<LockHolder>(&text).ok();
            let last = node
                .as_ref()
                .map_or(written.unwrap_or(now), |n| last_write(n, written));
            match node {
                Some(node) if node.token == holder.token => out.push(RunningNode {
                    stale: node_staleness(&node, last, now, &here),
                    renewed_secs_ago: now.saturating_sub(last),
                    service,
                    holder: node,
                }),
                // Another batch's (or unreadable): no node of it works while this batch holds
                // the lock, so it is a killed node's, left behind. Cleared.
                _ if clear_others => {
                    let _ = self.delete_parameter(&self.node_name(&service)).await;
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The services of `holder`'s batch whose nodes are at work ([`running_nodes`](Self::running_nodes)
    /// that are not stale).
    pub async fn live_nodes(&self, holder: &LockHolder) -> Result<Vec<String>, RecordError> {
        Ok(self
            .running_nodes(holder)
            .await?
            .into_iter()
            .filter(|n| n.stale.is_none())
            .map(|n| n.service)
            .collect())
    }

    /// After `holder`'s batch released the lock: the nodes of the batch that joined it as it was
    /// released (by service), else `Some` empty when the lock is the batch's again. A join reads
    /// the lock, then writes it (SSM has no compare-and-swap), so one read just before the
    /// release and written just after brings the lock back; such a node marked itself before its
    /// read ([`mark_node`](Self::mark_node)), so its mark shows while it works, and once it
    /// ended, the lock it wrote. The marks are read first: a node whose write comes after this
    /// reads the lock still marks itself before.
    pub async fn rejoined_after_release(
        &self,
        holder: &LockHolder,
    ) -> Result<Option<Vec<String>>, RecordError> {
        let nodes = self.live_nodes(holder).await?;
        if !nodes.is_empty() {
            return Ok(Some(nodes));
        }
        let back = self
            .lock_holder()
            .await?
            .is_some_and(|h| h.batch == holder.batch && h.token == holder.token);
        Ok(back.then(Vec::new))
    }

    /// Waits, for at most `wait`, until no node of `holder`'s batch is at work: a `batch finish`
    /// run while a node works would release the lock under it and write a release without its
    /// deploy. Looks every `poll`; `waiting` is told of the nodes still at work each time. A
    /// stale mark (a node killed, or its machine lost) is deleted and returned, so that the
    /// caller can say that node's work may be half done. Still at work after `wait`:
    /// [`RecordError::NodesRunning`].
    pub async fn wait_for_nodes(
        &self,
        holder: &LockHolder,
        wait: Duration,
        poll: Duration,
        waiting: &(dyn Fn(&[RunningNode]) + Sync),
    ) -> Result<Vec<RunningNode>, RecordError> {
        let start = tokio::time::Instant::now();
        let mut gone = Vec::new();
        loop {
            let (stale, live): (Vec<_>, Vec<_>) = self
                .running_nodes(holder)
                .await?
                .into_iter()
                .partition(|n| n.stale.is_some());
            for node in stale {
                self.delete_parameter(&self.node_name(&node.service))
                    .await?;
                gone.push(node);
            }
            if live.is_empty() {
                return Ok(gone);
            }
            let waited = start.elapsed();
            if waited >= wait {
                return Err(RecordError::NodesRunning {
                    stage: self.stage.clone(),
                    batch: holder.batch.clone().unwrap_or_default(),
                    nodes: live
                        .iter()
                        .map(|n| format!("`{}` ({})", n.service, n.process()))
                        .collect(),
                    waited_secs: waited.as_secs(),
                });
            }
            waiting(&live);
            tokio::time::sleep(poll.min(wait - waited)).await;
        }
    }

    /// The other run that holds the stage's lock and keeps it alive, if one does (one
    /// GetParameter): not when the lock is free, `holder`'s own (its batch's) or stale.
    pub async fn held_by_other(
        &self,
        holder: &LockHolder,
    ) -> Result<Option<LockHolder>, RecordError> {
        Ok(self.lock_state().await?.and_then(|state| {
            let ours = state.holder.token == holder.token && state.holder.batch == holder.batch;
            (!ours && state.staleness().is_none()).then_some(state.holder)
        }))
    }

    /// Waits, for at most `patience`, while another run holds the stage's lock and keeps it
    /// alive, so that a run that would be refused now goes once that run ends (two branches
    /// that deploy one stage, pushed a minute apart). Writes nothing: returns as soon as the
    /// lock is free, `holder`'s own (its batch's) or stale (whether a stale lock is taken over
    /// stays the caller's to say), and after `patience` also with the lock still held, when
    /// the caller's own attempt names the holder. Looks after `poll`, then twice as long each
    /// time up to six times `poll` (one GetParameter each: many waiters must not throttle the
    /// holder's own reads), telling `waiting` who holds the lock and for how long this has
    /// waited. Returns the other run that still holds the lock, if one does.
    pub async fn wait_while_held(
        &self,
        holder: &LockHolder,
        patience: Duration,
        poll: Duration,
        waiting: &mut (dyn FnMut(&LockHolder, Duration) + Send),
    ) -> Result<Option<LockHolder>, RecordError> {
        let start = tokio::time::Instant::now();
        let mut every = poll;
        loop {
            let Some(other) = self.held_by_other(holder).await? else {
                return Ok(None);
            };
            let waited = start.elapsed();
            if waited >= patience {
                return Ok(Some(other));
            }
            waiting(&other, waited);
            // Varied by up to a fifth either way, so that waiters started together (a wave's
            // nodes) do not all look at once.
            let share = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish() as f64
                / u64::MAX as f64;
            let pause = every.mul_f64(0.8 + 0.4 * share);
            tokio::time::sleep(pause.min(patience - waited)).await;
            every = (every * 2).min(poll * 6);
        }
    }

    /// Releases `holder`'s lock: only if it is still its own.
    pub async fn unlock(&self, holder: &LockHolder) -> Result<Released, RecordError> {
        self.hold(None);
        match self.lock_holder().await? {
            None => Ok(Released::Gone),
            Some(c) if c.token == holder.token => {
                self.delete_parameter(&self.lock_name()).await?;
                Ok(Released::Released)
            }
            Some(c) => Ok(Released::NotOurs(Box::new(c))),
        }
    }
}

/// When a lock was last written: by SSM's clock (`written`, its `LastModifiedDate`) when SSM
/// says (it always does; the emulator too), else by the holder's own clock (its renewal, or
/// when it took the lock).
pub fn last_write(holder: &LockHolder, written: Option<u64>) -> u64 {
    written.unwrap_or_else(|| holder.renewed.unwrap_or(holder.since))
}

fn parse_holder(text: &str) -> LockHolder {
    serde_json::from_str(text).unwrap_or_else(|e| LockHolder {
        who: format!("an unreadable lock ({e})"),
        ..unreadable()
    })
}

fn unreadable() -> LockHolder {
    LockHolder {
        who: "an unreadable lock".into(),
        host: "?".into(),
        build: None,
        pid: 0,
        since: 0,
        command: None,
        stage: None,
        token: String::new(),
        renewed: None,
        boot: None,
        started: None,
        pid_ns: None,
        batch: None,
        release: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(host: &str, pid: u32, since: u64) -> LockHolder {
        LockHolder {
            host: host.into(),
            pid,
            since,
            boot: Some("b1".into()),
            pid_ns: Some("pid:[1]".into()),
            ..unreadable()
        }
    }

    #[test]
    fn every_row_of_the_staleness_rule() {
        let now = 10_000;
        let alive = |pid: u32, _: Option<u64>| pid == 1;
        let here = Here {
            host: "me".into(),
            boot: Some("b1".into()),
            booted_at: Some(now - 100),
            pid_ns: Some("pid:[1]".into()),
            alive: &alive,
        };
        // By the holder's own clock (what SSM's is, when SSM does not say).
        let st = |h: &LockHolder| staleness(h, last_write(h, None), now, &here);
        // Live on this host.
        assert_eq!(st(&holder("me", 1, now - 10)), None);
        // Dead process on this host.
        assert_eq!(
            st(&holder("me", 2, now - 10)),
            Some(Stale::DeadProcess { pid: 2 })
        );
        // This host restarted since: the lock was written, on another boot, before this one.
        let mut h = holder("me", 1, now - 200);
        h.boot = Some("b0".into());
        assert_eq!(st(&h), Some(Stale::Rebooted));
        // Another machine of the same name (made from one image), on a boot of its own, whose
        // lock was written since this host booted: proves nothing; a live run keeps its lock.
        let mut other = holder("me", 1, now - 10);
        other.boot = Some("b0".into());
        assert_eq!(st(&other), None);
        // Without namespaces or boot ids (macOS), the host and pid tell, as they always did.
        let bare = Here {
            host: "me".into(),
            boot: None,
            booted_at: None,
            pid_ns: None,
            alive: &alive,
        };
        let mac = LockHolder {
            boot: None,
            pid_ns: None,
            ..holder("me", 2, now - 10)
        };
        assert_eq!(
            staleness(&mac, last_write(&mac, None), now, &bare),
            Some(Stale::DeadProcess { pid: 2 })
        );
        // A container on this host's network (its name and boot, a pid namespace of its own,
        // or one not known): its pid is not this namespace's.
        for pid_ns in [Some("pid:[2]".to_string()), None] {
            let container = LockHolder {
                pid_ns,
                ..holder("me", 2, now - 10)
            };
            assert_eq!(st(&container), None);
        }
        // Another host: only the TTL tells, from the last renewal.
        assert_eq!(st(&holder("ci", 2, now - 60)), None);
        assert_eq!(
            st(&holder("ci", 2, now - 301)),
            Some(Stale::Expired {
                idle_secs: 301,
                ttl_secs: 300
            })
        );
        let mut renewed = holder("ci", 2, now - 3600);
        renewed.renewed = Some(now - 30);
        assert_eq!(st(&renewed), None);
        // The last write is SSM's when SSM says: a holder's clock an hour behind or ahead
        // changes nothing.
        assert_eq!(last_write(&renewed, None), now - 30);
        assert_eq!(last_write(&holder("ci", 2, now - 3600), None), now - 3600);
        assert_eq!(last_write(&renewed, Some(now - 400)), now - 400);
        assert_eq!(
            staleness(&renewed, now - 400, now, &here),
            Some(Stale::Expired {
                idle_secs: 400,
                ttl_secs: 300
            })
        );
        let behind = holder("ci", 2, now - 3600);
        assert_eq!(staleness(&behind, now - 5, now, &here), None);
        // An unreadable lock (it names no time) is as old as SSM says: live for the TTL after
        // its write, then stale.
        let garbage = parse_holder("{not json");
        assert!(
            garbage.to_string().starts_with("an unreadable lock (")
                && garbage.to_string().ends_with(
                    "holds no holder Ferry writes; delete it if no run holds the stage)"
                )
                && !garbage.to_string().contains("1970"),
            "{garbage}"
        );
        assert_eq!(
            staleness(&garbage, last_write(&garbage, Some(now - 10)), now, &here),
            None
        );
        // Whoever may write the lock parameter wrote its holder: shown on one line, steering
        // no terminal (before, `error: FORGED` stood on a line of its own).
        let mut forged = holder("ci", 2, now);
        forged.who = "w\u{1b}]0;pwned\u{7}\nerror: FORGED".into();
        forged.host = "h\r".into();
        forged.command = Some("deploy\u{202e}".into());
        let shown = forged.to_string();
        assert!(
            shown.starts_with(
                "w\\u{1b}]0;pwned\\u{7} error: FORGED on h  (pid 2, `deploy\\u{202e}`)"
            ),
            "{shown}"
        );
        assert!(matches!(
            staleness(&garbage, last_write(&garbage, Some(now - 400)), now, &here),
            Some(Stale::Expired { .. })
        ));
        // Even a live process on this host that stopped renewing is stale past the TTL.
        assert_eq!(
            st(&holder("me", 1, now - 1000)),
            Some(Stale::Expired {
                idle_secs: 1000,
                ttl_secs: 300
            })
        );
        // A batch's lock outlives the node that took it: only its age counts.
        let batch = LockHolder {
            batch: Some("run-1".into()),
            ..holder("me", 99, now - 10)
        };
        assert_eq!(st(&batch), None);
        // Between waves nobody renews it: stale only after the batch TTL.
        let waiting = LockHolder {
            batch: Some("run-1".into()),
            ..holder("me", 99, now - 1000)
        };
        assert_eq!(st(&waiting), None);
        let old = LockHolder {
            batch: Some("run-1".into()),
            ..holder("me", 99, now - 3700)
        };
        assert_eq!(
            st(&old),
            Some(Stale::Expired {
                idle_secs: 3700,
                ttl_secs: 3600
            })
        );
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = std::process::id();
        let start = process::started(me);
        assert!(process::alive(me, start));
        if let Some(s) = start {
            assert!(!process::alive(me, Some(s + 1)), "another start time");
        }
        assert!(!process::alive(u32::MAX / 2, None));
    }

    #[test]
    fn a_killed_process_not_yet_reaped_is_not_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = process::started(pid);
        assert!(process::alive(pid, start));
        child.kill().unwrap();
        // Not waited for: a zombie until reaped, which a signal test still finds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process::alive(pid, start) {
            assert!(std::time::Instant::now() < deadline, "still alive");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.wait().unwrap();
    }

    #[test]
    fn the_holder_is_named_without_user() {
        let none = |_: &str| None;
        let h = LockHolder::for_this_process(&none, "deploy", "dev", None);
        assert!(!h.who.is_empty() && h.who != "unknown", "{}", h.who);
        let ci = |k: &str| (k == "GITHUB_ACTOR").then(|| "octocat".to_string());
        assert_eq!(
            LockHolder::for_this_process(&ci, "deploy", "dev", None).who,
            "octocat"
        );
        let a = LockHolder::for_this_process(&none, "deploy", "dev", None);
        assert_ne!(a.token, h.token);
    }
}
