//! A source text with its name, turning byte offsets into lines and columns.

use std::ops::Range;

use super::error::{ErrorKind, JobspecError, Pos};

#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        Pos {
            line: line + 1,
            column,
        }
    }

    /// The text a span covers, if it is a valid range of this source.
    pub fn slice(&self, span: &Range<usize>) -> Option<&str> {
        self.text.get(span.clone())
    }

    /// An error about a value that has no position (a `-var` argument, an environment
    /// variable).
    pub fn error_without_position(&self, kind: ErrorKind) -> JobspecError {
        JobspecError {
            file: self.name.clone(),
            pos: Pos::default(),
            kind,
        }
    }

    /// An error at the start of `span` (the file's start when the span is unknown).
    pub fn error(&self, span: Option<Range<usize>>, kind: ErrorKind) -> JobspecError {
        JobspecError {
            file: self.name.clone(),
            pos: span.map_or(Pos { line: 1, column: 1 }, |s| self.pos(s.start)),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let s = Source::new("f", "ab\ncdé\nx");
        assert_eq!(s.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(s.pos(3), Pos { line: 2, column: 1 });
        assert_eq!(s.pos(8), Pos { line: 3, column: 1 });
        assert_eq!(s.pos(5), Pos { line: 2, column: 3 });
    }
}
