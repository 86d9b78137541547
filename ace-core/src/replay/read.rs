//! Reading a trace: its lines, read where they lie in the reader's buffer, scanned (or parsed
//! by serde where the scan declines) into [`Raw`] events, handed in order to a sink with the
//! number of their line. The first error (of the reader, of a line, or of the sink) ends it.

use std::io::{BufRead, Read};

use super::{At, BOM, MAX_LINE_BYTES, Raw, scan};
use crate::error::Result;

/// Reads the trace from `reader` (named `name` in errors) and hands each event to `sink`.
/// Blank lines are counted but not handed on.
pub(super) fn read(
    mut reader: impl BufRead,
    name: &str,
    sink: &mut impl FnMut(&Raw<'_>, &At<'_>) -> Result<()>,
) -> Result<()> {
    let mut text: Vec<u8> = Vec::new();
    let mut number = 0;
    loop {
        // The whole lines in the reader's buffer, read where they lie (the first line, which
        // may start with a byte-order mark, as any other line below).
        if number > 0 {
            let buf = reader.fill_buf().map_err(|e| At { name, number: number + 1 }.fail(e))?;
            let taken = lines(buf, name, &mut number, sink)?;
            reader.consume(taken);
        }
        number += 1;
        let at = At { name, number };
        // A whole line in the reader's buffer is read where it lies; others are copied.
        let buf = reader.fill_buf().map_err(|e| at.fail(e))?;
        if let Some(end) = newline(buf)
            && end < MAX_LINE_BYTES
        {
            let line = &buf[..=end];
            let line = if number == 1 { line.strip_prefix(BOM).unwrap_or(line) } else { line };
            one(line, &at, sink)?;
            reader.consume(end + 1);
            continue;
        }
        text.clear();
        // At most one byte past the limit is read, so input without newlines (`/dev/zero`)
        // costs bounded memory and fails at once.
        let read = (&mut reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut text);
        if read.map_err(|e| at.fail(e))? == 0 {
            return Ok(());
        }
        if text.len() > MAX_LINE_BYTES && text.last() != Some(&b'\n') {
            return Err(at.fail(format!("the line is longer than {MAX_LINE_BYTES} bytes")));
        }
        if number == 1 && text.starts_with(BOM) {
            text.drain(..BOM.len());
        }
        one(&text, &at, sink)?;
    }
}

/// Reads the whole lines at the start of `buf` (up to where its text stops being UTF-8),
/// counting them in `number`; returns the bytes they take. The buffer's text is checked once,
/// and a line of the common shape is scanned without looking for its end first; another is cut
/// at its newline and read by [`one`]. A line the buffer does not hold whole is left for the
/// caller.
fn lines(
    buf: &[u8],
    name: &str,
    number: &mut usize,
    sink: &mut impl FnMut(&Raw<'_>, &At<'_>) -> Result<()>,
) -> Result<usize> {
    let text = text_of(buf);
    let mut taken = 0;
    while taken < text.len() {
        let rest = text.get(taken..).unwrap_or_default();
        let at = At { name, number: *number + 1 };
        let mut raw = Raw::default();
        let n = match scan::scan_first(rest, &mut raw) {
            Some(n) if n <= MAX_LINE_BYTES => {
                sink(&raw, &at)?;
                n
            }
            _ => match newline(rest.as_bytes()) {
                Some(end) if end < MAX_LINE_BYTES => {
                    one(&rest.as_bytes()[..=end], &at, sink)?;
                    end + 1
                }
                _ => break,
            },
        };
        *number += 1;
        taken += n;
    }
    Ok(taken)
}

/// Reads one line of the trace.
fn one(text: &[u8], at: &At<'_>, sink: &mut impl FnMut(&Raw<'_>, &At<'_>) -> Result<()>) -> Result<()> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let mut raw = Raw::default();
    if !scan::scan(text, &mut raw) {
        raw = serde_json::from_slice(text).map_err(|e| at.explain(text, &e))?;
    }
    sink(&raw, at)
}

/// The UTF-8 text at the start of `buf`: all of it, or what comes before an invalid byte or a
/// character cut by the buffer's end.
fn text_of(buf: &[u8]) -> &str {
    match std::str::from_utf8(buf) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// Where the first newline of `b` is: eight bytes at a time (a loop over bytes costs more than
/// the copy it saves).
pub(super) fn newline(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default()) ^ (ONES * u64::from(b'\n'));
        // The lowest set bit marks the first zero byte (bits above it may be false alarms).
        let zero = x.wrapping_sub(ONES) & !x & (ONES << 7);
        if zero != 0 {
            return Some(at + zero.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&c| c == b'\n').map(|p| at + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_are_found_where_they_are() {
        let text: Vec<u8> = (0..200u8).map(|i| if i % 37 == 36 { b'\n' } else { i.max(11) }).collect();
        for start in 0..text.len() {
            let slow = text[start..].iter().position(|&c| c == b'\n');
            assert_eq!(newline(&text[start..]), slow, "from {start}");
        }
        assert_eq!(newline(b"\xff\x0b\x09\x0a"), Some(3));
        assert_eq!(newline(b""), None);
    }
}
