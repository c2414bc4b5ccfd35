//! Standard output of every command. `println!` and `print!` in this binary are the macros
//! below (defined before the command modules, they shadow std's): when the reader has gone away
//! (`updraft repo status | head`), the command ends quietly with status 0 instead of panicking
//! (`main` runs every command through [`quietly`]); any other write error ends it with a message.

/// `println!` that exits quietly on a broken pipe.
macro_rules! println {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that exits quietly on a broken pipe (kept so that a later `print!` cannot bypass it).
#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

/// The unwinding payload of a write to a closed pipe: [`quietly`] turns it into status 0.
#[derive(Debug)]
pub struct BrokenPipe;

/// Write to standard output. A broken pipe unwinds (running destructors, e.g. the demo's
/// child processes are killed) without a panic message, to end in [`quietly`] with status 0;
/// another error is reported and ends the process with status 1.
pub fn write(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            drop(out);
            std::panic::resume_unwind(Box::new(BrokenPipe));
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Run a command; a broken pipe on standard output ends it successfully (as `head` expects).
pub fn quietly(command: impl FnOnce() -> std::process::ExitCode) -> std::process::ExitCode {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(command)) {
        Ok(code) => code,
        Err(payload) if payload.is::<BrokenPipe>() => std::process::ExitCode::SUCCESS,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
