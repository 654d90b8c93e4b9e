//! What `vc-host` prints, read in one place. Each subcommand answers in lines of
//! `word value`; this module turns them into types, and is tested on recorded outputs.

use crate::health::Status;
use crate::release::Receipt;

/// systemd's `ActiveState` of a unit (also what `systemctl is-active` prints).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Activity {
    Active,
    Activating,
    Deactivating,
    Failed,
    #[default]
    Inactive,
    /// Anything else systemd may say (`reloading`, `maintenance`, ...), kept for display.
    Other(String),
}

impl Activity {
    pub fn parse(word: &str) -> Activity {
        match word.trim() {
            "active" => Activity::Active,
            "activating" => Activity::Activating,
            "deactivating" => Activity::Deactivating,
            "failed" => Activity::Failed,
            "inactive" | "" => Activity::Inactive,
            other => Activity::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Activity::Active => "active",
            Activity::Activating => "activating",
            Activity::Deactivating => "deactivating",
            Activity::Failed => "failed",
            Activity::Inactive => "inactive",
            Activity::Other(s) => s,
        }
    }
}

/// What is installed on a host (`vc-host state`).
#[derive(Debug, Default)]
pub struct State {
    /// In `releases/`, oldest first.
    pub releases: Vec<Receipt>,
    /// Set aside in `failed/`, oldest first.
    pub failed: Vec<Receipt>,
    pub current: Option<String>,
    /// The serving unit.
    pub active: Activity,
    /// A release under check: left by a deploy that was killed, when no deploy runs.
    pub candidate: Option<String>,
    /// `uname -m` of the host.
    pub arch: String,
    /// Receipts that could not be read, as warnings.
    pub unreadable: Vec<String>,
}

pub fn state(text: &str) -> State {
    let mut state = State::default();
    for line in text.lines() {
        let (word, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = value.trim();
        match word {
            "receipt" | "failed" => match serde_json::from_str::<Receipt>(value) {
                Ok(r) if word == "receipt" => state.releases.push(r),
                Ok(r) => state.failed.push(r),
                Err(e) => state.unreadable.push(format!("unreadable release receipt: {e}")),
            },
            "current" => state.current = Some(value.to_string()).filter(|c| !c.is_empty()),
            "candidate" => state.candidate = Some(value.to_string()).filter(|c| !c.is_empty()),
            "active" => state.active = Activity::parse(value),
            "arch" => state.arch = value.to_string(),
            _ => {}
        }
    }
    state.releases.sort_by(|a, b| a.name.cmp(&b.name));
    state.failed.sort_by(|a, b| a.name.cmp(&b.name));
    state
}

/// How the service answered curl on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Http(u16),
    /// curl exit 7: nothing listens on the port.
    Refused,
    /// curl exit 28: no answer within its 2 s.
    TimedOut,
    /// Any other curl failure, by its exit code.
    Failed(i32),
}

/// One look at a unit from the host itself (`vc-host probe`).
#[derive(Debug, Clone)]
pub struct Probe {
    pub reply: Reply,
    pub status: Option<Status>,
    pub active: Activity,
    pub sub_state: String,
    pub restarts: u32,
    pub exit_status: i32,
    pub socket: Activity,
    /// The unit's main process, when it runs.
    pub main_pid: Option<u32>,
}

pub fn probe(text: &str) -> Probe {
    let (mut curl, mut http, mut status) = (-1, None, None);
    let mut p = Probe {
        reply: Reply::Failed(-1),
        status: None,
        active: Activity::Inactive,
        sub_state: String::new(),
        restarts: 0,
        exit_status: 0,
        socket: Activity::Inactive,
        main_pid: None,
    };
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("curl ") {
            curl = v.trim().parse().unwrap_or(-1);
        } else if let Some(v) = line.strip_prefix("http ") {
            http = v.trim().parse::<u16>().ok().filter(|c| *c != 0);
        } else if let Some(v) = line.strip_prefix("body ") {
            status = serde_json::from_str(v).ok();
        } else if let Some((k, v)) = line.split_once('=') {
            match k {
                "ActiveState" => p.active = Activity::parse(v),
                "SubState" => p.sub_state = v.into(),
                "NRestarts" => p.restarts = v.parse().unwrap_or(0),
                "ExecMainStatus" => p.exit_status = v.parse().unwrap_or(0),
                "MainPID" => p.main_pid = v.parse().ok().filter(|pid| *pid != 0),
                "SocketState" => p.socket = Activity::parse(v),
                _ => {}
            }
        }
    }
    p.reply = match (curl, http) {
        (0, Some(code)) => Reply::Http(code),
        (7, _) => Reply::Refused,
        (28, _) => Reply::TimedOut,
        (c, _) => Reply::Failed(c),
    };
    p.status = status;
    p
}

impl Probe {
    /// The unit is not running and will not be, or keeps being restarted.
    pub fn exited(&self, restarts_before: u32) -> bool {
        self.active == Activity::Failed || self.sub_state == "auto-restart" || self.restarts > restarts_before
    }

    pub fn healthy(&self) -> Option<&Status> {
        match (&self.reply, &self.status) {
            (Reply::Http(code), Some(s)) if crate::health::is_healthy(*code, s) => Some(s),
            _ => None,
        }
    }

    /// How the service looks from the host, in a few words.
    pub fn describe(&self) -> String {
        let reply = match &self.reply {
            Reply::Http(code) => format!("HTTP {code}"),
            Reply::Refused => "connection refused".into(),
            Reply::TimedOut => "no answer within 2 s".into(),
            Reply::Failed(c) => format!("curl exit {c}"),
        };
        format!(
            "{reply}; unit {}/{} (restarts {}), socket {}",
            self.active.as_str(),
            self.sub_state,
            self.restarts,
            self.socket.as_str()
        )
    }
}

/// A line of `vc-host lock`.
#[derive(Debug, PartialEq, Eq)]
pub enum LockLine<'a> {
    /// Taken: held until our stdin closes.
    Locked,
    /// Held by another deploy (its holder's JSON); we wait.
    Waiting(&'a str),
    /// Still held at the time-out.
    Busy(&'a str),
    Other,
}

pub fn lock_line(line: &str) -> LockLine<'_> {
    if line == "LOCKED" {
        return LockLine::Locked;
    }
    match line.split_once(' ') {
        Some(("WAITING", h)) => LockLine::Waiting(h),
        Some(("BUSY", h)) => LockLine::Busy(h),
        _ => LockLine::Other,
    }
}

/// The `since <epoch>` line vc-host prints when it starts a unit: the host's clock, for the
/// journal lines of that start only.
pub fn since(out: &str) -> i64 {
    out.lines().find_map(|l| l.strip_prefix("since ")).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// `vc-host put` says `changed` or `unchanged`.
pub fn changed(out: &str) -> bool {
    out.trim() == "changed"
}

/// The holder JSON of a lock, in words: `who since when, from where`.
pub fn describe_holder(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    let from = s("from");
    let from = if from == "laptop" || from == "?" { String::new() } else { format!(", {from}") };
    format!("{} since {}{from}", s("by"), s("since"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::Verdict;

    #[test]
    fn a_probe_of_a_healthy_unit() {
        let p = probe(
            "curl 0\nbody {\"status\":\"ok\",\"version\":\"0.1.0\",\"git_sha\":\"abc\",\"database\":\"ok\",\"uptime_s\":3}\nhttp 200\nActiveState=active\nSubState=running\nResult=success\nNRestarts=0\nExecMainStatus=0\nMainPID=4242\nSocketState=active\n",
        );
        assert_eq!(p.reply, Reply::Http(200));
        assert_eq!(p.main_pid, Some(4242));
        assert_eq!(p.healthy().map(|s| s.version.as_str()), Some("0.1.0"));
        assert!(!p.exited(0));
        assert_eq!(p.describe(), "HTTP 200; unit active/running (restarts 0), socket active");
    }

    #[test]
    fn a_probe_of_a_crash_loop() {
        let p =
            probe("curl 7\nhttp 000\nActiveState=activating\nSubState=auto-restart\nNRestarts=2\nExecMainStatus=1\n");
        assert_eq!(p.reply, Reply::Refused);
        assert!(p.exited(0));
        assert_eq!(p.describe(), "connection refused; unit activating/auto-restart (restarts 2), socket inactive");
        let p = probe("curl 28\nhttp 000\nActiveState=failed\nSubState=failed\n");
        assert_eq!((p.reply.clone(), p.exited(5)), (Reply::TimedOut, true));
    }

    #[test]
    fn a_state_with_releases_failed_ones_and_a_left_candidate() {
        let r = |name: &str, verdict: &str| {
            format!(
                r#"{{"name":"{name}","sha256":"s","version":"1","git_sha":"g","installed_at":"t","source":"x","verdict":"{verdict}"}}"#
            )
        };
        let text = format!(
            "receipt {}\nreceipt {}\nfailed {}\nreceipt {{broken\ncurrent 02\ncandidate 03\nactive activating\nenv present\narch x86_64\n",
            r("02", "healthy"),
            r("01", "healthy"),
            r("03", "failed")
        );
        let s = state(&text);
        let names: Vec<&str> = s.releases.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["01", "02"], "oldest first");
        assert_eq!(s.failed[0].verdict, Verdict::Failed);
        assert_eq!((s.current.as_deref(), s.candidate.as_deref()), (Some("02"), Some("03")));
        assert_eq!((s.active, s.arch.as_str()), (Activity::Activating, "x86_64"));
        assert_eq!(s.unreadable.len(), 1);
        let empty = state("current \ncandidate \nactive inactive\narch aarch64\n");
        assert_eq!((empty.current, empty.candidate, empty.active), (None, None, Activity::Inactive));
    }

    #[test]
    fn lock_lines_and_holders() {
        assert_eq!(lock_line("LOCKED"), LockLine::Locked);
        let h =
            r#"{"by":"octocat (GitHub Actions on runner)","from":"https://ci/runs/1","since":"2026-11-30T10:00:00Z"}"#;
        assert_eq!(lock_line(&format!("WAITING {h}")), LockLine::Waiting(h));
        assert_eq!(lock_line("BUSY {}"), LockLine::Busy("{}"));
        assert_eq!(lock_line("vc-host: something"), LockLine::Other);
        assert_eq!(
            describe_holder(h),
            "octocat (GitHub Actions on runner) since 2026-11-30T10:00:00Z, https://ci/runs/1"
        );
        assert_eq!(describe_holder("{}"), "? since ?");
        assert_eq!(since("Created symlink\nsince 1764496800\n"), 1764496800);
        assert!(changed("changed\n") && !changed("unchanged\n"));
    }
}
