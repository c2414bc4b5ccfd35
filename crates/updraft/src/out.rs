//! Standard output of every command. `println!` and `print!` in this binary are the macros
//! below (defined before the command modules, they shadow std's): when the reader has gone away
//! (`updraft repo status | head`), the command ends quietly with status 0 instead of panicking,
//! as a Unix filter killed by SIGPIPE would; any other write error ends it with a message.

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

/// Write to standard output; a broken pipe ends the process with status 0, another error with
/// status 1 and a message on standard error.
pub fn write(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
