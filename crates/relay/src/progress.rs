//! Progress bars on interactive terminals; structured log lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte progress bar, hidden unless `wanted` and stderr is a terminal.
pub fn bar(wanted: bool, total: u64, message: &'static str) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() || total == 0 {
        return ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}
