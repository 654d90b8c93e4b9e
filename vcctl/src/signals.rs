//! SIGINT and SIGTERM, the same way for every command: exit 130 with a word of what was
//! stopped. Work that must tidy up first (close an on-demand SSH rule, print a partial
//! report, stop a supervised child) holds a [`Guard`] and answers the signal itself; the
//! rest is dropped where it stands (`main`), which closes its SSH connections.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static GUARDS: AtomicUsize = AtomicUsize::new(0);
/// Whether SIGINT or SIGTERM has arrived: a step cut short says "interrupted" only then.
static RECEIVED: AtomicBool = AtomicBool::new(false);

pub fn received() -> bool {
    RECEIVED.load(Ordering::SeqCst)
}

/// While one lives, `main` leaves SIGINT and SIGTERM to the code that holds it.
pub struct Guard(());

impl Guard {
    pub fn new() -> Guard {
        GUARDS.fetch_add(1, Ordering::SeqCst);
        Guard(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        GUARDS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The first SIGINT or SIGTERM, by name (never, when the handlers cannot be installed).
pub async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    let why = tokio::select! {
        _ = int.recv() => "interrupted (SIGINT)",
        _ = term.recv() => "terminated (SIGTERM)",
    };
    RECEIVED.store(true, Ordering::SeqCst);
    why
}

/// The first SIGINT or SIGTERM that arrives while no [`Guard`] lives.
pub async fn unguarded() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    loop {
        let why = tokio::select! {
            _ = int.recv() => "interrupted (SIGINT)",
            _ = term.recv() => "terminated (SIGTERM)",
        };
        RECEIVED.store(true, Ordering::SeqCst);
        if GUARDS.load(Ordering::SeqCst) == 0 {
            return why;
        }
    }
}

/// What an interrupted command says: what stopped it, and for the commands that change a
/// stack, that running them again picks up where they stopped (they converge).
pub fn stopped(command: &str, why: &str) -> String {
    let again = match command {
        "vcctl up" | "vcctl deploy" | "vcctl rollback" | "vcctl destroy" => {
            format!("; `{command}` again picks up where it stopped")
        }
        _ => String::new(),
    };
    format!("`{command}` stopped: {why}{again}")
}
