//! Progress lines on stderr while a run goes: plain in CI, a live line on a terminal, every detail
//! with -v, nothing but warnings with -q.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::cli::Verbosity;

/// Progress lines on stderr: plain in CI, a live line on a terminal, every detail with -v,
/// warnings only with -q.
#[derive(Clone)]
pub struct Progress {
    verbose: bool,
    quiet: bool,
    /// indicatif's bar is a handle: clones share it.
    bar: Option<indicatif::ProgressBar>,
    start: Instant,
    /// "[app] " when several apps stage at once.
    prefix: String,
}

impl Progress {
    pub fn new(v: Verbosity) -> Progress {
        let verbose = v.level >= 1;
        let bar = (std::io::stderr().is_terminal() && !verbose && !v.quiet).then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress {
            verbose,
            quiet: v.quiet,
            bar,
            start: Instant::now(),
            prefix: String::new(),
        }
    }

    /// The same progress, each line naming `app`.
    pub fn for_app(&self, app: &str) -> Progress {
        Progress {
            prefix: format!("[{app}] "),
            ..self.clone()
        }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    pub fn line(&self, msg: &str) {
        if !self.quiet {
            self.print(msg);
        }
    }

    /// A warning: shown even with -q.
    pub fn warn(&self, msg: &str) {
        self.print(&format!("warning: {msg}"));
    }

    fn print(&self, msg: &str) {
        let msg = format!(
            "[{:>7.2}s] {}{msg}",
            self.start.elapsed().as_secs_f64(),
            self.prefix
        );
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    /// Transient detail: the spinner's message on a terminal, a line with -v, nothing otherwise.
    pub fn detail(&self, msg: &str) {
        if self.verbose {
            eprintln!("  {}{msg}", self.prefix);
        } else if let Some(b) = &self.bar {
            b.set_message(msg.chars().take(100).collect::<String>());
        }
    }

    pub fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
