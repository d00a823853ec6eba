//! Parse errors, each tied to a file, line and column.

use std::fmt;

/// A 1-based position in a source file; line 0 when the error has no position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("unsupported block type {name:?} here (expected one of: {expected})")]
    UnknownBlock { name: String, expected: String },
    #[error("unsupported argument {name:?} here (expected one of: {expected})")]
    UnknownArgument { name: String, expected: String },
    #[error("{field}: wrong type: expected {expected}, got {got}")]
    WrongType {
        field: String,
        expected: &'static str,
        got: String,
    },
    #[error("{field}: {message}")]
    InvalidValue { field: String, message: String },
    #[error("block {block:?} needs {want} label(s), got {got}")]
    Labels {
        block: String,
        want: usize,
        got: usize,
    },
    #[error("duplicate {0:?} block: only one is allowed")]
    Duplicate(String),
    #[error("duplicate argument {0:?}")]
    DuplicateArgument(String),
    #[error("missing \"job\" block: a job file needs one")]
    MissingJob,
    #[error("undefined variable {0:?}")]
    UndefinedVariable(String),
    #[error(
        "variable {0:?} is required but not set (no default, no -var, -var-file or NOMAD_VAR_ value)"
    )]
    RequiredVariable(String),
    #[error("invalid value for variable {name:?}: {message}")]
    VariableValidation { name: String, message: String },
    #[error("{0}")]
    Eval(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
}

/// A parse error: the file, where in it, and what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct JobspecError {
    pub file: String,
    pub pos: Pos,
    pub kind: ErrorKind,
}

impl fmt::Display for JobspecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            return write!(f, "{}: {}", self.file, self.kind);
        }
        write!(
            f,
            "{}:{},{}: {}",
            self.file, self.pos.line, self.pos.column, self.kind
        )
    }
}

pub type Result<T, E = JobspecError> = std::result::Result<T, E>;
