//! Asking for a password on the terminal without echoing it, so that it
//! shows neither on the screen nor in the shell's history.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result};

/// Reads a password typed on the terminal after `prompt`; None when stdin
/// is not a terminal (a script must pass it some other way).
pub fn password(prompt: &str) -> Result<Option<String>> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(None);
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let echo = EchoOff::new()?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    drop(echo);
    eprintln!();
    read.context("cannot read the password from the terminal")?;
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The terminal's echo, off until dropped.
struct EchoOff {
    saved: libc::termios,
}

impl EchoOff {
    fn new() -> Result<EchoOff> {
        // SAFETY: tcgetattr fills the termios it is given; stdin is a
        // terminal (checked by the caller).
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error())
                .context("cannot read the terminal's settings");
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: a termios read from this terminal, with one flag changed.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot turn the echo off");
        }
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new`.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}
