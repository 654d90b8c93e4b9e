//! One `Printer` owns what the user sees: data on stdout, everything else on stderr;
//! spinners with elapsed time on a terminal, plain log lines in CI, under `NO_COLOR`, or
//! when stderr is redirected; nothing but the JSON result on stdout with `--json`.
//!
//! Nothing here fails or panics when stdout or stderr is gone (a closed pipe, `| head`):
//! output is for people and scripts, the work is what matters, and a deploy or rollback
//! must finish whoever stopped reading. All of vcctl prints through `say` and `say_out`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `-v` was given: for the few messages built far from any `Printer`.
pub fn is_verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
}

/// A line on stderr; a write error (EPIPE) is ignored.
pub fn say(line: impl AsRef<str>) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", line.as_ref());
}

/// Text on stdout as it is (no newline added); a write error (EPIPE) is not an error, but
/// the answer is false: nobody reads any more.
pub fn say_out(text: impl AsRef<[u8]>) -> bool {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_ref()).and_then(|()| stdout.flush()).is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

#[derive(Debug, Clone)]
pub struct Printer {
    pub json: bool,
    verbosity: Verbosity,
    fancy: bool,
    /// Whether a result went to stdout: a failure then prints no second JSON document.
    printed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// `[host] ` before each line on stderr, for work on several hosts at once
    /// ([`Printer::for_host`]); no spinners then, as they would draw over each other.
    prefix: Option<std::sync::Arc<str>>,
}

impl Printer {
    /// Appends `md` to the GitHub step summary, when GitHub Actions runs this
    /// (`GITHUB_STEP_SUMMARY`); a summary that cannot be written is a warning, not a failure.
    pub fn step_summary(&self, md: &str) {
        let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else { return };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(md.as_bytes()));
        if let Err(e) = written {
            self.warn(format!("could not write the GitHub step summary: {e}"));
        }
    }

    pub fn new(json: bool, verbosity: Verbosity) -> Printer {
        let fancy = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none()
            && std::env::var("TERM").map_or(true, |t| t != "dumb")
            && verbosity != Verbosity::Quiet;
        VERBOSE.store(verbosity == Verbosity::Verbose, std::sync::atomic::Ordering::Relaxed);
        Printer { json, verbosity, fancy, printed: Default::default(), prefix: None }
    }

    pub fn is_fancy(&self) -> bool {
        self.fancy
    }

    /// This printer for work on `host` beside work on others: each line on stderr says
    /// which host it is about, and steps print start and end lines instead of spinning.
    pub fn for_host(&self, host: &str) -> Printer {
        Printer { prefix: Some(format!("[{host}] ").into()), ..self.clone() }
    }

    fn tagged(&self, msg: &str) -> String {
        match &self.prefix {
            Some(prefix) => msg.lines().map(|l| format!("{prefix}{l}")).collect::<Vec<_>>().join("\n"),
            None => msg.to_string(),
        }
    }

    /// Progress and results for people, on stderr.
    pub fn info(&self, msg: impl AsRef<str>) {
        if self.verbosity != Verbosity::Quiet {
            say(self.tagged(msg.as_ref()));
        }
    }

    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.verbosity == Verbosity::Verbose {
            say(self.tagged(&format!("  {}", msg.as_ref())));
        }
    }

    pub fn warn(&self, msg: impl AsRef<str>) {
        let prefix =
            if self.fancy { console::style("warning:").yellow().bold().to_string() } else { "warning:".into() };
        say(self.tagged(&format!("{prefix} {}", msg.as_ref())));
    }

    /// Data, on stdout: the result of a command a script may read. Suppressed under `--json`,
    /// where `json` prints the result instead; `-q` hides progress, never results.
    pub fn out(&self, text: impl AsRef<str>) {
        if !self.json {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", text.as_ref());
        }
    }

    pub fn json(&self, value: &serde_json::Value) {
        if self.json {
            self.printed.store(true, std::sync::atomic::Ordering::Relaxed);
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", serde_json::to_string_pretty(value).expect("JSON values serialise"));
        }
    }

    /// Under `--json`, one object on a line of its own (NDJSON: a stream such as `logs -f`).
    pub fn json_line(&self, value: &serde_json::Value) {
        if self.json {
            self.printed.store(true, std::sync::atomic::Ordering::Relaxed);
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{value}");
        }
    }

    /// Under `--json`, a failure as a JSON object on stdout, unless a result was printed
    /// there already (a deploy's report says how it failed): scripts parse one thing.
    pub fn json_error(&self, error: &str, exit_code: u8, hint: Option<&str>) {
        if self.json && !self.printed.load(std::sync::atomic::Ordering::Relaxed) {
            self.json(&serde_json::json!({"error": error, "exit_code": exit_code, "hint": hint}));
        }
    }

    /// A step that can take more than a second: a spinner with elapsed time on a terminal,
    /// a start line and an end line otherwise.
    pub fn step(&self, msg: impl Into<String>) -> Step {
        let msg = self.tagged(&msg.into());
        let bar = if self.fancy && self.prefix.is_none() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}").expect("valid template"),
            );
            bar.set_message(msg.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            if self.verbosity != Verbosity::Quiet {
                say(format!("{msg}..."));
            }
            None
        };
        Step { msg, bar, started: Instant::now(), printer: self.clone(), finished: false }
    }

    /// Runs `work` as a step that says what it does and how it ended.
    pub async fn doing<T>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let step = self.step(what.to_string());
        let done = work.await;
        match &done {
            Ok(_) => step.done(""),
            Err(_) => step.fail(""),
        }
        done
    }

    /// A progress bar of `len` units, hidden unless on a terminal.
    pub fn bar(&self, len: u64, template: &str) -> ProgressBar {
        if !self.fancy || self.prefix.is_some() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
        bar
    }
}

pub struct Step {
    msg: String,
    bar: Option<ProgressBar>,
    started: Instant,
    printer: Printer,
    finished: bool,
}

impl Step {
    /// A detail learned during the step (shown with `-v`).
    pub fn note(&self, detail: impl AsRef<str>) {
        self.printer.detail(detail);
    }

    /// Ends the step: `✓ msg: outcome (1.2s)`.
    pub fn done(mut self, outcome: impl AsRef<str>) {
        self.finish(true, outcome.as_ref());
    }

    pub fn fail(mut self, outcome: impl AsRef<str>) {
        self.finish(false, outcome.as_ref());
    }

    fn finish(&mut self, ok: bool, outcome: &str) {
        self.finished = true;
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let elapsed = format_duration(self.started.elapsed());
        let mark = match (ok, self.printer.fancy) {
            (true, true) => console::style("✓").green().to_string(),
            (false, true) => console::style("✗").red().to_string(),
            (true, false) => "ok:".to_string(),
            (false, false) => "failed:".to_string(),
        };
        let sep = if outcome.is_empty() { String::new() } else { format!(": {outcome}") };
        if self.printer.verbosity != Verbosity::Quiet || !ok {
            say(format!("{mark} {}{sep} ({elapsed})", self.msg));
        }
    }
}

impl Drop for Step {
    /// A step dropped unfinished was cut short: by a signal, or by an error that the caller
    /// reports next (`error: …`), which says why better than a word here could.
    fn drop(&mut self) {
        if !self.finished {
            self.finish(false, if crate::signals::received() { "interrupted" } else { "" });
        }
    }
}

/// The last `n` lines of `text`, in order.
pub fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printer_for_a_host_tags_every_line_it_says() {
        let p = Printer::new(false, Verbosity::Normal);
        assert_eq!(p.tagged("one\ntwo"), "one\ntwo");
        let h = p.for_host("10.0.0.11");
        assert_eq!(h.tagged("\nchecking\nok"), "[10.0.0.11] \n[10.0.0.11] checking\n[10.0.0.11] ok");
        assert!(h.bar(10, "{bar}").is_hidden(), "bars of hosts side by side would draw over each other");
    }
}
