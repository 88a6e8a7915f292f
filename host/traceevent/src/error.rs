//! The one error type of the crate: every malformed input becomes one of these, never a panic.

/// Why decoding failed; each variant names what was being read and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A read would run past the end of the input.
    #[error("{what}: need {need} bytes at offset {offset}, input has {len}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset of the read.
        offset: usize,
        /// Bytes the read needed.
        need: usize,
        /// Length of the input.
        len: usize,
    },
    /// The sub-buffer's commit (data length) does not fit in the sub-buffer.
    #[error("sub-buffer commit of {commit} bytes exceeds the {available} data bytes available")]
    CommitOverflow {
        /// Data length from the commit word.
        commit: usize,
        /// Data bytes the sub-buffer holds after its header.
        available: usize,
    },
    /// An event header inside a sub-buffer makes no sense.
    #[error("malformed ring-buffer event at offset {offset}: {reason}")]
    BadEvent {
        /// Offset of the event header in the sub-buffer.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `events/header_page` could not be understood.
    #[error("header_page: {0}")]
    HeaderPage(String),
    /// `events/header_event` could not be understood or describes a layout we cannot decode.
    #[error("header_event: {0}")]
    HeaderEvent(String),
    /// An event `format` file could not be parsed.
    #[error("format line {line}: {msg}")]
    Format {
        /// 1-based line number in the format text.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A field cannot be read the way it was asked for.
    #[error("field {field}: {msg}")]
    Field {
        /// Field name.
        field: String,
        /// What is wrong.
        msg: &'static str,
    },
    /// A print fmt could not be parsed or evaluated.
    #[error("print fmt: {0}")]
    Print(String),
    /// A trace.dat file could not be read.
    #[error("trace.dat: {0}")]
    TraceDat(String),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
