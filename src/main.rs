use clap::Parser;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (v3 option enum).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // mimalloc returns freed memory to the OS after a short delay, and every elementwise
    // tensor op then page-faults (and zeroes) fresh huge pages: 70% of CW-L2's time was
    // clear_page (perf), 109k page faults against 1.9k with purging off. Keep freed memory
    // (the peak is the same), unless the user set MIMALLOC_PURGE_DELAY.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is thread-safe and valid at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    let cli = advlab::cli::Cli::parse();
    // a bug must not look like a crash: no "thread panicked" on stderr, a report and exit code 101
    advlab::util::note_panics();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| advlab::cli::run(cli)));
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
        Err(payload) => {
            eprintln!(
                "{}: {}\nadvlab {} stopped; files finished before this point are complete",
                advlab::script::INTERNAL_ERROR,
                advlab::util::panic_message(payload.as_ref()),
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(101)
        }
    }
}
