//! Where the person's lines come from: rustyline on a terminal (prompt, line editing,
//! history; incoming lines are printed above it by the screen's external printer), or
//! standard input read line by line, without prompts or escape codes.
//!
//! It also saves the terminal's settings at start, so that a fatal error in another thread
//! can restore them before the process exits in the middle of a line edit.

use std::io::{self, BufRead};
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
