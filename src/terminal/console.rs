//! Where the person's lines come from: rustyline on a terminal (prompt, line editing,
//! history; incoming lines are printed above it by the screen's external printer), or
//! standard input read line by line, without prompts or escape codes.
//!
//! It also saves the terminal's settings at start, so that a fatal error in another thread
//! can restore them before the process exits in the middle of a line edit.

use std::io::{self, BufRead, Write};
use std::sync::OnceLock;

use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use super::screen::Screen;

/// One thing typed.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A line, without its line ending.
    Line(Vec<u8>),
    /// End of input (Ctrl-D on a terminal).
    End,
    /// Ctrl-C.
    Interrupted,
}

/// The source of lines.
pub enum Console {
    Terminal(Box<DefaultEditor>),
    Plain(io::StdinLock<'static>),
}

static SAVED_TERMINAL: OnceLock<libc::termios> = OnceLock::new();

fn save_terminal() {
    // SAFETY: `termios` is plain old data; tcgetattr only writes into it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut t) } == 0 {
        let _ = SAVED_TERMINAL.set(t);
    }
}

/// Puts the terminal back as it was at start (cooked mode, echo), if it was saved.
pub fn restore_terminal() {
    if let Some(t) = SAVED_TERMINAL.get() {
        // SAFETY: `t` came from tcgetattr on the same descriptor.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, t);
        }
    }
}

impl Console {
    /// A line editor on the terminal, and the screen that prints above it.
    pub fn terminal() -> Result<(Console, Screen), ReadlineError> {
        save_terminal();
        let mut editor = DefaultEditor::new()?;
        let printer = editor.create_external_printer()?;
        Ok((
            Console::Terminal(Box::new(editor)),
            Screen::terminal(Box::new(printer)),
        ))
    }

    /// Standard input, line by line, and plain output.
    pub fn plain() -> (Console, Screen) {
        (Console::Plain(io::stdin().lock()), Screen::plain())
    }

    /// A secret line (the `!oper` password): on a terminal, read with echo off and never
    /// added to the history; otherwise the next input line. `None` when cancelled
    /// (Ctrl-C, Ctrl-D, end of input).
    pub fn read_secret(&mut self, prompt: &str) -> Option<Vec<u8>> {
        match self {
            Console::Terminal(_) => read_without_echo(prompt),
            Console::Plain(_) => match self.read_line(prompt) {
                Input::Line(line) => Some(line),
                Input::End | Input::Interrupted => None,
            },
        }
    }

    /// The next line. `prompt` is shown on a terminal only.
    pub fn read_line(&mut self, prompt: &str) -> Input {
        match self {
            Console::Terminal(editor) => match editor.readline(prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    Input::Line(line.into_bytes())
                }
                Err(ReadlineError::Interrupted) => Input::Interrupted,
                Err(_) => Input::End,
            },
            Console::Plain(stdin) => {
                let mut line = Vec::new();
                match stdin.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => Input::End,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                            if line.last() == Some(&b'\r') {
                                line.pop();
                            }
                        }
                        Input::Line(line)
                    }
                }
            }
        }
    }
}

/// Reads one line from the terminal with echo, line editing and signals off, so that
/// nothing typed is shown and Ctrl-C cancels instead of killing the process with the echo
/// still off. Backspace and Ctrl-U edit; Enter ends; Ctrl-C, or Ctrl-D on an empty line,
/// cancels. The terminal's settings are put back before returning.
fn read_without_echo(prompt: &str) -> Option<Vec<u8>> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: `termios` is plain old data; tcgetattr only writes into it.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return None;
    }
    let mut quiet = saved;
    quiet.c_lflag &= !(libc::ECHO | libc::ICANON | libc::ISIG);
    quiet.c_cc[libc::VMIN] = 1;
    quiet.c_cc[libc::VTIME] = 0;
    // SAFETY: `quiet` is a copy of the settings tcgetattr gave for this descriptor.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
        return None;
    }
    let mut out = io::stdout();
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    let mut secret = Vec::new();
    let read = loop {
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into `byte`.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break None;
        }
        match byte {
            b'\r' | b'\n' => break Some(std::mem::take(&mut secret)),
            0x03 => break None,                      // Ctrl-C
            0x04 if secret.is_empty() => break None, // Ctrl-D
            0x7f | 0x08 => {
                secret.pop();
            }
            0x15 => secret.clear(), // Ctrl-U
            0x00..=0x1f => {}
            _ => secret.push(byte),
        }
    };
    secret.fill(0);
    // SAFETY: `saved` came from tcgetattr on the same descriptor.
    unsafe {
        libc::tcsetattr(fd, libc::TCSANOW, &saved);
    }
    let _ = writeln!(out);
    read
}
