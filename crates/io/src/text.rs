//! Delimited text, record by record, each with the exact line it starts on, so every reader
//! above can say "line 17".
//!
//! Written here rather than with the `csv` crate because exact lines are the point: `csv` skips
//! blank lines silently and reports a record's position as where the reader stood before them
//! (and before the `\n` of a CRLF line end), so its line numbers drift. The dialect is the
//! common one: fields separated by a comma or a tab, optionally quoted with `"` (a doubled `""`
//! is a quote, and a quoted field may span lines), or separated by runs of whitespace as
//! `numpy.savetxt` writes. Fields are trimmed of surrounding whitespace; CRLF and a UTF-8
//! byte-order mark are accepted.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{IoError, WithPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delimiter {
    Comma,
    Tab,
    /// Any run of spaces or tabs; no quoting.
    Whitespace,
}

impl Delimiter {
    /// Guesses the delimiter of a `.txt` matrix from its first line of data: a tab, else a comma,
    /// else whitespace.
    pub(crate) fn sniff(path: &Path) -> Result<Self, IoError> {
        let mut records = Records::open(path, Delimiter::Whitespace, Comments::Skip)?;
        let mut line = String::new();
        if records.next_line(&mut line)?.is_none() {
            return Ok(Delimiter::Whitespace);
        }
        Ok(if line.contains('\t') {
            Delimiter::Tab
        } else if line.contains(',') {
            Delimiter::Comma
        } else {
            Delimiter::Whitespace
        })
    }
}

/// Whether lines starting with `#` are comments (as `numpy.savetxt` writes its header) or data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comments {
    Skip,
    Keep,
}

/// The fields of one record, stored in one buffer so that reading a large table does not
/// allocate per field.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    text: String,
    ends: Vec<usize>,
}

impl Fields {
    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    fn push(&mut self, field: &str) {
        self.text.push_str(field.trim());
        self.ends.push(self.text.len());
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        Some(&self.text[start..end])
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|index| self.get(index))
    }
}

/// One record as read: where it starts and whether blank lines came before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordAt {
    /// The line the record starts on, from 1.
    pub(crate) line: u64,
    /// The first blank line between the previous record (or the start) and this one, if any.
    pub(crate) blank_before: Option<u64>,
}

/// The records of a text file. Blank lines (and comments, if skipped) are not records.
pub(crate) struct Records {
    path: PathBuf,
    reader: BufReader<File>,
    delimiter: Delimiter,
    comments: Comments,
    /// The number of the last line read.
    line: u64,
    bytes: Vec<u8>,
    text: String,
    scratch: String,
}

impl Records {
    pub(crate) fn open(
        path: &Path,
        delimiter: Delimiter,
        comments: Comments,
    ) -> Result<Self, IoError> {
        let reader = BufReader::new(File::open(path).with_path(path)?);
        Ok(Records {
            path: path.to_path_buf(),
            reader,
            delimiter,
            comments,
            line: 0,
            bytes: Vec::new(),
            text: String::new(),
            scratch: String::new(),
        })
    }

    /// Reads the next record into `fields`; `None` at the end of the file.
    pub(crate) fn next_into(&mut self, fields: &mut Fields) -> Result<Option<RecordAt>, IoError> {
        let mut text = std::mem::take(&mut self.text);
        let found = self.next_record_text(&mut text)?;
        if found.is_some() {
            self.split(&text, fields);
        }
        self.text = text;
        Ok(found)
    }

    /// The text of the next record (several lines for a quoted field that spans lines).
    fn next_record_text(&mut self, text: &mut String) -> Result<Option<RecordAt>, IoError> {
        let Some(at) = self.next_line(text)? else {
            return Ok(None);
        };
        let quoted = self.delimiter != Delimiter::Whitespace;
        // Quotes are counted line by line: recounting the whole record after each line would be
        // quadratic in the length of a file with an unclosed quote near its start.
        let mut quotes = text.matches('"').count();
        while quoted && quotes % 2 == 1 {
            text.push('\n');
            let start = text.len();
            if !self.read_line(text)? {
                let message = "a quoted field is not closed by the end of the file";
                return Err(self.syntax(at.line, message));
            }
            quotes += text[start..].matches('"').count();
        }
        Ok(Some(at))
    }

    /// Reads the next line that is neither blank nor a skipped comment into `text`.
    fn next_line(&mut self, text: &mut String) -> Result<Option<RecordAt>, IoError> {
        let mut blank_before = None;
        loop {
            text.clear();
            if !self.read_line(text)? {
                return Ok(None);
            }
            let trimmed = text.trim();
            if trimmed.is_empty() {
                blank_before = blank_before.or(Some(self.line));
            } else if !(self.comments == Comments::Skip && trimmed.starts_with('#')) {
                return Ok(Some(RecordAt {
                    line: self.line,
                    blank_before,
                }));
            }
        }
    }

    /// Appends one line, without its line end, to `text`; `false` at the end of the file.
    fn read_line(&mut self, text: &mut String) -> Result<bool, IoError> {
        self.bytes.clear();
        if self
            .reader
            .read_until(b'\n', &mut self.bytes)
            .with_path(&self.path)?
            == 0
        {
            return Ok(false);
        }
        self.line += 1;
        let mut line = self.bytes.as_slice();
        line = line.strip_suffix(b"\n").unwrap_or(line);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.line == 1 {
            line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        }
        let line = std::str::from_utf8(line)
            .map_err(|_| self.syntax(self.line, "not valid UTF-8 text"))?;
        text.push_str(line);
        Ok(true)
    }

    fn split(&mut self, text: &str, fields: &mut Fields) {
        fields.clear();
        match self.delimiter {
            Delimiter::Whitespace => text.split_whitespace().for_each(|f| fields.push(f)),
            Delimiter::Comma => split_quoted(text, ',', fields, &mut self.scratch),
            Delimiter::Tab => split_quoted(text, '\t', fields, &mut self.scratch),
        }
    }

    fn syntax(&self, line: u64, message: &'static str) -> IoError {
        IoError::Syntax {
            path: self.path.clone(),
            line,
            message,
        }
    }
}

/// Splits `text` at `delimiter` outside double quotes; `""` inside quotes is one quote.
fn split_quoted(text: &str, delimiter: char, fields: &mut Fields, scratch: &mut String) {
    if !text.contains('"') {
        text.split(delimiter).for_each(|field| fields.push(field));
        return;
    }
    scratch.clear();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                scratch.push('"');
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            c if c == delimiter && !in_quotes => {
                fields.push(scratch);
                scratch.clear();
            }
            c => scratch.push(c),
        }
    }
    fields.push(scratch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write_file;

    fn all(path: &Path, delimiter: Delimiter, comments: Comments) -> Vec<(u64, Vec<String>)> {
        let mut records = Records::open(path, delimiter, comments).unwrap();
        let mut fields = Fields::default();
        let mut out = Vec::new();
        while let Some(at) = records.next_into(&mut fields).unwrap() {
            out.push((at.line, fields.iter().map(str::to_owned).collect()));
        }
        out
    }

    fn owned(fields: &[&str]) -> Vec<String> {
        fields.iter().map(|f| (*f).to_owned()).collect()
    }

    #[test]
    fn csv_records_carry_their_exact_line() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = "\u{feff}a, b\r\n\r\n1,\"x\ny\"\r\n\"q\"\"uote\",\" s \"\n2,3".as_bytes();
        let path = write_file(dir.path(), "a.csv", bytes);
        let got = all(&path, Delimiter::Comma, Comments::Keep);
        assert_eq!(got[0], (1, owned(&["a", "b"])));
        assert_eq!(got[1], (3, owned(&["1", "x\ny"])));
        assert_eq!(got[2], (5, owned(&["q\"uote", "s"])));
        assert_eq!(got[3], (6, owned(&["2", "3"])));
    }

    #[test]
    fn blank_lines_are_reported_with_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "b.tsv", b"a\n\n \nb\n");
        let mut records = Records::open(&path, Delimiter::Tab, Comments::Keep).unwrap();
        let mut fields = Fields::default();
        let first = records.next_into(&mut fields).unwrap();
        assert_eq!(
            first,
            Some(RecordAt {
                line: 1,
                blank_before: None
            })
        );
        let second = records.next_into(&mut fields).unwrap();
        assert_eq!(
            second,
            Some(RecordAt {
                line: 4,
                blank_before: Some(2)
            })
        );
        assert_eq!(records.next_into(&mut fields).unwrap(), None);
    }

    #[test]
    fn whitespace_records_split_runs_and_skip_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "a.txt", b"# x y\n1   2\n\n 3\t4 \n");
        let got = all(&path, Delimiter::Whitespace, Comments::Skip);
        assert_eq!(got, vec![(2, owned(&["1", "2"])), (4, owned(&["3", "4"]))]);
    }

    #[test]
    fn unclosed_quote_and_bad_utf8_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "q.csv", b"a\n\"b\nc\n");
        let mut records = Records::open(&path, Delimiter::Comma, Comments::Keep).unwrap();
        let mut fields = Fields::default();
        records.next_into(&mut fields).unwrap();
        let err = records.next_into(&mut fields).unwrap_err().to_string();
        assert!(
            err.contains("q.csv: line 2: a quoted field is not closed"),
            "{err}"
        );

        let path = write_file(dir.path(), "u.csv", b"a\n\xff\n");
        let mut records = Records::open(&path, Delimiter::Comma, Comments::Keep).unwrap();
        records.next_into(&mut fields).unwrap();
        let err = records.next_into(&mut fields).unwrap_err().to_string();
        assert!(err.contains("u.csv: line 2: not valid UTF-8"), "{err}");
    }

    #[test]
    fn txt_delimiter_is_sniffed_from_the_first_data_line() {
        let dir = tempfile::tempdir().unwrap();
        let sniff = |bytes: &[u8]| Delimiter::sniff(&write_file(dir.path(), "s.txt", bytes));
        assert_eq!(sniff(b"# a,b\n\n1\t2\n").unwrap(), Delimiter::Tab);
        assert_eq!(sniff(b"1,2\n").unwrap(), Delimiter::Comma);
        assert_eq!(sniff(b"1 2\n").unwrap(), Delimiter::Whitespace);
    }
}
